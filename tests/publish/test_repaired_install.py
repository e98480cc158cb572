"""A repaired wheel installs from the index: a C extension that calls libgfortran (it
stands in for a Fortran extension: gfortran may be absent here, the host's
libgfortran.so.5 is not) is built into a raw ``linux_x86_64`` wheel, repaired with
``nativelib repair --index-url file://.../simple``, and then

- pip's own resolution for a glibc 2.31 target (``pip download --platform
  manylinux_2_31_x86_64``, dependencies included) picks the Debian 11 gfortran5 wheel (the
  Debian 12 one needs glibc 2.34);
- ``pip install`` into a fresh venv on this host installs it, and the import loads
  libgfortran from ``nativelib.prefix/lib``.

Network: the runtime wheels are built from Debian's packages; pynativelib's dependencies
come from PyPI once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from nativelib.cli import main
from nativelib.elf import read_elf
from nativelib.publish.index import build_index
from nativelib.release.coverage import pip_platform_args
from nativelib_testing import host_library, make_venv, write_wheel_members

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build the extension"),
]

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "LD_"))}
TAG = f"cp{sys.version_info.major}{sys.version_info.minor}"
EXT = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
/* libgfortran's string comparison (GFORTRAN_8 in libgfortran.so.5). */
int _gfortran_compare_string(size_t, const char *, size_t, const char *);
static PyObject *compare(PyObject *self, PyObject *args) {
    const char *a, *b;
    Py_ssize_t na, nb;
    if (!PyArg_ParseTuple(args, "s#s#", &a, &na, &b, &nb)) return NULL;
    return PyLong_FromLong(_gfortran_compare_string((size_t)na, a, (size_t)nb, b));
}
static PyMethodDef methods[] = {{"compare", compare, METH_VARARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fstr", NULL, -1, methods};
PyMODINIT_FUNC PyInit__fstr(void) { return PyModule_Create(&module); }
"""
PROBE = (
    "import fstr; "
    "print(fstr.compare('abc', 'abc   '), fstr.compare('abd', 'abc'), "
    "[l.split()[-1] for l in open('/proc/self/maps') if 'libgfortran' in l][0])"
)


def _raw_wheel(root: Path) -> Path:
    src = root / "fstr.c"
    src.parent.mkdir(parents=True)
    src.write_text(EXT)
    ext = root / f"_fstr{sysconfig.get_config_var('EXT_SUFFIX')}"
    gfortran = host_library("libgfortran.so.5")
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O1", f"-I{sysconfig.get_paths()['include']}", "-o",
         str(ext), str(src), f"-L{gfortran.parent}", "-l:libgfortran.so.5"],
        check=True, capture_output=True,
    )  # fmt: skip
    needs = {(f, n.name) for f, n in read_elf(ext).needed_nodes()}
    assert ("libgfortran.so.5", "GFORTRAN_8") in needs
    files = {
        "fstr/__init__.py": b"from ._fstr import compare\n",
        f"fstr/{ext.name}": ext.read_bytes(),
        "fstr-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: fstr\nVersion: 1.0\n",
        "fstr-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: nativelib-tests\nRoot-Is-Purelib: false\n"
            f"Tag: {TAG}-{TAG}-linux_x86_64\n"
        ).encode(),
    }
    return write_wheel_members(root / f"dist/fstr-1.0-{TAG}-{TAG}-linux_x86_64.whl", files)


def test_a_repaired_wheel_installs_from_the_index_on_glibc_2_31_and_here(
    runtime_wheelhouse: Path,
    pynativelib_wheel: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    index = tmp_path / "index"
    index.mkdir()
    runtimes = [
        *runtime_wheelhouse.glob("nativelib_gfortran5-*.whl"),
        *runtime_wheelhouse.glob("nativelib_cxx14-*.whl"),
    ]  # gfortran5 requires cxx14
    for wheel in [*runtimes, pynativelib_wheel]:
        shutil.copy2(wheel, index / wheel.name)
    subprocess.run(
        [sys.executable, "-m", "pip", "--isolated", "download", "-q", "--no-deps",
         "--only-binary=:all:", "packaging", "resolvelib", "-d", str(index)],
        check=True, env=CLEAN_ENV,
    )  # fmt: skip
    build_index(index)
    url = (index / "simple").as_uri()

    raw = _raw_wheel(tmp_path / "build")
    repaired = tmp_path / "repaired"
    assert main(["repair", str(raw), "--plan", "--index-url", url, "-w", str(repaired)]) == 0
    plan = capsys.readouterr().out
    assert main(["repair", str(raw), "--index-url", url, "-w", str(repaired)]) == 0
    capsys.readouterr()
    (wheel,) = repaired.glob("*.whl")
    # The tag repair decided: the floor of the oldest gfortran5 wheel with GFORTRAN_8
    # (Debian 11's, manylinux_2_31), as the plan said.
    assert wheel.name == f"fstr-1.0-{TAG}-{TAG}-manylinux_2_31_x86_64.whl"
    assert "target  manylinux_2_31_x86_64" in plan
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read("fstr-1.0.dist-info/METADATA").decode()
    assert "Requires-Dist: nativelib-gfortran5>=8" in meta.splitlines()

    # pip's resolution for a glibc 2.31 host, dependencies included. pip does not expand
    # --platform manylinux_2_31 to the older tags (cxx14 10.2.1 is manylinux_2_24): every
    # tag such a host runs is spelled out, as `nativelib release --check-platforms` does.
    dl = tmp_path / "dl"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--isolated", "download", "--no-cache-dir",
         *pip_platform_args("manylinux_2_31", "x86_64"), "--only-binary=:all:",
         "--python-version", f"{sys.version_info.major}.{sys.version_info.minor}",
         "--index-url", url, "--find-links", str(repaired), "-d", str(dl), "fstr"],
        capture_output=True, text=True, env=CLEAN_ENV,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = sorted(p.name for p in dl.glob("*.whl"))
    gfortran = [n for n in got if n.startswith("nativelib_gfortran5-")]
    assert gfortran == ["nativelib_gfortran5-10.2.1-py3-none-manylinux_2_31_x86_64.whl"], got
    assert wheel.name in got and any(n.startswith("pynativelib-") for n in got)
    assert "nativelib_cxx14-10.2.1-py3-none-manylinux_2_24_x86_64.whl" in got

    # And on this host: a fresh venv, pip install, the import uses the prefix's copy.
    venv = tmp_path / "venv"
    make_venv(venv)
    python = venv / "bin" / "python"
    proc = subprocess.run(
        [str(python), "-m", "pip", "--isolated", "install", "-q", "--no-cache-dir",
         "--disable-pip-version-check", "--index-url", url, "--find-links", str(repaired),
         "fstr"],
        capture_output=True, text=True, env=CLEAN_ENV,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = subprocess.run(
        [str(python), "-c", PROBE], capture_output=True, text=True, env=CLEAN_ENV, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    same, greater, loaded = run.stdout.split()
    assert (int(same), int(greater)) == (0, 1)  # blank-padded equal; 'abd' > 'abc'
    site = Path(sysconfig.get_path("platlib", vars={"base": str(venv), "platbase": str(venv)}))
    assert Path(loaded).resolve().parent == (site / "nativelib.prefix/lib").resolve()
