"""The mixed-runtime trap, end to end: real runtime wheels (Debian 11 and 12, from the
``runtime_wheelhouse`` session fixture) and a wheel of this tree, installed by real pip
into a real venv; two real extensions compiled here.

- ``trap_old`` has a RUNPATH to a directory holding Debian 11's libstdc++ (GCC 10.2.1:
  GLIBCXX_3.4.28 at most), as a conda environment's lib/ would be;
- ``trap_new`` needs GLIBCXX_3.4.30 (GCC 12's ``condition_variable::wait``), which the
  prefix's libstdc++ (nativelib-cxx14 12.2.0) has.

Importing ``trap_old`` first makes ``trap_new`` fail; the doctor says so before it
happens; ``nativelib autoload enable`` ends it (one libstdc++, the prefix's), and the
doctor stops saying so.
"""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from nativelib.autoload import PTH_NAME
from nativelib.elf import read_elf
from nativelib_testing import compile_extension, make_venv

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parent.parent

OLD_SOURCE = r"""
#include <Python.h>
#include <string>
static PyObject *hello(PyObject *, PyObject *) {
    std::string s("old");
    s += "-abi";
    return PyUnicode_FromString(s.c_str());
}
static PyMethodDef methods[] = {{"hello", hello, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "trap_old", NULL, -1, methods};
PyMODINIT_FUNC PyInit_trap_old(void) { return PyModule_Create(&mod); }
"""

NEW_SOURCE = r"""
#include <Python.h>
#include <condition_variable>
#include <mutex>
static std::condition_variable cv;
static std::mutex mu;
static PyObject *wait_if(PyObject *, PyObject *arg) {
    if (PyObject_IsTrue(arg)) { std::unique_lock<std::mutex> l(mu); cv.wait(l); }
    Py_RETURN_TRUE;
}
static PyMethodDef methods[] = {{"wait_if", wait_if, METH_O, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "trap_new", NULL, -1, methods};
PyMODINIT_FUNC PyInit_trap_new(void) { return PyModule_Create(&mod); }
"""

IMPORT_BOTH = (
    "import trap_old, trap_new; print(trap_old.hello(), trap_new.wait_if(False)); "
    "print(sorted({l.split()[-1] for l in open('/proc/self/maps') if 'libstdc++' in l}))"
)


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def _trap_findings(python: str, env: dict[str, str]) -> tuple[list[dict[str, object]], object]:
    out = _run([python, "-m", "nativelib", "doctor", "--json"], env)
    assert out.returncode in (0, 1), out.stderr
    report = json.loads(out.stdout)
    trap = [f for f in report["findings"] if f["code"] == "older-runtime-first"]
    return trap, report["autoload"]


def test_autoload_ends_the_glibcxx_trap(
    tmp_path: Path, runtime_wheelhouse: Path, pynativelib_wheel: Path
) -> None:
    venv = tmp_path / "venv"
    make_venv(venv)
    python = str(venv / "bin/python")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "NATIVELIB", "LD_"))}
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--find-links", str(runtime_wheelhouse), "--find-links", str(pynativelib_wheel.parent),
         "nativelib-cxx14==12.2.0", str(pynativelib_wheel)],
        check=True, env=env,
    )  # fmt: skip
    site = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], env
        ).stdout.strip()
    )
    prefix_copy = site / "nativelib.prefix/lib/libstdc++.so.6"
    assert prefix_copy.is_file()

    # Debian 11's libstdc++, from the bullseye nativelib-cxx14 wheel, in a directory of
    # its own outside the environment (as a conda environment's lib/ is).
    (bullseye,) = runtime_wheelhouse.glob("nativelib_cxx14-10.2.1-*.whl")
    old_dir = tmp_path / "debian11-lib"
    old_dir.mkdir()
    with zipfile.ZipFile(bullseye) as z:
        (old_dir / "libstdc++.so.6").write_bytes(z.read("nativelib.prefix/lib/libstdc++.so.6"))
    old = read_elf(old_dir / "libstdc++.so.6").version_definitions
    assert "GLIBCXX_3.4.28" in old and "GLIBCXX_3.4.30" not in old
    assert "GLIBCXX_3.4.30" in read_elf(prefix_copy).version_definitions

    flags = f"-Wl,--enable-new-dtags,-rpath,{old_dir}"
    old_ext = compile_extension(site, "trap_old", OLD_SOURCE, flags)
    assert read_elf(old_ext).runpath == (str(old_dir),)
    new = compile_extension(site, "trap_new", NEW_SOURCE)
    assert "GLIBCXX_3.4.30" in read_elf(new).version_needs["libstdc++.so.6"]  # really needed

    # Without autoload: the older copy, loaded first, is reused by soname.
    out = _run([python, "-c", IMPORT_BOTH], env)
    assert out.returncode == 1
    assert (
        f"ImportError: {old_dir}/libstdc++.so.6: version `GLIBCXX_3.4.30' not found "
        f"(required by {new})"
    ) in out.stderr
    # ... and the doctor says so before it happens.
    trap, autoload = _trap_findings(python, env)
    assert autoload == {"enabled": False, "file": None, "stale": None}
    assert len(trap) == 1, trap
    assert trap[0]["files"] == [str(old_ext), str(old_dir / "libstdc++.so.6"), str(new)]
    assert "up to GLIBCXX_3.4.28), through RUNPATH" in str(trap[0]["message"])
    assert "needs GLIBCXX_3.4.30" in str(trap[0]["message"])
    assert str(trap[0]["hint"]).startswith("nativelib autoload enable")
    # LD_LIBRARY_PATH reaches it too, for the file without a RUNPATH: trap_new alone fails.
    ld_env = {**env, "LD_LIBRARY_PATH": str(old_dir)}
    ld_trap, _ = _trap_findings(python, ld_env)
    assert [set(f["files"]) for f in ld_trap if "LD_LIBRARY_PATH" in str(f["message"])] == [
        {str(old_ext), str(new), str(old_dir / "libstdc++.so.6")}
    ], ld_trap

    nativelib = str(venv / "bin/nativelib")
    on = _run([nativelib, "autoload", "enable"], env)
    assert (on.returncode, on.stdout) == (0, f"autoload enabled: {site / PTH_NAME}\n"), on.stderr
    out = _run([python, "-c", IMPORT_BOTH], env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["old-abi True", str([str(prefix_copy)])]
    trap, autoload = _trap_findings(python, env)
    assert trap == []
    assert autoload == {"enabled": True, "file": str(site / PTH_NAME), "stale": None}

    # An older copy already in the process (LD_PRELOAD) is a conflict the loader refuses
    # to paper over: start stays silent, and the debug line names it.
    preloaded = {**env, "LD_PRELOAD": str(old_dir / "libstdc++.so.6")}
    out = _run([python, "-c", "pass"], preloaded)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
    out = _run([python, "-c", "pass"], {**preloaded, "NATIVELIB_AUTOLOAD_DEBUG": "1"})
    assert len(out.stderr.splitlines()) == 1, out.stderr
    assert out.stderr.startswith("nativelib autoload: nothing in "), out.stderr
    assert f"{old_dir}/libstdc++.so.6" in out.stderr and "GLIBCXX_3.4.30" in out.stderr

    # A broken prefix never breaks interpreter start: the loader's own check refuses it.
    lib = prefix_copy.parent
    lib.chmod(0o777)
    try:
        out = _run([python, "-c", "pass"], env)
        assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
    finally:
        lib.chmod(0o755)

    off = _run([nativelib, "autoload", "disable"], env)
    assert off.returncode == 0 and not (site / PTH_NAME).exists()
    out = _run([python, "-c", IMPORT_BOTH], env)
    assert "version `GLIBCXX_3.4.30' not found" in out.stderr
