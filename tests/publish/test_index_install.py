"""pip and uv install runtime wheels from an index that ``nativelib index`` wrote, as
``file://`` and through ``python -m http.server`` on 127.0.0.1, into fresh venvs
(network: the runtime wheels are built from Debian's packages, pynativelib's build
backend and its dependencies, packaging and resolvelib, come from PyPI)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nativelib.cli import main
from nativelib.publish.index import build_index

pytestmark = pytest.mark.network

UV = shutil.which("uv", path=os.path.dirname(sys.executable)) or shutil.which("uv")
#: pip and uv see only the index given: no configuration, no environment.
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}


@pytest.fixture(scope="module")
def release(
    runtime_wheelhouse: Path, pynativelib_wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A self-contained directory: the runtime wheels, pynativelib, and its dependencies."""
    d = tmp_path_factory.mktemp("release")
    for wheel in [*runtime_wheelhouse.glob("*.whl"), pynativelib_wheel]:
        shutil.copy2(wheel, d / wheel.name)
    subprocess.run(
        [sys.executable, "-m", "pip", "--isolated", "download", "-q", "--no-deps",
         "--only-binary=:all:", "packaging", "resolvelib", "-d", str(d)],
        check=True, env=CLEAN_ENV,
    )  # fmt: skip
    build_index(d)
    return d


@pytest.fixture(scope="module")
def server(release: Path) -> Iterator[tuple[str, Path]]:
    """``python -m http.server`` serving the release directory; its access log."""
    log = release.parent / "access.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1",
             "--directory", str(release)],
            stdout=subprocess.PIPE, stderr=f,
        )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()  # "Serving HTTP on 127.0.0.1 port N (...)"
        port = re.search(r"port (\d+)", line)
        assert port, line
        yield f"http://127.0.0.1:{port.group(1)}/simple/", log
    finally:
        proc.terminate()
        proc.wait(10)


def _requests(log: Path) -> list[str]:
    time.sleep(0.2)  # the server writes its log line after the response
    return re.findall(r'"GET (\S+) HTTP', log.read_text())


@pytest.fixture(scope="module")
def pip(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A recent pip, run from its wheel against any venv (``--python``): pip before 25.3
    downloads the wheels it picked at the end of a ``--dry-run`` too (pypa/pip#12603)."""
    d = tmp_path_factory.mktemp("pip")
    subprocess.run(
        [sys.executable, "-m", "pip", "--isolated", "download", "-q", "--no-deps",
         "pip>=25.3", "-d", str(d)],
        check=True, env=CLEAN_ENV,
    )  # fmt: skip
    (wheel,) = d.glob("pip-*.whl")
    return [sys.executable, f"{wheel}/pip", "--isolated", "--disable-pip-version-check"]


def _venv(path: Path) -> Path:
    """A fresh venv (without pip of its own: the ``pip`` fixture's installs into it)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def _installed(python: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(python), "-c", "import json, importlib.metadata as m; print(json.dumps("
         "{d.metadata['Name']: d.version for d in m.distributions()}))"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out)


def _check_installed(python: Path) -> None:
    got = _installed(python)
    assert got["nativelib-cxx14"] == got["nativelib-gomp"] == "12.2.0", got
    assert "pynativelib" in got and "resolvelib" in got
    run = subprocess.run(
        [str(python), "-c", "import nativelib; nativelib.load(); print('loaded')"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0 and "loaded" in run.stdout, run.stderr


def test_pip_installs_from_the_file_url(release: Path, pip: list[str], tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv")
    url = (release / "simple").as_uri()
    proc = subprocess.run(
        [*pip, "--python", str(python), "install", "--no-cache-dir", "--no-compile",
         "--index-url", url, "nativelib-cxx14", "nativelib-gomp"],
        capture_output=True, text=True, env=CLEAN_ENV,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _check_installed(python)


@pytest.mark.skipif(UV is None, reason="uv is in the test extra")
@pytest.mark.parametrize("how", ["file", "http"])
def test_uv_installs_from_the_index(
    release: Path, server: tuple[str, Path], tmp_path: Path, how: str
) -> None:
    assert UV is not None
    url = (release / "simple").as_uri() if how == "file" else server[0]
    venv = tmp_path / "venv"
    subprocess.run([UV, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    env = {**CLEAN_ENV, "VIRTUAL_ENV": str(venv)}
    proc = subprocess.run(
        [UV, "pip", "install", "--no-config", "--no-cache", "--index-url", url,
         "nativelib-cxx14", "nativelib-gomp"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _check_installed(venv / "bin" / "python")


def test_pip_over_http_resolves_from_metadata_files_then_installs(
    server: tuple[str, Path], pip: list[str], tmp_path: Path
) -> None:
    """PEP 658 in use: pip's resolution (``--dry-run --report``) asks for ``.metadata``
    files and no wheel; the install that follows downloads the wheels it picked."""
    url, log = server
    python = _venv(tmp_path / "venv")
    pip = [*pip, "--python", str(python)]
    start = len(_requests(log))
    report = tmp_path / "report.json"
    wanted = ["nativelib-cxx14", "nativelib-gomp", "nativelib-gfortran5"]
    proc = subprocess.run(
        [*pip, "install", "--no-cache-dir", "--dry-run", "--report", str(report),
         "--index-url", url, *wanted],
        capture_output=True, text=True, env=CLEAN_ENV,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    picked = {
        i["metadata"]["name"]: i["metadata"]["version"]
        for i in json.loads(report.read_text())["install"]
    }
    assert {n: picked[n] for n in wanted} == dict.fromkeys(wanted, "12.2.0")
    requests = _requests(log)[start:]
    assert "/simple/nativelib-gfortran5/" in requests
    metadata = [r for r in requests if r.endswith(".whl.metadata")]
    assert len(metadata) >= len(picked), requests
    assert not [r for r in requests if r.endswith(".whl")], requests
    # The install itself downloads exactly the wheels picked.
    start = len(_requests(log))
    proc = subprocess.run(
        [*pip, "install", "--no-cache-dir", "--no-compile", "--index-url", url,
         "nativelib-cxx14", "nativelib-gomp"],
        capture_output=True, text=True, env=CLEAN_ENV,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = sorted(r.rsplit("/", 1)[1] for r in _requests(log)[start:] if r.endswith(".whl"))
    assert [w.split("-")[0] for w in wheels] == [
        "nativelib_cxx14", "nativelib_gomp", "packaging", "pynativelib", "resolvelib",
    ]  # fmt: skip
    _check_installed(python)


def test_nativelib_resolve_from_the_index(
    release: Path,
    server: tuple[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Each glibc gets the newest build it can run: Debian 11's on 2.31, 12's on 2.36."""
    monkeypatch.setenv("NATIVELIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NATIVELIB_CUDA_DRIVER", "none")
    for url in ((release / "simple").as_uri(), server[0]):
        for glibc, version in (("2.31", "10.2.1"), ("2.36", "12.2.0")):
            argv = ["resolve", "nativelib-gfortran5", "--index-url", url, "--glibc", glibc]
            assert main([*argv, "--json"]) == 0
            resolved = json.loads(capsys.readouterr().out)["resolved"]
            versions = {r["name"]: r["version"] for r in resolved}
            # gfortran5 needs libgcc_s from cxx14: both come at the same floor.
            assert versions == {"nativelib-gfortran5": version, "nativelib-cxx14": version}
    assert not (tmp_path / "cache" / "downloads").exists()  # PEP 658 metadata sufficed
