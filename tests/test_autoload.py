"""``nativelib autoload enable|disable|status`` and the ``.pth`` preload, offline.

A real venv (``python -m venv --without-pip``, then real pip through ``pip --python``)
with nativelib-cxx14 and nativelib-gomp built from this host's libraries (real debs, real
``nativelib build``); pynativelib from this tree through ``PYTHONPATH`` (as an editable
install would make it importable by the time the ``.pth`` runs). Every interpreter start
is a real one: the ``.pth`` is run by ``site``, and what it loaded is read from the
child's ``/proc/self/maps``. The network test (test_autoload_network.py) does the same
with installed wheels and the GLIBCXX trap itself.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from _pynativelib import parse_plan
from nativelib.autoload import PTH_NAME, format_plan, read_plan, stale
from nativelib_testing import host_runtime_wheels

SRC = Path(__file__).resolve().parent.parent / "src"
PY = f"python{sys.version_info.major}.{sys.version_info.minor}"
MAPS = (
    "import sys; print('\\n'.join(sorted({l.split()[-1] for l in open('/proc/self/maps') "
    "if 'nativelib.prefix' in l})))"
)


class Venv:
    def __init__(self, root: Path) -> None:
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(root)], check=True
        )  # fmt: skip
        self.python = str(root / "bin/python")
        self.site = root / "lib" / PY / "site-packages"
        self.prefix = self.site / "nativelib.prefix"
        self.pth = self.site / PTH_NAME
        base = {
            k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "NATIVELIB", "LD_"))
        }
        self.env = {**base, "PYTHONPATH": str(SRC), "PYTHONNOUSERSITE": "1"}

    def run(
        self, *args: str, env: dict[str, str] | None = None, wrapper: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*wrapper, self.python, *args], capture_output=True, text=True,
            env={**self.env, **(env or {})},
        )  # fmt: skip

    def autoload(self, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return self.run("-m", "nativelib", "autoload", *args, **kw)  # type: ignore[arg-type]

    def mapped(self, env: dict[str, str] | None = None) -> list[str]:
        out = self.run("-c", MAPS, env=env)
        assert out.returncode == 0, out.stderr
        return out.stdout.split()


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    root = tmp_path_factory.mktemp("autoload")
    wheels = host_runtime_wheels(root / "build")
    env = Venv(root / "venv")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", env.python, "install", "-q", "--no-index",
         "--no-deps", "--disable-pip-version-check", *map(str, wheels)],
        check=True,
    )  # fmt: skip
    return env


@pytest.fixture
def clean(venv: Venv) -> Iterator[Venv]:
    """The venv with autoload off before and after the test."""
    venv.pth.unlink(missing_ok=True)
    yield venv
    venv.pth.unlink(missing_ok=True)


def test_enable_status_disable(clean: Venv) -> None:
    venv = clean
    status = venv.autoload("status")
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[0] == "autoload: disabled"
    assert f"file: {venv.pth}" in status.stdout
    assert "would preload at interpreter start" in status.stdout
    assert "nativelib-cxx14 12.2.0: libgcc_s.so.1 libstdc++.so.6 libatomic.so.1" in status.stdout
    assert "nativelib-gomp 12.2.0: libgomp.so.1" in status.stdout
    assert venv.mapped() == []

    on = venv.autoload("enable")
    assert (on.returncode, on.stdout) == (0, f"autoload enabled: {venv.pth}\n"), on.stderr
    plan = parse_plan(read_plan(venv.pth.read_text()))
    assert plan is not None and plan[0] == 1, venv.pth.read_text()
    lib = venv.prefix / "lib"
    # The plan: the libraries in load order, each with its stamp, from the one prefix.
    ((prefix, libs),) = plan[4]
    assert prefix == str(venv.prefix)
    assert [entry[0] for entry in libs] == [
        "libgcc_s.so.1", "libstdc++.so.6", "libatomic.so.1", "libgomp.so.1"
    ]  # fmt: skip
    gomp = (lib / "libgomp.so.1").stat()
    assert libs[3] == (  # each library by its stamp
        "libgomp.so.1", gomp.st_size, gomp.st_mtime_ns, gomp.st_ino, "nativelib-gomp"
    )  # fmt: skip
    before = venv.pth.stat()
    again = venv.autoload("enable")  # idempotent: the file is left as it is
    assert (again.returncode, again.stdout) == (0, f"autoload already enabled: {venv.pth}\n")
    after = venv.pth.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in venv.site.iterdir() if p.name.endswith(".tmp")) == []
    status = venv.autoload("status")
    assert status.stdout.splitlines()[0] == "autoload: enabled"
    assert "plan: current (start-up loads from it, without a discovery)\n" in status.stdout
    assert "preloads at interpreter start, in this order:" in status.stdout

    # Every interpreter start now maps the prefix's copies, before anything is imported.
    assert venv.mapped() == sorted(
        str(lib / n) for n in ("libatomic.so.1", "libgcc_s.so.1", "libgomp.so.1", "libstdc++.so.6")
    )
    quiet = venv.run("-c", "pass")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    # At start-up, from the stored plan, it imports pynativelib's top-level module and
    # _ctypes (for dlopen), and no nativelib module at all: nothing of json, re, typing,
    # ctypes or warnings either (a .pth line runs at every start).
    modules = "import sys; print(' '.join(sorted(sys.modules)))"
    added = set(venv.run("-c", modules).stdout.split()) - set(
        venv.run("-c", modules, env={"NATIVELIB_DISABLE": "1"}).stdout.split()
    )
    assert added == {"_ctypes"}, added
    started = set(venv.run("-c", modules).stdout.split())
    assert "_pynativelib" in started
    assert not [m for m in started if m.split(".")[0] == "nativelib"], started
    assert venv.mapped({"NATIVELIB_DISABLE": "1"}) == []
    # nativelib.load() afterwards is what the autoload did (the same loader, in the same
    # process): the prefix's copies, and no second one.
    code = "import nativelib; print(sorted({l.path for l in nativelib.load('cxx14')}))\n" + MAPS
    again = venv.run("-c", code)
    assert again.returncode == 0, again.stderr
    loaded, *maps = again.stdout.splitlines()
    assert loaded == str(
        sorted(str(lib / n) for n in ("libatomic.so.1", "libgcc_s.so.1", "libstdc++.so.6"))
    )
    assert maps == venv.mapped()

    off = venv.autoload("disable")
    assert (off.returncode, off.stdout) == (0, f"autoload disabled: removed {venv.pth}\n")
    assert not venv.pth.exists()
    assert venv.mapped() == []
    again = venv.autoload("disable")
    assert (again.returncode, again.stdout) == (0, "autoload already disabled\n")


def test_debug_writes_one_line(clean: Venv) -> None:
    venv = clean
    assert venv.autoload("enable").returncode == 0
    out = venv.run("-c", "pass", env={"NATIVELIB_AUTOLOAD_DEBUG": "1"})
    assert out.returncode == 0
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr  # once, though site runs a venv's .pth files twice
    assert lines[0].startswith("nativelib autoload: libgcc_s.so.1 (loaded ")
    assert f"libstdc++.so.6 (loaded {venv.prefix}/lib/libstdc++.so.6)" in lines[0]
    assert lines[0].endswith(" ms; from the stored plan")
    off = venv.run("-c", "pass", env={"NATIVELIB_AUTOLOAD_DEBUG": "1", "NATIVELIB_DISABLE": "1"})
    assert off.stderr.startswith("nativelib autoload: nothing in ")
    assert off.stderr.rstrip().endswith("NATIVELIB_DISABLE is set")


def _corrupt_index(venv: Venv) -> Iterator[str]:
    index = venv.prefix / "share/nativelib/runtimes/nativelib-cxx14.load"
    saved = index.read_bytes()
    index.write_bytes(b"not a loader index\n")
    try:
        yield "not a loader index"
    finally:
        index.write_bytes(saved)


def _writable_lib(venv: Venv) -> Iterator[str]:
    lib = venv.prefix / "lib"
    mode = stat.S_IMODE(lib.stat().st_mode)
    lib.chmod(0o777)
    try:
        yield "is writable by group or others"
    finally:
        lib.chmod(mode)


def _writable_library(venv: Venv) -> Iterator[str]:
    """A library made writable by others after enable: its stamp (size, mtime, inode)
    still holds, so only the safety rule, checked at every start, catches it."""
    gomp = venv.prefix / "lib/libgomp.so.1"
    mode = stat.S_IMODE(gomp.stat().st_mode)
    gomp.chmod(0o666)
    try:
        yield f"{gomp} is writable by group or others"
    finally:
        gomp.chmod(mode)


def _removed_prefix(venv: Venv) -> Iterator[str]:
    away = venv.site / "prefix-away"
    venv.prefix.rename(away)
    try:
        yield "the stored plan is stale (the runtime directories on sys.path changed)"
    finally:
        away.rename(venv.prefix)


@pytest.mark.parametrize(
    "breakage", [_writable_lib, _corrupt_index, _writable_library, _removed_prefix]
)
def test_a_broken_prefix_never_breaks_start(clean: Venv, breakage: object) -> None:
    """After enable, whatever happens to the prefix: start stays silent and loads what
    the loader's own rules allow (the stored plan is checked, and the safety rule
    applied to what it names, at every start; anything amiss takes the full path)."""
    venv = clean
    assert venv.autoload("enable").returncode == 0
    for reason in breakage(venv):  # type: ignore[operator]
        out = venv.run("-c", "pass")
        assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
        mapped = venv.mapped()
        debug = venv.run("-c", "pass", env={"NATIVELIB_AUTOLOAD_DEBUG": "1"})
        assert debug.returncode == 0
        assert len(debug.stderr.splitlines()) == 1, debug.stderr
        assert reason in debug.stderr
        assert "; full discovery: " in debug.stderr
    lib = venv.prefix / "lib"
    if breakage in (_writable_lib, _removed_prefix):
        assert mapped == []  # the loader refuses the whole prefix; or there is none
    elif breakage is _writable_library:
        assert mapped == sorted(
            str(lib / n) for n in ("libatomic.so.1", "libgcc_s.so.1", "libstdc++.so.6")
        )  # gomp refused, cxx14 loaded
    else:
        assert mapped == [str(lib / "libgomp.so.1")]  # cxx14's index refused
    # Put back as it was: the plan holds again; an index written again (the same bytes)
    # is another file for the stamp, and the full path loads everything, as it should.
    debug = venv.run("-c", "pass", env={"NATIVELIB_AUTOLOAD_DEBUG": "1"})
    assert debug.stderr.count(" (loaded ") == 4, debug.stderr
    if breakage is _corrupt_index:
        assert "; full discovery: the stored plan is stale (" in debug.stderr
    else:
        assert debug.stderr.rstrip().endswith("; from the stored plan"), debug.stderr


def test_a_stale_plan_still_preloads(clean: Venv) -> None:
    """A runtime library replaced after enable (as an upgrade of the runtime wheel
    replaces it: a new file): start-up takes the full discovery and preloads the new
    file; status and the doctor say the plan is stale; enable writes it again."""
    venv = clean
    assert venv.autoload("enable").returncode == 0
    gomp = venv.prefix / "lib/libgomp.so.1"
    saved = gomp.read_bytes()
    new = gomp.with_name(".new")
    new.write_bytes(saved)
    new.chmod(0o644)
    new.replace(gomp)  # another inode
    why = f"{gomp} changed"
    status = venv.autoload("status")
    assert (
        f"plan: stale ({why}): start-up runs the full discovery (correct, slower); "
        "run `nativelib autoload enable` again\n"
    ) in status.stdout, status.stdout
    doctor = venv.run("-m", "nativelib", "doctor", "--json", "--path", str(venv.site))
    assert doctor.returncode in (0, 1), doctor.stderr
    assert json.loads(doctor.stdout)["autoload"] == {
        "enabled": True, "file": str(venv.pth), "stale": why
    }  # fmt: skip
    text = venv.run("-m", "nativelib", "doctor", "--path", str(venv.site)).stdout
    assert f"autoload plan: stale ({why}): start-up runs the full discovery; " in text
    lib = venv.prefix / "lib"
    expected = sorted(
        str(lib / n) for n in ("libatomic.so.1", "libgcc_s.so.1", "libgomp.so.1", "libstdc++.so.6")
    )
    assert venv.mapped() == expected
    debug = venv.run("-c", "pass", env={"NATIVELIB_AUTOLOAD_DEBUG": "1"})
    assert f"(loaded {gomp})" in debug.stderr
    assert debug.stderr.rstrip().endswith(f"; full discovery: the stored plan is stale ({why})")
    # enable writes the plan again, and start-up loads from it.
    again = venv.autoload("enable")
    assert (again.returncode, again.stdout) == (0, f"autoload enabled: {venv.pth}\n")
    assert "plan: current" in venv.autoload("status").stdout
    debug = venv.run("-c", "pass", env={"NATIVELIB_AUTOLOAD_DEBUG": "1"})
    assert debug.stderr.rstrip().endswith("; from the stored plan"), debug.stderr
    assert venv.mapped() == expected


def test_not_importable_is_silent(clean: Venv) -> None:
    """The file outlives pynativelib (uninstalled; or PyPI's other 'nativelib' took the
    name): interpreter start stays silent, and the debug line says why."""
    venv = clean
    assert venv.autoload("enable").returncode == 0
    bare = {"PYTHONPATH": ""}
    out = venv.run("-c", "import sys; print('nativelib' in sys.modules)", env=bare)
    assert (out.returncode, out.stdout, out.stderr) == (0, "False\n", "")
    debug = venv.run("-c", "pass", env={**bare, "NATIVELIB_AUTOLOAD_DEBUG": "1"})
    assert debug.stderr.startswith("nativelib autoload: not run: ModuleNotFoundError(")
    assert len(debug.stderr.splitlines()) == 1


def test_a_file_not_ours_is_left_alone(clean: Venv) -> None:
    venv = clean
    venv.pth.write_text("/opt/someone-elses-dir\n")
    for action in ("enable", "disable"):
        out = venv.autoload(action)
        assert out.returncode == 2
        assert out.stderr.startswith(
            f"error: {venv.pth}: exists and was not written by 'nativelib autoload'"
        )
        assert "\nhint: " in out.stderr and "Traceback" not in out.stderr
        assert venv.pth.read_text() == "/opt/someone-elses-dir\n"
    status = venv.autoload("status")
    assert status.returncode == 0
    assert "but nativelib autoload did not write it" in status.stdout


def _without_dac_override() -> tuple[str, ...]:
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a mode of 555 would not stop us")
    return ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--")


def test_an_unwritable_site_directory(clean: Venv) -> None:
    venv = clean
    wrapper = _without_dac_override()
    mode = stat.S_IMODE(venv.site.stat().st_mode)
    venv.site.chmod(0o555)
    try:
        out = venv.autoload("enable", wrapper=wrapper)
    finally:
        venv.site.chmod(mode)
    assert out.returncode == 2, out
    assert out.stderr.startswith(
        f"error: {venv.site}: cannot write {PTH_NAME} in this site directory: Permission denied\n"
        "hint: "
    ), out.stderr
    assert not venv.pth.exists()
    assert [p.name for p in venv.site.iterdir() if p.name.endswith(".tmp")] == []
    # And a file that cannot be removed.
    assert venv.autoload("enable").returncode == 0
    venv.site.chmod(0o555)
    try:
        out = venv.autoload("disable", wrapper=wrapper)
    finally:
        venv.site.chmod(mode)
    assert out.returncode == 2
    assert out.stderr.startswith(f"error: {venv.site}: cannot remove {PTH_NAME}")
    assert venv.pth.exists()


def test_user_site(tmp_path: Path) -> None:
    """--user writes into the user site directory (created when missing), which an
    interpreter that reads it runs at start."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "NATIVELIB", "LD_"))}
    env |= {"PYTHONPATH": str(SRC), "PYTHONUSERBASE": str(tmp_path / "base")}
    python = sys._base_executable  # type: ignore[attr-defined]
    user_site = tmp_path / "base/lib" / PY / "site-packages"
    cmd = [python, "-m", "nativelib", "autoload"]
    out = subprocess.run([*cmd, "enable", "--user"], capture_output=True, text=True, env=env)
    assert (out.returncode, out.stdout) == (0, f"autoload enabled: {user_site / PTH_NAME}\n")
    debug = subprocess.run(
        [python, "-c", "pass"], capture_output=True, text=True,
        env={**env, "NATIVELIB_AUTOLOAD_DEBUG": "1"},
    )  # fmt: skip
    assert debug.stderr.startswith("nativelib autoload: "), debug.stderr
    off = subprocess.run([*cmd, "disable", "--user"], capture_output=True, text=True, env=env)
    assert off.returncode == 0 and not (user_site / PTH_NAME).exists()


def test_the_plan_text() -> None:
    """The plan's text round-trips; a path it cannot hold (a tab, a line break) makes no
    plan (start-up then takes the full path), and text that is not a plan is none."""
    import _pynativelib  # noqa: PLC0415

    manifests = [("/site/nativelib.prefix/share/nativelib/runtimes", 1, 2, 3)]
    indexes = [("/site/nativelib.prefix/share/nativelib/runtimes/nativelib-gomp.load", 4, 5, 6)]
    libraries = [
        ("/site/nativelib.prefix", "libgcc_s.so.1", 7, 8, 9, "nativelib-cxx14"),
        ("/site/nativelib.prefix", "libgomp.so.1", 10, 11, 12, "nativelib-gomp"),
        ("/user/nativelib.prefix", "libgfortran.so.5", 13, 14, 15, "nativelib-gfortran5"),
    ]
    suffix = "nativelib.prefix/share/nativelib/runtimes"
    text = format_plan(suffix, manifests, indexes, libraries)
    assert _pynativelib.parse_plan(text) == (
        _pynativelib.PLAN_FORMAT,
        suffix,
        manifests,
        indexes,
        [
            ("/site/nativelib.prefix", [libraries[0][1:], libraries[1][1:]]),
            ("/user/nativelib.prefix", [libraries[2][1:]]),
        ],
    )
    for bad in ("/si\tte/nativelib.prefix", "/si\nte/nativelib.prefix"):
        assert format_plan(suffix, manifests, indexes, [(bad, *libraries[0][1:])]) is None
    assert text is not None
    for garbage in (None, "", "not a plan", text.replace("\t1\t", "\t2\t", 1), text + "\nX\t1"):
        assert _pynativelib.parse_plan(garbage) is None
    assert stale("not a plan") == ("the stored plan was written by another version of pynativelib")


def test_one_rule_and_one_marker() -> None:
    """The loader and the start-up path check with the same function; the launcher finds
    this tree's ``nativelib/__init__.py`` to be pynativelib's (its marker line)."""
    import _pynativelib  # noqa: PLC0415
    import _pynativelib_main  # noqa: PLC0415
    from nativelib import loader  # noqa: PLC0415

    assert loader._unsafe is _pynativelib.unsafe
    assert loader._chain is _pynativelib.chain
    assert _pynativelib_main.foreign_package() is None
