"""``nativelib fix`` over real venvs, offline: a wheel whose libgomp the real ``auditwheel
repair`` vendored, served from a --find-links directory to the real pip of the target venv
(``PIP_NO_INDEX=1``: pip's own download and install, no network), runtime wheels built
from this host's libraries, the CLI run from the test venv with ``--python``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from nativelib_testing import (
    SRC,
    Env,
    auditwheel_repair,
    host_runtime_wheels,
    omp_wheel,
    write_wheel_members,
)

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("dpkg-deb") is None,
    reason="needs dpkg-deb and gcc to build runtime wheels and extensions",
)


@dataclass
class Built:
    runtimes: Path  # runtime wheels (a --find-links directory)
    links: Path  # ompdemo 1.0 and ompfail 1.0, both vendoring libgomp (auditwheel)
    other: Path  # another build of ompdemo 1.0 (its __init__.py differs)


def _failing(root: Path) -> Path:
    """ompfail: an ompdemo whose __init__ raises unless its vendored ompfail.libs is
    there, so its import check fails once the copy is gone (the failure is made here)."""
    raw = omp_wheel(root / "raw", package="ompfail")
    with zipfile.ZipFile(raw) as zf:
        members = {n: zf.read(n) for n in zf.namelist() if not n.endswith("/RECORD")}
    members["ompfail/__init__.py"] = (
        b"import os\n"
        b"if not os.path.isdir(os.path.join(os.path.dirname(__file__), '..', 'ompfail.libs')):\n"
        b"    raise ImportError('made to fail without its vendored copy')\n"
        b"from ._omp import total\n"
    )
    raw.unlink()
    return write_wheel_members(raw, members)


def _pynativelib(dest: Path) -> Path:
    """A wheel of this checkout's ``src/nativelib`` and its top-level ``_pynativelib*``
    modules (the loader imports ``_pynativelib``), written here (the runtime wheels
    require ``pynativelib``; building it with its backend would need the network). No
    Requires-Dist: its own dependencies are not what this test is about."""
    from nativelib import __version__  # noqa: PLC0415

    members = {
        str(p.relative_to(SRC)): p.read_bytes()
        for p in sorted([*SRC.glob("_pynativelib*.py"), *(SRC / "nativelib").rglob("*")])
        if p.is_file() and "__pycache__" not in p.parts
    }
    dist_info = f"pynativelib-{__version__}.dist-info"
    members[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: pynativelib\nVersion: {__version__}\n".encode()
    )
    members[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: nativelib-tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n"
    )
    return write_wheel_members(dest / f"pynativelib-{__version__}-py3-none-any.whl", members)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("fix")
    runtimes = root / "runtimes"
    runtimes.mkdir()
    for w in host_runtime_wheels(root / "rw"):
        shutil.copy2(w, runtimes / w.name)
    _pynativelib(runtimes)
    links = root / "links"
    auditwheel_repair(omp_wheel(root / "omp"), links)
    auditwheel_repair(_failing(root / "fail"), links)
    other = omp_wheel(root / "other")
    with zipfile.ZipFile(other) as zf:
        members = {n: zf.read(n) for n in zf.namelist() if not n.endswith("/RECORD")}
    members["ompdemo/__init__.py"] += b"# another build\n"
    other.unlink()
    other = auditwheel_repair(write_wheel_members(other, members), root / "other-repaired")
    return Built(runtimes, links, other)


def _venv(root: Path, built: Built, *packages: str) -> Env:
    env = Env(root, "venv")
    # pynativelib installed from its wheel (the runtime wheels require it), not from the
    # source tree's .pth, whose egg-info names dependencies this offline venv lacks.
    (env.site / "pynativelib-src.pth").unlink()
    packages = ("pynativelib", *packages)
    env.env["PIP_NO_INDEX"] = "1"
    env.env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    subprocess.run(
        [env.python, "-m", "pip", "install", "-q", "--find-links", str(built.links),
         "--find-links", str(built.runtimes), "--no-deps", *packages],
        check=True, env=env.env,
    )  # fmt: skip
    return env


def _fix(env: Env, built: Built, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "nativelib", "fix", "--python", env.python]
    argv += ["--find-links", str(built.runtimes), "--find-links", str(built.links), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env.env)


def _state(env: Env) -> dict[str, str]:
    """Every file under the site directory (but bytecode caches): its bytes' hash, so
    RECORDs, INSTALLER and every installed file are compared."""
    import hashlib  # noqa: PLC0415

    out = {}
    for p in sorted(env.site.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            out[str(p.relative_to(env.site))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _doctor(env: Env) -> dict[str, object]:
    proc = subprocess.run(
        [env.python, "-m", "nativelib", "doctor", "--json"],
        capture_output=True, text=True, env=env.env,
    )  # fmt: skip
    doc: dict[str, object] = json.loads(proc.stdout)
    return doc


def _vendored(doc: dict[str, object]) -> list[dict[str, object]]:
    findings = doc["findings"]
    assert isinstance(findings, list)
    return [f for f in findings if f["code"] == "vendored-runtime"]


def test_dry_run_then_fix_then_uninstall(tmp_path: Path, built: Built) -> None:
    env = _venv(tmp_path, built, "ompdemo==1.0")
    (hint,) = [f["hint"] for f in _vendored(_doctor(env))]
    assert hint == "nativelib fix ompdemo"
    before = _state(env)

    dry = _fix(env, built, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert _state(env) == before
    out = dry.stdout
    assert "ompdemo 1.0 (ompdemo-1.0-" in out
    assert "remove  ompdemo.libs/libgomp-" in out and "bytes)" in out
    assert "require nativelib-gomp" in out
    assert "runtime wheels to install: nativelib-gomp 12.2.0\n" in out
    assert "--no-deps --force-reinstall --no-index" in out
    assert "libgomp.so.1: 1 vendored copy before, 0 after" in out

    done = _fix(env, built)
    assert done.returncode == 0, done.stderr
    assert "ompdemo 1.0: fixed" in done.stdout
    prefix = env.site / "nativelib.prefix/lib"
    assert f"libgomp.so.1 mapped once, from {os.path.realpath(prefix)}" in done.stdout
    assert "libgomp.so.1: 1 vendored copy before, 0 after" in done.stdout
    assert not (env.site / "ompdemo.libs").exists()
    dist_info = env.site / "ompdemo-1.0.dist-info"
    assert (dist_info / "INSTALLER").read_text().strip() == "pip"
    assert not (dist_info / "direct_url.json").exists()
    assert not _vendored(_doctor(env))
    ran = env.run("import ompdemo; print(ompdemo.total(1000)[0])")
    assert ran.stdout.strip() == "499500", ran.stderr
    check = subprocess.run(
        [env.python, "-m", "pip", "check"], capture_output=True, text=True, env=env.env
    )
    assert check.returncode == 0, check.stdout

    # Nothing left to do now; then pip uninstalls it without a file left behind.
    again = _fix(env, built)
    assert again.returncode == 0 and "nothing to fix" in again.stdout
    record = (dist_info / "RECORD").read_text().splitlines()
    files = [env.site / line.rsplit(",", 2)[0] for line in record]
    subprocess.run(
        [env.python, "-m", "pip", "uninstall", "-y", "-q", "ompdemo"], check=True, env=env.env
    )
    assert [f for f in files if f.exists()] == []
    assert not (env.site / "ompdemo").exists()


def test_failed_import_check_is_rolled_back(tmp_path: Path, built: Built) -> None:
    env = _venv(tmp_path, built, "ompfail==1.0")
    before = _state(env)
    proc = _fix(env, built, "ompfail")
    assert proc.returncode == 2
    assert "error: ompfail 1.0: importing ['ompfail'] failed" in proc.stderr
    assert "made to fail without its vendored copy" in proc.stderr
    assert "the original wheel is reinstalled" in proc.stderr
    assert "Traceback" not in proc.stderr.split("error:")[0]
    # RECORDs (and every other file) as before; the runtime wheel it added is gone.
    assert _state(env) == before
    assert env.run("import ompfail; print(ompfail.total(10)[0])").stdout.strip() == "45"


REFUSALS = [
    ("INSTALLER", "uv\n", "installed by 'uv', not pip"),
    (
        "direct_url.json",
        json.dumps({"url": "file:///src/ompdemo", "dir_info": {"editable": True}}),
        "installed editable",
    ),
    (
        "direct_url.json",
        json.dumps({"url": "https://example.org/x.git", "vcs_info": {"vcs": "git"}}),
        "installed from a VCS URL",
    ),
]


def test_refusals(tmp_path: Path, built: Built) -> None:
    """What uv or pip writes into the dist-info for each of these installs, written here
    into a pip-installed one (the installs themselves need uv, a build backend and a VCS
    server this offline test does not have). Nothing changes, with or without a name."""
    env = _venv(tmp_path, built, "ompdemo==1.0")
    dist_info = env.site / "ompdemo-1.0.dist-info"
    installer = (dist_info / "INSTALLER").read_text()
    for name, content, reason in REFUSALS:
        (dist_info / name).write_text(content)
        before = _state(env)
        for args in ((), ("ompdemo",), ("--dry-run",)):
            proc = _fix(env, built, *args)
            assert proc.returncode == 2, proc.stdout
            assert f"error: ompdemo 1.0: refused: {reason}" in proc.stderr
            assert "hint:" in proc.stderr and "Traceback" not in proc.stderr
        assert _state(env) == before
        if name == "INSTALLER":
            (dist_info / name).write_text(installer)
        else:
            (dist_info / name).unlink()


_READ_ONLY = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && shift && exec "$@"'


def test_read_only_site_is_refused(tmp_path: Path, built: Built) -> None:
    """As a user, a site directory without write permission; as root (which writes
    there anyway), a read-only bind mount of it in a mount namespace of its own."""
    env = _venv(tmp_path, built, "ompdemo==1.0")
    before = _state(env)
    if os.geteuid() == 0:
        unshare = shutil.which("unshare")
        probe = subprocess.run(
            [unshare or "unshare", "-m", "sh", "-c", _READ_ONLY, str(env.site), "-", "true"],
            capture_output=True,
        )
        if unshare is None or probe.returncode != 0:
            pytest.skip("root without a mount namespace: no read-only directory to be had")
        argv = [unshare, "-m", "sh", "-c", _READ_ONLY, str(env.site), "-"]
        argv += [sys.executable, "-m", "nativelib", "fix", "--python", env.python]
        argv += ["--find-links", str(built.runtimes), "--find-links", str(built.links)]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env.env)
    else:
        env.site.chmod(0o555)
        try:
            proc = _fix(env, built)
        finally:
            env.site.chmod(0o755)
    assert proc.returncode == 2, proc.stdout
    assert "error: ompdemo 1.0: refused: the environment cannot be written" in proc.stderr
    assert _state(env) == before


def test_not_installed_and_bad_wheel(tmp_path: Path, built: Built) -> None:
    env = _venv(tmp_path, built, "ompdemo==1.0")
    proc = _fix(env, built, "nosuchdist")
    assert proc.returncode == 2 and "error: nosuchdist: not installed" in proc.stderr
    proc = _fix(env, built, "--wheel", str(tmp_path / "missing.whl"))
    assert proc.returncode == 2 and "not a wheel file" in proc.stderr
    before = _state(env)
    proc = _fix(env, built, "--wheel", str(built.other))
    assert proc.returncode == 2
    assert "is not the wheel it was installed from: ompdemo/__init__.py differs" in proc.stderr
    assert _state(env) == before
