"""``nativelib doctor --import``: a real child process imports real modules, and the doctor
says which runtime copies it holds, and which one won."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from doctor_support import IOMP_MAP, IOMP_SRC, needs_glibcxx_3_4_32, run_doctor, versioned_library

from nativelib_testing import SRC, Env, auditwheel_repair, host_runtime_wheels, omp_wheel

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None or shutil.which("gcc") is None,
    reason="needs dpkg-deb and gcc to build runtime wheels and extensions",
)

HOST_LIBGOMP = os.path.realpath("/usr/lib/x86_64-linux-gnu/libgomp.so.1")


@dataclass
class Setup:
    env: Env
    vendored: Path  # ompdemo.libs/libgomp-<hash>.so.1.0.0
    prefix_gomp: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    root = tmp_path_factory.mktemp("imports")
    repaired = auditwheel_repair(omp_wheel(root / "omp"), root / "repaired")
    plain = omp_wheel(root / "plain", package="ompplain")  # NEEDs libgomp.so.1, no RPATH
    env = Env(root, "venv")
    env.install(*host_runtime_wheels(root / "rw"), repaired, plain)
    site = env.site
    modules = {
        "usegomp": 'import nativelib\nnativelib.load("gomp")\nfrom ompplain import total\n',
        "crasher": "import ctypes\nctypes.string_at(0)\n",
        "sleeper": "import time\ntime.sleep(600)\n",
        # Prints what looks like a report line: it must not be taken for one.
        "liar": 'print(\'{"event": "end", "module": "fake", "error": "boom", "maps": []}\')\n',
        "intelomp": "import ctypes, os\n"
        'ctypes.CDLL(os.path.join(os.path.dirname(__file__), "libiomp5.so"))\n',
    }
    for name, code in modules.items():
        (site / name).mkdir()
        (site / name / "__init__.py").write_text(code)
    versioned_library(site / "intelomp" / "libiomp5.so", "libiomp5.so", IOMP_MAP, IOMP_SRC)
    # Outside the venv (on PYTHONPATH only where a test asks): its needs are an error.
    needs_glibcxx_3_4_32(root / "build", root / "elsewhere" / "needy")
    (root / "elsewhere" / "needy" / "__init__.py").write_text("from . import _needy\n")
    (vendored,) = (site / "ompdemo.libs").glob("libgomp-*.so.1.0.0")
    return Setup(env, vendored, site / "nativelib.prefix/lib/libgomp.so.1")


def _mapped_libgomp(env: Env, *modules: str) -> set[str]:
    """What a plain process importing the modules really maps (read independently)."""
    code = textwrap.dedent(
        """
        import importlib, json, sys
        for name in sys.argv[1:]:
            importlib.import_module(name)
        maps = {p[5].strip() for p in (l.split(None, 5) for l in open("/proc/self/maps")) if len(p) == 6}
        print(json.dumps(sorted(p for p in maps if "/libgomp" in p)))
        """
    )
    proc = env.run(code, *modules)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout))


def test_two_libgomp_copies_in_one_process(setup: Setup) -> None:
    result = run_doctor(setup.env, "--import", "ompdemo", "ompplain")
    found = result.one("process-duplicate-runtime", "libgomp.so.1")
    assert found["severity"] == "warning"
    # The host's copy (what ompplain's NEEDED libgomp.so.1 found) won; auditwheel's
    # renamed copy serves only ompdemo.
    assert found["files"] == [HOST_LIBGOMP, str(setup.vendored)]
    assert set(found["files"]) == _mapped_libgomp(setup.env, "ompdemo", "ompplain")
    message = found["message"]
    assert "2 copies loaded in one process after importing ompdemo, ompplain" in message
    assert (
        f"{setup.vendored} (auditwheel's renamed copy, shipped by ompdemo 1.0; brought in by ompdemo)"
        in message
    )
    assert f"every later NEEDED libgomp.so.1 bind to {HOST_LIBGOMP}" in message
    # The exact command for the installed distribution that ships a copy (the host's has
    # no distribution to fix).
    assert found["hint"] == "nativelib fix ompdemo --build"
    assert result.code == 0  # a warning


def test_loading_the_runtime_first_gives_one_copy(setup: Setup) -> None:
    result = run_doctor(setup.env, "--import", "usegomp")
    assert "process-duplicate-runtime" not in result.codes
    found = result.one("process-runtime", "libgomp.so.1")
    assert found["files"] == [str(setup.prefix_gomp)]
    assert "brought in by usegomp" in found["message"]
    assert f"bind to {setup.prefix_gomp}" in found["message"]
    assert _mapped_libgomp(setup.env, "usegomp") == {str(setup.prefix_gomp)}


def test_import_failures(setup: Setup) -> None:
    elsewhere = setup.env.root / "elsewhere"
    result = run_doctor(
        setup.env, "--import", "needy", "no_such_module_here",
        extra_env={"PYTHONPATH": str(elsewhere)},
    )  # fmt: skip
    assert result.code == 1
    glibcxx = result.one("import-failed", "needy")
    assert "needs GLIBCXX_3.4.32 from libstdc++.so.6" in glibcxx["message"]
    (needy,) = (elsewhere / "needy").glob("_needy*.so")
    assert glibcxx["files"] == [str(needy), "/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30"]
    assert glibcxx["hint"] == (
        'pip install "nativelib-cxx14>=13.2", then nativelib.load("cxx14") before importing needy'
    )
    missing = result.one("import-failed", "no_such_module_here")
    assert "ModuleNotFoundError" in missing["message"]
    printed = run_doctor(setup.env, "--import", "liar")
    assert "import-failed" not in printed.codes and printed.code == 0
    assert "ModuleNotFoundError" in missing["message"]
    # The environment scan says the same about the extension, without importing it.
    assert (
        result.one("needs-unsatisfied", "_needy")["hint"] == 'pip install "nativelib-cxx14>=13.2"'
    )


def test_a_crash_keeps_what_came_before(setup: Setup) -> None:
    result = run_doctor(setup.env, "--import", "ompdemo", "crasher", "ompplain")
    crash = result.one("import-crashed")
    assert "died with SIGSEGV while importing crasher" in crash["message"]
    assert "import crasher" in crash["hint"]
    # ompdemo was imported before the crash: its copy is reported; ompplain never ran.
    loaded = result.one("process-runtime", "libgomp.so.1")
    assert loaded["files"] == [str(setup.vendored)]
    assert "no copy is loaded under the soname libgomp.so.1" in loaded["message"]
    assert result.code == 1


def test_a_hang_is_cut_short(setup: Setup) -> None:
    result = run_doctor(setup.env, "--import", "sleeper", "--import-timeout", "2")
    found = result.one("import-crashed")
    assert "did not finish within 2 s (killed) while importing sleeper" in found["message"]


def test_two_openmp_families_in_one_process(setup: Setup) -> None:
    result = run_doctor(setup.env, "--import", "intelomp", "ompplain")
    found = result.one("process-openmp-families")
    assert found["severity"] == "error" and result.code == 1
    assert "GNU (libgomp)" in found["message"] and "Intel (libiomp5)" in found["message"]
    assert set(found["files"]) == {HOST_LIBGOMP, str(setup.env.site / "intelomp/libiomp5.so")}


def test_import_is_repeatable_and_combinable(tmp_path: Path) -> None:
    """``--import a --import b c`` imports a, b and c, in that order (argparse's ``nargs``
    without ``action="extend"`` kept only the last ``--import``)."""
    modules, log = tmp_path / "modules", tmp_path / "imported.txt"
    for name in ("nlmark_a", "nlmark_b", "nlmark_c"):
        (modules / name).mkdir(parents=True)
        (modules / name / "__init__.py").write_text(
            f"import os\nwith open(os.environ['NLMARK_LOG'], 'a') as f:\n    f.write('{name}\\n')\n"
        )
    scanned = tmp_path / "empty"
    scanned.mkdir()
    result = run_doctor(
        None, "--path", str(scanned), "--import", "nlmark_a", "--import", "nlmark_b", "nlmark_c",
        extra_env={"PYTHONPATH": f"{SRC}{os.pathsep}{modules}", "NLMARK_LOG": str(log)},
    )  # fmt: skip
    assert result.code == 0, result.doc
    assert log.read_text().split() == ["nlmark_a", "nlmark_b", "nlmark_c"]
