"""``nativelib release`` for real (network: Debian's archive, PyPI for ``build``'s
setuptools, twine/pypiserver/uv from the test extra): a release from Debian 11 and 12,
installed by pip and uv from its file:// index and from a pypiserver it was uploaded to
with twine; reproducible, resumable after SIGKILL, and its coverage matrix."""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from releaseset import PLATFORMS, ReleaseSet, nativelib

from nativelib.release.coverage import Coverage, pip_platform_args
from nativelib.wheelfile import validate_wheel

pytestmark = pytest.mark.network

SCHEMA = json.loads(
    resources.files("nativelib").joinpath("data/schemas/release.schema.json").read_text("utf-8")
)
RUNTIMES = ("nativelib-cxx14", "nativelib-gfortran5", "nativelib-gomp")
BIN = Path(sys.executable).parent


def test_the_set_holds_pynativelib_and_every_runtime_at_two_versions(
    release_set: ReleaseSet,
) -> None:
    summary = release_set.summary
    jsonschema.validate(summary, SCHEMA)
    files = summary["files"]
    versions = {(f["name"], f["version"]) for f in files if f["kind"] == "runtime"}
    assert versions == {(n, v) for n in RUNTIMES for v in ("10.2.1", "12.2.0")}
    # The runtime wheelhouse's builds were recognised as the same builds and kept.
    assert {f["status"] for f in files if f["kind"] == "runtime"} == {"kept"}
    by_source = {f["source"] for f in files if f["version"] == "10.2.1"}
    assert by_source == {"debian-bullseye"}
    kinds = sorted(f["kind"] for f in files if f["name"] == "pynativelib")
    assert kinds == ["sdist", "wheel"]
    assert summary["index"] == str(release_set.directory / "simple")
    for f in files:
        path = release_set.directory / f["filename"]
        assert path.stat().st_size == f["size"]
        if path.suffix == ".whl":
            validate_wheel(path)
    # The floors the issue names: Debian 11 cxx14 2_24, gomp 2014, gfortran5 2_31.
    tags = {(f["name"], f["version"]): f["tag"] for f in files}
    assert tags[("nativelib-cxx14", "10.2.1")] == "py3-none-manylinux_2_24_x86_64"
    assert "manylinux2014_x86_64" in tags[("nativelib-gomp", "10.2.1")]
    assert tags[("nativelib-gfortran5", "10.2.1")] == "py3-none-manylinux_2_31_x86_64"


def test_twine_check_passes_on_every_file(release_set: ReleaseSet) -> None:
    files = [release_set.directory / f["filename"] for f in release_set.summary["files"]]
    proc = subprocess.run(
        [str(BIN / "twine"), "check", "--strict", *map(str, files)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == len(files) == 8


def test_coverage_matrix_is_what_pip_resolves_from_the_index(release_set: ReleaseSet) -> None:
    """--check-platforms: the newest version pip picks per glibc, from the real tags."""
    coverage = release_set.summary["coverage"]
    assert coverage == {
        "platforms": list(PLATFORMS),
        "runtimes": {
            "nativelib-cxx14": {"manylinux_2_17": None, "manylinux_2_24": "10.2.1",
                                "manylinux_2_31": "10.2.1", "manylinux_2_36": "12.2.0"},
            "nativelib-gfortran5": {"manylinux_2_17": None, "manylinux_2_24": None,
                                    "manylinux_2_31": "10.2.1", "manylinux_2_36": "12.2.0"},
            "nativelib-gomp": {"manylinux_2_17": "10.2.1", "manylinux_2_24": "10.2.1",
                               "manylinux_2_31": "10.2.1", "manylinux_2_36": "12.2.0"},
        },
    }  # fmt: skip
    text = Coverage(PLATFORMS, coverage["runtimes"]).text().splitlines()
    assert text[2].split() == ["nativelib-gfortran5", "-", "-", "10.2.1", "12.2.0"]


def test_check_finds_the_one_file_that_differs(release_set: ReleaseSet, tmp_path: Path) -> None:
    """--check builds everything again elsewhere (nothing kept) and compares by sha256."""
    small = tmp_path / "release.toml"
    small.write_text('[runtimes]\ngomp = { debian-bullseye = "10.2.1" }\n', encoding="utf-8")
    out = tmp_path / "dist"
    out.mkdir()
    names = [f["filename"] for f in release_set.summary["files"]]
    keep = [n for n in names if n.startswith(("nativelib_gomp-10.2.1", "pynativelib-"))]
    for name in keep:
        shutil.copyfile(release_set.directory / name, out / name)
    sdist = next(out.glob("*.tar.gz"))
    sdist.write_bytes(sdist.read_bytes() + b"\0")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # stderr on a terminal: the progress line is shown there (and only there: every other
    # run of these tests has a pipe for stderr, and the fixture asserts it stays clean).
    master, slave = pty.openpty()
    run = subprocess.Popen(
        [sys.executable, "-m", "nativelib", "release", str(small), "-o", str(out), "--check",
         "--json"],
        stdout=subprocess.PIPE, stderr=slave, text=True,
    )  # fmt: skip
    os.close(slave)
    terminal = bytearray()
    reader = threading.Thread(target=_drain, args=(master, terminal))
    reader.start()
    stdout, _ = run.communicate()
    reader.join()
    os.close(master)
    assert run.returncode == 1, terminal.decode(errors="replace")
    shown = terminal.decode(errors="replace")
    assert "[1/2] building nativelib-gomp 10.2.1 from debian-bullseye" in shown
    assert "[2/2] building pynativelib from" in shown
    doc = json.loads(stdout)
    jsonschema.validate(doc, SCHEMA)
    assert doc["check"]["identical"] is False
    assert [d["filename"] for d in doc["check"]["differences"]] == [sdist.name]
    assert doc["check"]["differences"][0]["expected"] == release_set.digests()[sdist.name]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # --check writes nothing


def _drain(fd: int, into: bytearray) -> None:
    while True:
        try:
            block = os.read(fd, 4096)
        except OSError:  # EIO: the other side closed
            return
        if not block:
            return
        into += block


def test_killed_run_resumes_and_ends_identical(release_set: ReleaseSet, tmp_path: Path) -> None:
    """Four runtime wheels there already; SIGKILL once the fifth is published, then run
    again. No half-written file is left under a final name; the end result is
    byte-identical to the session's set (whose runtime wheels nativelib build made): the
    second run's gomp wheels, sdist and wheel are built again from nothing, so this is
    also the reproducibility test (a second run gives the same sha256 for every file)."""
    out = tmp_path / "dist"
    out.mkdir()
    seeded = sorted(release_set.directory.glob("nativelib_*.whl"))[:4]
    for wheel in seeded:
        shutil.copyfile(wheel, out / wheel.name)
    argv = [sys.executable, "-m", "nativelib", "release", str(release_set.release_file),
            "-o", str(out), "--no-index"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while len(list(out.glob("*.whl"))) == 4 and time.monotonic() < deadline:
            assert proc.poll() is None, "finished before it could be killed"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    published = list(out.glob("*.whl")) + list(out.glob("*.tar.gz"))
    assert 5 <= len(published) < 8
    for path in published:
        if path.suffix == ".whl":
            validate_wheel(path)  # complete and valid, or not there at all
    # The same release, with one yanked entry: the index (written last) marks it.
    yanked = tmp_path / "yanked.toml"
    yanked.write_text(
        release_set.release_file.read_text()
        + '[[yanked]]\nname = "nativelib-gomp"\nversion = "10.2.1"\nreason = "test"\n'
    )
    proc2 = nativelib("release", str(yanked), "-o", str(out), "--json")
    resumed = json.loads(proc2.stdout)
    assert {f["filename"]: f["sha256"] for f in resumed["files"]} == release_set.digests()
    statuses = {f["filename"]: f["status"] for f in resumed["files"]}
    assert all(statuses[p.name] == "kept" for p in published if p.suffix == ".whl")
    finals = {p.name for p in out.iterdir() if p.is_file() and not p.name.endswith(".metadata")}
    assert finals == set(release_set.digests())  # no temporary file left behind either
    page = json.loads((out / "simple" / "nativelib-gomp" / "index.json").read_text())
    marks = {f["filename"].split("-")[1]: f["yanked"] for f in page["files"]}
    assert marks == {"10.2.1": "test", "12.2.0": False}


# ------------------------------------------------------------------------ installing


def _venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def _installed(python: Path) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "list", "--format=json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {d["name"].lower(): d["version"] for d in json.loads(out)}


def _pip_install(python: Path, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--isolated",
         "--disable-pip-version-check", "--no-cache-dir", *args],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _uv_install(python: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    proc = subprocess.run(
        [str(BIN / "uv"), "pip", "install", "--python", str(python), "--no-cache", *args],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


#: This host's glibc is 2.36 (Debian 12): the newest builds install here.
HOST = {"nativelib-cxx14": "12.2.0", "nativelib-gomp": "12.2.0", "pynativelib": "0.1.0.dev0"}


def _expect_host(python: Path) -> None:
    import platform  # noqa: PLC0415

    installed = _installed(python)
    if platform.libc_ver()[1] >= "2.36":
        assert {k: installed.get(k) for k in HOST} == HOST
    else:  # pragma: no cover - an older CI host still gets the Debian 11 builds
        assert installed["nativelib-gomp"] == "10.2.1"


def test_pip_and_uv_install_from_the_file_index(
    release_set: ReleaseSet, pynativelib_dependencies: Path, tmp_path: Path
) -> None:
    where = ["--index-url", release_set.index_url, "--find-links", str(pynativelib_dependencies)]
    pip_python = _venv(tmp_path / "pip")
    _pip_install(pip_python, *where, "nativelib-cxx14", "nativelib-gomp")
    _expect_host(pip_python)
    uv_python = _venv(tmp_path / "uv")
    _uv_install(uv_python, *where, "nativelib-cxx14", "nativelib-gomp")
    _expect_host(uv_python)


def test_pip_download_for_glibc_2_31_picks_the_debian_11_builds(
    release_set: ReleaseSet, tmp_path: Path
) -> None:
    """pip expands only manylinux2014/2010 to older tags, so a glibc 2.31 target is every
    tag up to manylinux_2_31 (pip_platform_args), as docs/publishing.md says."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--isolated", "--no-cache-dir", "-q",
         "--only-binary=:all:", "--no-deps", *pip_platform_args("manylinux_2_31", "x86_64"),
         "--index-url", release_set.index_url, "-d", str(tmp_path / "d"), *RUNTIMES],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = sorted(p.name.split("-")[:2] for p in (tmp_path / "d").glob("*.whl"))
    assert got == [[n.replace("-", "_"), "10.2.1"] for n in RUNTIMES]


@pytest.fixture
def pypiserver(tmp_path: Path) -> Iterator[str]:
    """A real pypiserver (from PyPI) on 127.0.0.1, uploads allowed without a password,
    no fallback to PyPI: what is installed from it was uploaded to it."""
    packages = tmp_path / "packages"
    packages.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "pypiserver", "run", "-i", "127.0.0.1", "-p", str(port),
         "-a", ".", "-P", ".", "--disable-fallback", str(packages)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "simple/", timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, "pypiserver exited"
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(10)


def test_twine_upload_to_pypiserver_then_pip_and_uv_install(
    release_set: ReleaseSet, pynativelib_dependencies: Path, pypiserver: str, tmp_path: Path
) -> None:
    files = [release_set.directory / f["filename"] for f in release_set.summary["files"]]
    proc = subprocess.run(
        [str(BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar",
         "--repository-url", pypiserver, "-u", "nobody", "-p", "nothing", *map(str, files)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listing = urllib.request.urlopen(pypiserver + "simple/nativelib-gomp/").read().decode()
    assert "nativelib_gomp-10.2.1-" in listing and "nativelib_gomp-12.2.0-" in listing
    where = ["--index-url", pypiserver + "simple/", "--find-links", str(pynativelib_dependencies)]
    pip_python = _venv(tmp_path / "pip")
    _pip_install(pip_python, *where, "nativelib-cxx14", "nativelib-gomp")
    _expect_host(pip_python)
    uv_python = _venv(tmp_path / "uv")
    _uv_install(uv_python, *where, "nativelib-cxx14", "nativelib-gomp")
    _expect_host(uv_python)
