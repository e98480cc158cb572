"""``nativelib fix`` over real venvs, offline: a wheel whose libgomp the real ``auditwheel
repair`` vendored, served from a --find-links directory to the real pip of the target venv
(``PIP_NO_INDEX=1``: pip's own download and install, no network), runtime wheels built
from this host's libraries, the CLI run from the test venv with ``--python``."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nativelib_testing import (
    SRC,
    Env,
    auditwheel_repair,
    host_library,
    host_runtime_wheels,
    make_deb,
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


#: The gomp entries of the project's release file (data/release.toml) and the glibc of
#: their catalog sources: the local mirror serves each suite's libgomp1 (the host's
#: library, under that suite's version), so ``fix --build`` chooses by the host's glibc.
GOMP_SUITES = {"bullseye": ("10", "10.2.1-6", "2.31"), "bookworm": ("12", "12.2.0-14", "2.36"),
               "trixie": ("14", "14.2.0-19", "2.41")}  # fmt: skip


def _debian_mirror(root: Path) -> Path:
    """A Debian mirror tree (pool/ and each suite's Packages.xz) with real .debs."""
    import hashlib  # noqa: PLC0415
    import lzma  # noqa: PLC0415

    mirror = root / "debian"
    pool = mirror / "pool/main/g"
    pool.mkdir(parents=True)
    copyright_file = root / "copyright"
    copyright_file.write_text("GCC RUNTIME LIBRARY EXCEPTION, test copy\n")
    gomp = host_library("libgomp.so.1")
    for suite, (gcc, version, _glibc) in GOMP_SUITES.items():
        work = root / suite
        made = [
            make_deb(work, "libgomp1", version, {f"usr/lib/x86_64-linux-gnu/{gomp.name}": gomp}),
            make_deb(work, f"gcc-{gcc}-base", version,
                     {f"usr/share/doc/gcc-{gcc}-base/copyright": copyright_file}),
        ]  # fmt: skip
        debs = [Path(shutil.move(deb, pool / deb.name)) for deb in made]
        stanzas = "".join(
            f"Package: {deb.name.split('_')[0]}\nVersion: {version}\nArchitecture: amd64\n"
            f"Filename: {deb.relative_to(mirror)}\nSize: {deb.stat().st_size}\n"
            f"SHA256: {hashlib.sha256(deb.read_bytes()).hexdigest()}\n\n"
            for deb in debs
        )
        where = mirror / f"dists/{suite}/main/binary-amd64"
        where.mkdir(parents=True)
        (where / "Packages.xz").write_bytes(lzma.compress(stanzas.encode()))
    return mirror


@contextlib.contextmanager
def _served(directory: Path) -> Iterator[str]:
    """``directory`` over HTTP on 127.0.0.1 (a thread of this process)."""
    import functools  # noqa: PLC0415
    import http.server  # noqa: PLC0415
    import threading  # noqa: PLC0415

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


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


def _hinted(hint: object, env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    """The doctor's hint, run as it reads (its environment's nativelib, --python given)."""
    import shlex  # noqa: PLC0415

    assert isinstance(hint, str) and "<" not in hint
    argv = [sys.executable, "-m", *shlex.split(hint), "--python", env.python, *args]
    assert argv[2:4] == ["nativelib", "fix"]
    return subprocess.run(argv, capture_output=True, text=True, env=env.env)


def test_dry_run_then_fix_then_uninstall(tmp_path: Path, built: Built) -> None:
    env = _venv(tmp_path, built, "ompdemo==1.0")
    env.env["PIP_FIND_LINKS"] = str(built.links)  # the user's pip finds ompdemo's wheel
    (hint,) = [f["hint"] for f in _vendored(_doctor(env))]
    assert hint == "nativelib fix ompdemo --build"  # no index of runtime wheels known
    before = _state(env)

    # The runtime wheels in a directory pip's configuration names (the environment's
    # pip.conf, after one without them): the hint names it, and runs.
    conf = env.site.parents[2] / "pip.conf"
    conf.write_text(f"[global]\nfind-links =\n  {built.links}\n  {built.runtimes}\n")
    (hint,) = [f["hint"] for f in _vendored(_doctor(env))]
    assert hint == f"nativelib fix ompdemo --find-links {built.runtimes}"
    ran = _hinted(hint, env, "--dry-run")
    assert ran.returncode == 0, ran.stderr
    assert "runtime wheels to install: nativelib-gomp 12.2.0\n" in ran.stdout
    conf.unlink()

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

    # --build: the runtime wheels built from a Debian mirror served here (no runtime
    # wheel directory given): the newest release-file entry this host's glibc runs.
    glibc = tuple(int(p) for p in os.confstr("CS_GNU_LIBC_VERSION").split()[1].split(".")[:2])
    fits = [
        (g, s) for s, (_, _, g) in GOMP_SUITES.items() if tuple(map(int, g.split("."))) <= glibc
    ]
    if not fits:
        pytest.skip(f"glibc {glibc} is older than every gomp source of the release file")
    suite = max(fits, key=lambda f: tuple(map(int, f[0].split("."))))[1]
    version = GOMP_SUITES[suite][1].split("-")[0]
    mirror = _debian_mirror(tmp_path / "mirror")
    build = [sys.executable, "-m", "nativelib", "fix", "--python", env.python, "--build"]
    with _served(mirror.parent) as base:
        env.env["NATIVELIB_DEBIAN_MIRROR"] = f"{base}/debian"
        env.env["NATIVELIB_CACHE_DIR"] = str(tmp_path / "cache")
        planned = _hinted("nativelib fix ompdemo --build", env, "--dry-run")
        assert planned.returncode == 0, planned.stderr
        assert (
            f"build   nativelib-gomp {version} from debian-{suite} (deb {suite}" in planned.stdout
        )
        assert f"runtime wheels to build and install: nativelib-gomp {version}\n" in planned.stdout
        assert not (tmp_path / "cache").exists()  # nothing downloaded
        # A release file with no entry this host runs; a mirror that does not answer.
        trixie = tmp_path / "trixie.toml"
        trixie.write_text('[runtimes]\ngomp = { debian-trixie = "14.2.0" }\n')
        futures = subprocess.run([*build, "--release-file", str(trixie)], capture_output=True,
                                 text=True, env=env.env)  # fmt: skip
        if glibc < (2, 41):
            assert futures.returncode == 2, futures.stdout
            assert "error: nativelib-gomp: no entry of the release file" in futures.stderr
            assert "satisfies nativelib-gomp>=" in futures.stderr and "hint:" in futures.stderr
        # (a 404: a refused connection is retried for 7 s before the same error)
        down = {**env.env, "NATIVELIB_DEBIAN_MIRROR": f"{base}/nowhere"}
        offline = subprocess.run(build, capture_output=True, text=True, env=down)
        assert offline.returncode == 2, offline.stdout
        assert f"error: {base}/nowhere/dists/{suite}/main/" in offline.stderr
        assert "--build builds the runtime wheels from Debian's archive" in offline.stderr
        assert "Traceback" not in offline.stderr
        assert _state(env) == before

        wheelhouse = tmp_path / "wheelhouse"
        done = subprocess.run([*build, "--wheelhouse", str(wheelhouse)], capture_output=True,
                              text=True, env=env.env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (kept,) = wheelhouse.glob("nativelib_gomp-*.whl")
    assert kept.name.startswith(f"nativelib_gomp-{version}-")
    manifest = json.loads(
        (env.site / "nativelib.prefix/share/nativelib/runtimes/nativelib-gomp.json").read_text()
    )
    assert manifest["version"] == version and base in json.dumps(manifest)
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
    proc = _fix(env, built, "--wheelhouse", str(tmp_path / "kept"))
    assert proc.returncode == 2 and "error: --wheelhouse goes with --build" in proc.stderr
    assert not (tmp_path / "kept").exists()
    before = _state(env)
    proc = _fix(env, built, "--wheel", str(built.other))
    assert proc.returncode == 2
    assert "is not the wheel it was installed from: ompdemo/__init__.py differs" in proc.stderr
    assert _state(env) == before
