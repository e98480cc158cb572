"""pip's state and the loader's refusals, as the doctor sees them: two dist-infos of one
runtime (two ``pip install``s at once), a RECORD whose prefix files ``pip uninstall``
removed, a library the loader refuses; and a crafted library with 100,000 NEEDED
entries, read promptly with a bounded report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from doctor_support import run_doctor

from elfwriter import ElfSpec, build
from nativelib.cli import main
from nativelib.doctor.model import MAX_FINDINGS_PER_FILE
from nativelib.elf import MAX_DYNAMIC_ENTRIES
from nativelib_testing import SRC, Env, host_library, make_deb

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None, reason="needs dpkg-deb to build runtime wheels"
)

VERSIONS = ("12.2.0", "13.1.0")


@pytest.fixture(scope="module")
def gomp_wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """nativelib-gomp at two versions, both from this host's libgomp."""
    root = tmp_path_factory.mktemp("gomp")
    real = host_library("libgomp.so.1")
    notice = root / "copyright"
    notice.write_text("GCC RUNTIME LIBRARY EXCEPTION, test copy\n")
    out = {}
    for version in VERSIONS:
        debs = root / version
        debs.mkdir()
        deb = make_deb(debs, "libgomp1", f"{version}-1", {
            f"usr/lib/x86_64-linux-gnu/{real.name}": real,
            "usr/share/doc/libgomp1/copyright": notice,
        })  # fmt: skip
        assert main(["build", "gomp", "-o", str(debs / "out"), "--from", f"deb:{deb}"]) == 0
        (wheel,) = (debs / "out").glob("nativelib_gomp-*.whl")
        assert f"-{version}-" in wheel.name
        out[version] = wheel
    return out


def _dist_infos(env: Env) -> list[str]:
    return sorted(p.name for p in env.site.glob("nativelib_gomp-*.dist-info"))


def test_two_dist_infos_then_pip_uninstall(tmp_path: Path, gomp_wheels: dict[str, Path]) -> None:
    """Deterministic: one version installed, the other's dist-info copied in beside it
    (what two pip runs at once leave); then ``pip uninstall`` removes one of them and
    every file both list, while pip believes the other is installed."""
    other = Env(tmp_path / "other", "venv")
    other.install(gomp_wheels[VERSIONS[0]])
    env = Env(tmp_path / "env", "venv")
    env.install(gomp_wheels[VERSIONS[1]])
    assert run_doctor(env).findings("dist-installed-twice") == []
    (stale,) = _dist_infos(other)
    shutil.copytree(other.site / stale, env.site / stale)
    assert len(_dist_infos(env)) == 2

    result = run_doctor(env)
    twice = result.one("dist-installed-twice", "nativelib-gomp")
    assert twice["severity"] == "error" and result.code == 1
    assert all(v in twice["message"] for v in VERSIONS)
    assert (
        f'pip install --force-reinstall --no-deps "nativelib-gomp=={VERSIONS[1]}"'
        in (twice["hint"])
    )
    assert str(env.site / stale) in twice["hint"]  # the stale one, not the installed one

    subprocess.run(
        [env.python, "-m", "pip", "uninstall", "-y", "-q", "nativelib-gomp"],
        check=True, env=env.env, capture_output=True,
    )  # fmt: skip
    (left,) = _dist_infos(env)
    assert not (env.site / "nativelib.prefix/lib/libgomp.so.1").exists()
    result = run_doctor(env)
    orphaned = result.one("runtime-record-orphaned", "nativelib-gomp")
    assert orphaned["severity"] == "error" and result.code == 1
    version = left.removesuffix(".dist-info").split("-")[1]
    assert f"nativelib-gomp {version}" in orphaned["message"]
    assert any(p.endswith("nativelib.prefix/lib/libgomp.so.1") for p in orphaned["files"])
    assert (
        orphaned["hint"] == f'pip install --force-reinstall --no-deps "nativelib-gomp=={version}"'
    )
    assert "dist-installed-twice" not in result.codes


def test_two_pip_installs_at_once(tmp_path: Path, gomp_wheels: dict[str, Path]) -> None:
    """The race itself, once: two ``pip install --no-deps`` of the two versions started
    together. Whatever state it leaves, the doctor describes it: two dist-infos are
    named, and one is clean."""
    env = Env(tmp_path / "env", "venv")
    args = [env.python, "-m", "pip", "install", "-q", "--no-index", "--no-deps"]
    procs = [
        subprocess.Popen([*args, str(w)], env=env.env, stderr=subprocess.DEVNULL)
        for w in gomp_wheels.values()
    ]
    for proc in procs:
        proc.wait(timeout=300)
    result = run_doctor(env)
    if len(_dist_infos(env)) == 2:
        twice = result.one("dist-installed-twice", "nativelib-gomp")
        assert all(v in twice["message"] for v in VERSIONS)
    else:
        assert "dist-installed-twice" not in result.codes


def test_library_the_loader_refuses(tmp_path: Path, gomp_wheels: dict[str, Path]) -> None:
    env = Env(tmp_path / "env", "venv")
    env.install(gomp_wheels[VERSIONS[0]])
    lib = env.site / "nativelib.prefix/lib/libgomp.so.1"
    assert "runtime-library-unsafe" not in run_doctor(env).codes
    lib.chmod(0o666)
    result = run_doctor(env)
    unsafe = result.one("runtime-library-unsafe", "libgomp.so.1")
    assert unsafe["severity"] == "error" and result.code == 1
    assert "writable by group or others" in unsafe["message"]
    assert unsafe["files"] == [str(lib)]
    assert "runtime-prefix-unsafe" not in result.codes  # the directories are fine


def _doctor_json(path: Path) -> tuple[dict[str, object], int, float]:
    """``doctor --json --path`` on ``path`` in a child process limited to 1 GiB."""
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
        "from nativelib.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NATIVELIB")}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, "doctor", "--json", "--path", str(path)],
        capture_output=True, text=True, timeout=120, env={**environ, "PYTHONPATH": str(SRC)},
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout), len(proc.stdout), elapsed


def test_100000_needed_entries(tmp_path: Path) -> None:
    lib = tmp_path / "libmany.so"
    lib.write_bytes(build(ElfSpec(needed=[f"libn{i}.so" for i in range(100_000)])).data)
    doc, size, elapsed = _doctor_json(lib)
    assert elapsed < 10 and size < 200_000
    findings = doc["findings"]
    assert isinstance(findings, list)
    (malformed,) = [f for f in findings if f["code"] == "elf-malformed"]
    assert f"more than {MAX_DYNAMIC_ENTRIES} DT_NEEDED entries" in malformed["message"]


def test_findings_per_file_are_bounded(tmp_path: Path) -> None:
    """Under the reader's bound, 4,000 sonames found nowhere: the first findings about
    the file are listed, the rest counted in one."""
    lib = tmp_path / "libmany.so"
    count = 4000
    lib.write_bytes(build(ElfSpec(needed=[f"libn{i}.so" for i in range(count)])).data)
    doc, size, elapsed = _doctor_json(lib)
    assert elapsed < 30 and size < 200_000
    findings = doc["findings"]
    assert isinstance(findings, list)
    about = [f for f in findings if str(lib) in f["files"]]
    codes = [f["code"] for f in about]
    assert codes.count("soname-not-found") == MAX_FINDINGS_PER_FILE
    (summary,) = [f for f in about if f["code"] == "findings-truncated"]
    more = count - MAX_FINDINGS_PER_FILE
    assert f"and {more} more findings ({more} soname-not-found)" in summary["message"]
    assert doc is not None and len(about) == MAX_FINDINGS_PER_FILE + 1


def _fake_dist_info(site: Path, name: str, version: str, record: list[str]) -> Path:
    """A ``.dist-info`` as pip leaves one (METADATA, RECORD); only its RECORD's paths
    matter here (the files it lists are not written: a real ``nativelib/__init__.py`` in
    the site directory would come before pynativelib's on sys.path)."""
    dist_info = site / f"{name}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    )
    rows = [*record, f"{dist_info.name}/METADATA,,", f"{dist_info.name}/RECORD,,"]
    (dist_info / "RECORD").write_text("".join(f"{row}\n" for row in rows))
    return dist_info


def test_another_distribution_owning_nativelib_is_an_error(
    tmp_path: Path, gomp_wheels: dict[str, Path]
) -> None:
    """PyPI's unrelated ``nativelib`` (a ClickHouse reader) installs the import package
    ``nativelib/`` too: its RECORD is named, with the files, as an error. pynativelib's own
    RECORD, and a runtime wheel's (which lists ``nativelib.prefix/share/nativelib/...``),
    are not."""
    env = Env(tmp_path / "env", "venv")
    env.install(gomp_wheels[VERSIONS[0]])
    _fake_dist_info(env.site, "pynativelib", "0.1.0", ["nativelib/__init__.py,sha256=AAAA,10"])
    assert run_doctor(env).findings("import-name-clash") == []
    other = _fake_dist_info(
        env.site,
        "nativelib",
        "0.2.2.6",
        [
            "nativelib/__init__.py,sha256=AAAA,10",
            "nativelib/reader.py,sha256=BBBB,20",
            "nativelib/common/__init__.py,sha256=CCCC,0",
            "nativelib/common/length.cpython-311-x86_64-linux-gnu.so,sha256=DDDD,30",
        ],
    )
    result = run_doctor(env)
    assert result.code == 1
    found = result.one("import-name-clash")
    assert found["severity"] == "error"
    assert "nativelib 0.2.2.6 installs files in nativelib/" in found["message"]
    assert "nativelib/__init__.py" in found["message"] and "and 1 more" in found["message"]
    assert found["files"][0] == str(other / "RECORD")
    assert str(env.site / "nativelib/__init__.py") in found["files"]
    assert found["hint"] == (
        "pip uninstall -y nativelib && pip install --force-reinstall --no-deps pynativelib"
    )
    # Nothing else about the runtime changed.
    assert "runtime-file-conflict" not in result.codes


def test_a_pc_file_another_distribution_puts_in_nativelib_is_a_clash(
    tmp_path: Path, gomp_wheels: dict[str, Path]
) -> None:
    """The runtime wheels write nothing under ``nativelib/`` (their ``.pc`` copies for the
    ``pkgconf`` wheel are in ``nativelib_pkgconfig/``): a real one installed next to
    pynativelib is no clash, and a ``.pc`` file another distribution writes under
    ``nativelib/`` is one, runtime distribution or not."""
    env = Env(tmp_path / "env", "venv")
    env.install(gomp_wheels[VERSIONS[0]])
    assert list((env.site / "nativelib_pkgconfig").iterdir())  # the gomp wheel's copy
    _fake_dist_info(env.site, "pynativelib", "0.1.0", ["nativelib/__init__.py,sha256=AAAA,10"])
    assert run_doctor(env).findings("import-name-clash") == []
    _fake_dist_info(
        env.site,
        "nativelib_extra",
        "1.0",
        ["nativelib/pkgconfig/nativelib-extra.pc,sha256=AAAA,10"],
    )
    found = run_doctor(env).one("import-name-clash")
    assert "nativelib_extra 1.0 installs files in nativelib/" in found["message"]
    assert "nativelib/pkgconfig/nativelib-extra.pc" in found["message"]
