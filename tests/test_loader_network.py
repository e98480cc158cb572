"""nativelib.load with real runtimes from Debian and PyPI (network)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from nativelib.archive import extract
from nativelib.catalog import load_catalog
from nativelib.cli import main
from nativelib.net.download import fetch, get_document
from nativelib.sources import resolve
from nativelib_testing import Env, compile_extension, host_runtime_wheels

pytestmark = pytest.mark.network

EXT_CV = r"""
#include <Python.h>
#include <condition_variable>
#include <mutex>
void never_called(std::condition_variable &cv, std::unique_lock<std::mutex> &lock) { cv.wait(lock); }
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cv", NULL, -1, NULL};
PyMODINIT_FUNC PyInit__cv(void) { return PyModule_Create(&module); }
"""


def _build(out: Path, *argv: str) -> list[Path]:
    assert main(["build", *argv, "-o", str(out)]) == 0
    return sorted(out.glob("*.whl"))


def test_older_libstdcxx_loaded_first_is_a_conflict(tmp_path: Path) -> None:
    source = load_catalog().get("cxx14").source("debian-bullseye")
    (deb,) = [r for r in resolve(source, get_document) if r.name == "libstdc++6"]
    extract(
        fetch(deb.url, deb.sha256), tmp_path / "bullseye", select=lambda m: "libstdc++.so" in m.name
    )
    (old,) = (tmp_path / "bullseye").rglob("libstdc++.so.6.0.28")
    env = Env(tmp_path / "env", "venv")
    env.install(*host_runtime_wheels(tmp_path / "wheels"))
    ext = compile_extension(tmp_path / "ext", "_cv", EXT_CV)
    code = textwrap.dedent(
        """
        import ctypes, json, sys, nativelib
        ctypes.CDLL(sys.argv[1])   # Debian 11's libstdc++: GLIBCXX_3.4.28 at most
        try:
            nativelib.load_for(sys.argv[2])
        except nativelib.RuntimeConflict as e:
            print(json.dumps({"soname": e.soname, "loaded": e.loaded, "wanted": e.wanted,
                              "missing": list(e.missing), "message": str(e)}))
        """
    )
    proc = env.run(code, str(old), str(ext))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["soname"] == "libstdc++.so.6"
    assert out["loaded"] == str(old.resolve())
    assert out["wanted"] == str(env.site / "nativelib.prefix/lib/libstdc++.so.6")
    assert "GLIBCXX_3.4.30" in out["missing"] and "GLIBCXX_3.4.28" not in out["missing"]
    assert "hint:" in out["message"]


def test_mkl_with_gomp(tmp_path: Path, intel_wheels: list[Path], runtime_wheelhouse: Path) -> None:
    # The session's wheels: iomp and mkl from PyPI, gomp 12.2.0 from Debian 12 (its
    # default source, what `nativelib build gomp` gives).
    (gomp,) = runtime_wheelhouse.glob("nativelib_gomp-12.*.whl")
    env = Env(tmp_path / "env", "venv")
    env.install(*intel_wheels, gomp)
    code = textwrap.dedent(
        """
        import ctypes, json, os, nativelib
        results = nativelib.load("mkl", "gomp")
        mkl = ctypes.CDLL("libmkl_rt.so.2")   # already loaded: found by soname
        a = (ctypes.c_double * 4)(1, 2, 3, 4)
        b = (ctypes.c_double * 4)(5, 6, 7, 8)
        c = (ctypes.c_double * 4)()
        # C = A @ B, 2x2, row major (CblasRowMajor=101, CblasNoTrans=111)
        mkl.cblas_dgemm(101, 111, 111, 2, 2, 2, ctypes.c_double(1.0), a, 2, b, 2, ctypes.c_double(0.0), c, 2)
        maps = {p[5].strip() for p in (l.split(None, 5) for l in open("/proc/self/maps")) if len(p) == 6}
        print(json.dumps({"c": list(c), "layer": os.environ.get("MKL_THREADING_LAYER"),
                          "results": [[r.soname, r.how] for r in results],
                          "omp": sorted(p for p in maps if "/libgomp" in p or "/libiomp" in p or "/libomp" in p)}))
        """
    )
    proc = env.run(code)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["c"] == [19.0, 22.0, 43.0, 50.0]
    assert out["layer"] == "GNU"
    assert out["omp"] == [str(env.site / "nativelib.prefix/lib/libgomp.so.1")]  # no libiomp5
    assert ["libmkl_rt.so.2", "loaded"] in out["results"]


def test_cudart_without_a_gpu(tmp_path: Path) -> None:
    wheels = _build(tmp_path / "wh", "cudart-cu12")
    env = Env(tmp_path / "env", "venv")
    env.install(*wheels)
    code = textwrap.dedent(
        """
        import ctypes, json, nativelib
        (result,) = nativelib.load("cudart-cu12")
        cudart = ctypes.CDLL(result.path)
        version, count = ctypes.c_int(), ctypes.c_int()
        rc_version = cudart.cudaRuntimeGetVersion(ctypes.byref(version))
        rc_count = cudart.cudaGetDeviceCount(ctypes.byref(count))
        print(json.dumps({"path": result.path, "version": version.value, "rc_version": rc_version,
                          "rc_count": rc_count}))
        """
    )
    proc = env.run(code)
    assert proc.returncode == 0, proc.stderr  # an error code, not a crash
    out = json.loads(proc.stdout)
    assert out["path"] == str(env.site / "nativelib.prefix/lib/libcudart.so.12")
    assert out["rc_version"] == 0 and out["version"] == 12090  # the wheel's runtime: 12.9
    assert out["rc_count"] != 0  # no driver / no device on this machine
