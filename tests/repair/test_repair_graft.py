"""A raw wheel that needs a library no runtime owns (libfoo, compiled here next to the
extension) besides libgomp: ``nativelib repair`` runs the real ``auditwheel repair`` as a
step (``--exclude`` for every runtime soname) so libfoo is grafted, then links libgomp to
the runtime wheel; installed with pip next to nativelib-gomp (built from this host's
libgomp), the extension runs with no LD_LIBRARY_PATH."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

from nativelib.cli import main
from nativelib.elf import read_elf
from nativelib_testing import Env, host_runtime_wheels, write_wheel_members

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None or shutil.which("gcc") is None,
    reason="needs dpkg-deb and gcc to build runtime wheels and extensions",
)

FOO = "int foo_scale(int x) { return 3 * x; }\n"
EXT = r"""
#include <Python.h>
#include <omp.h>
int foo_scale(int);
static PyObject *total(PyObject *self, PyObject *args) {
    long n;
    if (!PyArg_ParseTuple(args, "l", &n)) return NULL;
    long long s = 0;
#pragma omp parallel for reduction(+ : s)
    for (long i = 0; i < n; i++) s += i;
    return Py_BuildValue("Li", s, foo_scale(omp_get_max_threads() > 0));
}
static PyMethodDef methods[] = {{"total", total, METH_VARARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ext", NULL, -1, methods};
PyMODINIT_FUNC PyInit__ext(void) { return PyModule_Create(&module); }
"""
PROBE = textwrap.dedent(
    """
    import ompfoo
    total, three = ompfoo.total(1000)
    libs = sorted({l.split()[-1] for l in open("/proc/self/maps") if "libgomp" in l or "libfoo" in l})
    print(total, three, "|".join(libs))
    """
)


def _raw_wheel(root: Path) -> tuple[Path, Path]:
    lib = root / "lib"
    lib.mkdir(parents=True)
    (root / "foo.c").write_text(FOO)
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-Wl,-soname,libfoo.so.1", "-o", str(lib / "libfoo.so.1"),
         str(root / "foo.c")],
        check=True,
    )  # fmt: skip
    (lib / "libfoo.so").symlink_to("libfoo.so.1")
    (root / "ext.c").write_text(EXT)
    ext = root / f"_ext{sysconfig.get_config_var('EXT_SUFFIX')}"
    include = sysconfig.get_paths()["include"]
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O2", "-fopenmp", f"-I{include}", "-o", str(ext),
         str(root / "ext.c"), f"-L{lib}", "-lfoo"],
        check=True,
    )  # fmt: skip
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    files = {
        "ompfoo/__init__.py": b"from ._ext import total\n",
        f"ompfoo/{ext.name}": ext.read_bytes(),
        "ompfoo-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: ompfoo\nVersion: 1.0\n",
        "ompfoo-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: nativelib-tests\nRoot-Is-Purelib: false\n"
            f"Tag: {tag}-{tag}-linux_x86_64\n"
        ).encode(),
    }
    wheel = root / f"dist/ompfoo-1.0-{tag}-{tag}-linux_x86_64.whl"
    return write_wheel_members(wheel, files), lib


def test_a_non_runtime_library_is_grafted_by_auditwheel_and_the_runtime_linked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    raw, lib = _raw_wheel(tmp_path / "build")
    wheelhouse = host_runtime_wheels(tmp_path / "runtimes")[0].parent
    gomp = next(wheelhouse.glob("nativelib_gomp-*.whl"))

    # --plan names the step and writes nothing (auditwheel is not run for a plan).
    assert main(["repair", str(raw), "--plan", "-w", str(tmp_path / "plan")]) == 0
    assert "external libraries libfoo.so.1: grafted by auditwheel repair" in capsys.readouterr().out

    # Without the library findable, auditwheel's failure is the error (nothing written).
    out = tmp_path / "out"
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    assert main(["repair", str(raw), "-w", str(out), "--find-links", str(wheelhouse)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {raw}: auditwheel repair (grafting the external libraries")
    assert "hint: the libraries must be findable" in err and not out.exists()

    monkeypatch.setenv("LD_LIBRARY_PATH", str(lib))
    assert main(["repair", str(raw), "-w", str(out), "--find-links", str(wheelhouse)]) == 0
    captured = capsys.readouterr()
    assert "auditwheel repair grafted libfoo.so.1 (runtimes excluded)" in captured.err
    (wheel,) = out.glob("*.whl")
    assert wheel.name.endswith("-manylinux_2_34_x86_64.whl")  # the gomp candidate's floor
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        grafted = [n for n in names if n.startswith("ompfoo.libs/libfoo")]
        assert len(grafted) == 1 and not [n for n in names if "libgomp" in n]
        meta = zf.read("ompfoo-1.0.dist-info/METADATA").decode()
        ext_name = next(n for n in names if n.startswith("ompfoo/_ext"))
        (tmp_path / "ext.so").write_bytes(zf.read(ext_name))
    assert "Requires-Dist: nativelib-gomp>=4.9" in meta.splitlines()
    info = read_elf(tmp_path / "ext.so")
    search = info.runpath or info.rpath
    assert "$ORIGIN/../nativelib.prefix/lib" in search and "$ORIGIN/../ompfoo.libs" in search

    monkeypatch.delenv("LD_LIBRARY_PATH")
    env = Env(tmp_path / "env", "venv")
    env.install(gomp, wheel)
    run = env.run(PROBE)
    assert run.returncode == 0, run.stderr
    total, three, libs = run.stdout.split()
    assert int(total) == 1000 * 999 // 2 and int(three) == 3
    gomp_path, foo_path = sorted(libs.split("|"), key=lambda p: "libfoo" in p)
    assert gomp_path == str(env.site / "nativelib.prefix/lib/libgomp.so.1")
    assert foo_path.startswith(str(env.site / "ompfoo.libs/libfoo"))
