"""Linking a raw wheel to the runtime wheels, as a maintainer would: a setuptools project
with a C++/OpenMP extension (``std::condition_variable::wait``: GLIBCXX_3.4.30 from GCC 12;
``#pragma omp parallel``: GOMP_4.0) built here by ``pip wheel`` with setuptools from PyPI,
repaired against the real Debian 11/12 runtime wheels (``runtime_wheelhouse``), installed
by pip and by uv into fresh venvs, imported and run; ``/proc/self/maps`` says which copies
of libgomp and libstdc++ the process uses."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from nativelib.cli import main
from nativelib.elf import read_elf
from nativelib_testing import Env, auditwheel_repair

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++"),
]


EXT_SOURCE = r"""
#include <Python.h>
#include <charconv>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <omp.h>

static long work(long n) {
    std::mutex m;
    std::condition_variable cv;
    bool ready = true;
    {
        std::unique_lock<std::mutex> lk(m);
        cv.wait(lk, [&] { return ready; });
        if (n < 0) cv.wait(lk);  // never taken; binds wait() at GLIBCXX_3.4.30
    }
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, 1.5);
    if (r.ec != std::errc()) throw std::runtime_error("to_chars");
    long t = 0;
#pragma omp parallel for reduction(+ : t)
    for (long i = 0; i < n; i++) t += i;
    return t + (long)(r.ptr - buf);
}

static PyObject *total(PyObject *, PyObject *args) {
    long n;
    if (!PyArg_ParseTuple(args, "l", &n)) return NULL;
    try {
        return Py_BuildValue("li", work(n), omp_get_max_threads());
    } catch (const std::exception &e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
        return NULL;
    }
}
static PyMethodDef methods[] = {{"total", total, METH_VARARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ext", NULL, -1, methods};
PyMODINIT_FUNC PyInit__ext(void) { return PyModule_Create(&module); }
"""

SETUP_PY = """
from setuptools import Extension, setup
setup(
    name="ompcxx",
    version="0.1.0",
    packages=["ompcxx"],
    ext_modules=[Extension("ompcxx._ext", ["src/ext.cpp"], language="c++",
        extra_compile_args=["-fopenmp", "-std=c++17"], extra_link_args=["-fopenmp"])],
)
"""

N = 100_000
EXPECTED = N * (N - 1) // 2 + 3  # + len("1.5")
PROBE = textwrap.dedent(
    """
    import sys, ompcxx
    total, threads = ompcxx.total(int(sys.argv[1]))
    maps = {l.split()[-1] for l in open("/proc/self/maps") if ".so" in l}
    libs = sorted(p for p in maps if "libgomp" in p or "libstdc++" in p)
    print(total, threads, "|".join(libs))
    """
)


def _tag(name: str) -> str:
    return name[: -len(".whl")].rsplit("-", maxsplit=1)[-1]


def _metadata(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA")))
    return [ln for ln in text.decode().splitlines() if ln.startswith("Requires-Dist:")]


def _extension(wheel: Path, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.startswith("ompcxx/_ext") and ".so" in n)
        dest.write_bytes(zf.read(name))
    return dest


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel`` of the setuptools project (setuptools from PyPI, build isolation)."""
    root = tmp_path_factory.mktemp("ompcxx")
    project = root / "project"
    (project / "src").mkdir(parents=True)
    (project / "ompcxx").mkdir()
    (project / "src/ext.cpp").write_text(EXT_SOURCE)
    (project / "ompcxx/__init__.py").write_text("from ._ext import total\n")
    (project / "setup.py").write_text(SETUP_PY)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(root / "dist"),
         str(project)],
        check=True,
    )  # fmt: skip
    (wheel,) = (root / "dist").glob("*.whl")
    assert _tag(wheel.name).endswith("linux_x86_64")
    return wheel


@pytest.fixture(scope="module")
def pynativelib_dir(tmp_path_factory: pytest.TempPathFactory, pynativelib_wheel: Path) -> Path:
    """A directory with the session's pynativelib wheel of this checkout (conftest's), for
    pip and uv to satisfy the runtime wheels' own ``Requires-Dist: pynativelib``."""
    out = tmp_path_factory.mktemp("pynativelib")
    shutil.copy2(pynativelib_wheel, out)
    return out


def _repair(raw: Path, out: Path, *extra: str) -> tuple[int, Path | None]:
    code = main(["repair", str(raw), "-w", str(out), *extra])
    found = sorted(out.glob("*.whl")) if out.exists() else []
    return code, (found[0] if found else None)


def test_raw_wheel_links_gomp_and_gets_the_tag_where_the_host_cxx_runtime_is_enough(
    raw: Path, runtime_wheelhouse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = raw.read_bytes()
    code, wheel = _repair(raw, tmp_path / "out", "--find-links", str(runtime_wheelhouse))
    assert code == 0 and wheel is not None
    assert raw.read_bytes() == before, "the input was modified"
    # GLIBCXX_3.4.30 is guaranteed by manylinux_2_35's policy; on manylinux_2_34 it would
    # need nativelib-cxx14>=12.1, whose only build is manylinux_2_36: so 2_35, gomp only.
    assert _tag(wheel.name) == "manylinux_2_35_x86_64"
    assert _metadata(wheel) == ["Requires-Dist: nativelib-gomp>=4.9"]
    ext = read_elf(_extension(wheel, tmp_path / "ext.so"))
    assert ext.runpath == ("$ORIGIN/../nativelib.prefix/lib",)
    assert {"libgomp.so.1", "libstdc++.so.6"} <= set(ext.needed)
    err = capsys.readouterr().err
    assert "lower   manylinux_2_34_x86_64: nativelib-cxx14>=12.1 (for GLIBCXX_3.4.30)" in err
    # Deterministic: the same bytes again.
    _code, again = _repair(raw, tmp_path / "again", "--find-links", str(runtime_wheelhouse))
    assert again is not None and again.read_bytes() == wheel.read_bytes()


def test_runtime_cxx14_requires_it_and_raises_the_tag_to_its_floor(
    raw: Path, runtime_wheelhouse: Path, tmp_path: Path
) -> None:
    code, wheel = _repair(
        raw, tmp_path, "--find-links", str(runtime_wheelhouse), "--runtime", "cxx14"
    )
    assert code == 0 and wheel is not None
    assert _tag(wheel.name) == "manylinux_2_36_x86_64"
    assert _metadata(wheel) == [
        "Requires-Dist: nativelib-cxx14>=12.1",
        "Requires-Dist: nativelib-gomp>=4.9",
    ]


def test_plat_below_the_cxx14_floor_is_refused_naming_it(
    raw: Path, runtime_wheelhouse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["--find-links", str(runtime_wheelhouse), "--plat", "manylinux_2_28_x86_64"]
    code, wheel = _repair(raw, out, *argv)
    assert code == 2 and wheel is None and not out.exists()
    err = capsys.readouterr().err
    assert err.startswith(f"error: {raw}: manylinux_2_28_x86_64: nativelib-cxx14>=12.1 ")
    assert "candidate floor is manylinux_2_36_x86_64 (nativelib-cxx14 12.2.0)" in err
    assert "hint: choose a higher --plat" in err and "Traceback" not in err


def test_no_candidates_the_bound_rule_alone_decides_and_plan_says_so(
    raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["repair", str(raw), "-w", str(tmp_path / "o"), "--plan"]) == 0
    out = capsys.readouterr().out
    assert "the tag was not cross-checked against runtime wheels" in out
    assert "require Requires-Dist: nativelib-cxx14>=12.1" in out  # no policy below 2_35 has it
    assert not (tmp_path / "o").exists()


def _install_and_probe(
    tool: str, wheel: Path, wheelhouse: Path, pynativelib_dir: Path, root: Path
) -> tuple[int, int, list[str], Env]:
    env = Env(root, "venv")
    (env.site / "pynativelib-src.pth").unlink()  # the real wheel instead
    subprocess.run(
        [env.python, "-m", "pip", "install", "-q", "packaging", "resolvelib"],
        check=True, env=env.env,
    )  # fmt: skip
    links = ["--find-links", str(wheelhouse), "--find-links", str(pynativelib_dir)]
    if tool == "pip":
        cmd = [env.python, "-m", "pip", "install", "-q", "--no-index", *links, str(wheel)]
    else:
        uv = str(Path(sys.executable).parent / "uv")
        cmd = [uv, "pip", "install", "-q", "--python", env.python, "--no-index", *links,
               str(wheel)]  # fmt: skip
    subprocess.run(cmd, check=True, env=env.env)
    run = env.run(PROBE, str(N))
    assert run.returncode == 0, run.stderr
    total, threads, libs = run.stdout.split()
    return int(total), int(threads), libs.split("|"), env


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_installed_by_pip_and_uv_it_runs_on_the_prefix_copies(
    tool: str, raw: Path, runtime_wheelhouse: Path, pynativelib_dir: Path, tmp_path: Path
) -> None:
    code, wheel = _repair(
        raw, tmp_path / "w", "--find-links", str(runtime_wheelhouse), "--runtime", "cxx14"
    )
    assert code == 0 and wheel is not None
    total, threads, libs, env = _install_and_probe(
        tool, wheel, runtime_wheelhouse, pynativelib_dir, tmp_path / "env"
    )
    assert total == EXPECTED and threads >= 1
    prefix = env.site / "nativelib.prefix/lib"
    assert libs == [str(prefix / "libgomp.so.1"), str(prefix / "libstdc++.so.6")]


def test_auditwheel_first_gives_the_same_result_as_the_raw_flow(
    raw: Path, runtime_wheelhouse: Path, tmp_path: Path
) -> None:
    vendored = auditwheel_repair(raw, tmp_path / "aw")
    with zipfile.ZipFile(vendored) as zf:
        assert [n for n in zf.namelist() if "libgomp" in n], "auditwheel vendored no libgomp"
    links = ("--find-links", str(runtime_wheelhouse))
    _c1, from_raw = _repair(raw, tmp_path / "raw", *links)
    _c2, from_aw = _repair(vendored, tmp_path / "awfirst", *links)
    assert from_raw is not None and from_aw is not None
    assert from_raw.name == from_aw.name
    assert _metadata(from_raw) == _metadata(from_aw)
    with zipfile.ZipFile(from_aw) as zf:
        assert not [n for n in zf.namelist() if "libgomp" in n or ".libs/" in n]
    a = read_elf(_extension(from_raw, tmp_path / "a.so"))
    b = read_elf(_extension(from_aw, tmp_path / "b.so"))
    assert a.needed == b.needed
    assert (a.runpath or a.rpath) == (b.runpath or b.rpath) == ("$ORIGIN/../nativelib.prefix/lib",)
    # Repairing the output once more changes nothing; auditwheel's own report now sees
    # no libgomp to graft (the prefix is nativelib's, reached through the RUNPATH).
    code, again = _repair(from_aw, tmp_path / "again", *links)
    assert code == 0 and again is not None and again.read_bytes() == from_aw.read_bytes()


def test_only_an_older_cxx14_known_depends_on_none_or_refuses_and_doctor_sees_the_clash(
    raw: Path, runtime_wheelhouse: Path, pynativelib_dir: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Only Debian 11's runtime wheels (GCC 10.2.1: GLIBCXX up to 3.4.28). Forcing cxx14
    is refused (no known build has GLIBCXX_3.4.30); by default the wheel leaves libstdc++
    to the host (manylinux_2_35 guarantees the node) and runs. When another package puts
    the old nativelib-cxx14 into the prefix, the RUNPATH would find it first: the import
    fails with "version not found", and doctor's environment scan (no --import) says so."""
    old = tmp_path / "old"
    old.mkdir()
    for wheel in runtime_wheelhouse.glob("nativelib_*-10.2.1-*.whl"):
        shutil.copy(wheel, old)
    code, wheel = _repair(raw, tmp_path / "forced", "--find-links", str(old), "--runtime", "cxx14")
    assert code == 2 and wheel is None
    err = capsys.readouterr().err
    assert (
        "no nativelib-cxx14 candidate at or above 12.1 defines GLIBCXX_3.4.29, GLIBCXX_3.4.30 "
        in err
    )
    assert "(the newest known is 10.2.1)" in err

    code, wheel = _repair(raw, tmp_path / "default", "--find-links", str(old))
    assert code == 0 and wheel is not None
    assert _metadata(wheel) == ["Requires-Dist: nativelib-gomp>=4.9"]
    total, _threads, libs, env = _install_and_probe(
        "pip", wheel, old, pynativelib_dir, tmp_path / "env"
    )
    assert total == EXPECTED
    stdcxx = [p for p in libs if "libstdc++" in p]
    assert len(stdcxx) == 1 and "nativelib.prefix" not in stdcxx[0]  # the host's

    cxx_old = next(old.glob("nativelib_cxx14-10.2.1-*.whl"))
    env.install(cxx_old)
    run = env.run(PROBE, str(N))
    assert run.returncode != 0 and re.search(r"GLIBCXX_3\.4\.30' not found", run.stderr)
    doctor = subprocess.run(
        [env.python, "-m", "nativelib", "doctor", "--json"], capture_output=True, text=True,
        env=env.env,
    )  # fmt: skip
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert "GLIBCXX_3.4.30" in doctor.stdout and "nativelib-cxx14" in doctor.stdout


CMAKE = """
cmake_minimum_required(VERSION 3.15)
project(${SKBUILD_PROJECT_NAME} LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 17)
find_package(pybind11 CONFIG REQUIRED)
find_package(OpenMP REQUIRED)
pybind11_add_module(_ext src/ext.cpp)
target_link_libraries(_ext PRIVATE OpenMP::OpenMP_CXX)
install(TARGETS _ext DESTINATION skomp)
"""
PYBIND_SOURCE = r"""
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <omp.h>

std::optional<std::string> total(long n) {
    if (n < 0) throw std::invalid_argument("negative");
    std::mutex m;
    std::condition_variable cv;
    {
        std::unique_lock<std::mutex> lk(m);
        if (n == 987654321) cv.wait(lk);  // never taken; binds wait() at GLIBCXX_3.4.30
    }
    long t = 0;
#pragma omp parallel for reduction(+ : t)
    for (long i = 0; i < n; i++) t += i;
    if (n == 0) return std::nullopt;
    return std::to_string(t);
}
PYBIND11_MODULE(_ext, m) { m.def("total", &total); }
"""


def test_scikit_build_core_pybind11_project_from_pypi(
    runtime_wheelhouse: Path, pynativelib_dir: Path, tmp_path: Path
) -> None:
    """The maintainer's flow of the issue: scikit-build-core + pybind11 (from PyPI, build
    isolation), ``pip wheel .``, ``nativelib repair --runtime cxx14``, pip install, run;
    the exception crosses the boundary, the optional comes back, one libgomp and one
    libstdc++, both the prefix's."""
    project = tmp_path / "skomp"
    (project / "src").mkdir(parents=True)
    (project / "skomp").mkdir()
    (project / "skomp/__init__.py").write_text("from ._ext import total\n")
    (project / "src/ext.cpp").write_text(PYBIND_SOURCE)
    (project / "CMakeLists.txt").write_text(CMAKE)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["scikit-build-core>=0.10", "pybind11>=2.12"]\n'
        'build-backend = "scikit_build_core.build"\n\n'
        '[project]\nname = "skomp"\nversion = "0.1.0"\n\n'
        '[tool.scikit-build]\nwheel.packages = ["skomp"]\n'
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"),
         str(project)],
        check=True,
    )  # fmt: skip
    (raw,) = (tmp_path / "dist").glob("*.whl")
    code, wheel = _repair(
        raw, tmp_path / "w", "--find-links", str(runtime_wheelhouse), "--runtime", "cxx14"
    )
    assert code == 0 and wheel is not None
    assert _tag(wheel.name) == "manylinux_2_36_x86_64"
    assert _metadata(wheel) == [
        "Requires-Dist: nativelib-cxx14>=12.1",
        "Requires-Dist: nativelib-gomp>=4.9",
    ]
    env = Env(tmp_path / "env", "venv")
    (env.site / "pynativelib-src.pth").unlink()
    subprocess.run(
        [env.python, "-m", "pip", "install", "-q", "packaging", "resolvelib"], check=True,
        env=env.env,
    )  # fmt: skip
    subprocess.run(
        [env.python, "-m", "pip", "install", "-q", "--no-index", "--find-links",
         str(runtime_wheelhouse), "--find-links", str(pynativelib_dir), str(wheel)],
        check=True, env=env.env,
    )  # fmt: skip
    probe = textwrap.dedent(
        """
        import skomp
        assert skomp.total(0) is None
        try:
            skomp.total(-5)
        except ValueError as e:
            assert str(e) == "negative"
        maps = {l.split()[-1] for l in open("/proc/self/maps") if ".so" in l}
        libs = sorted(p for p in maps if "libgomp" in p or "libstdc++" in p)
        print(skomp.total(1000), "|".join(libs))
        """
    )
    run = env.run(probe)
    assert run.returncode == 0, run.stderr
    value, libs = run.stdout.split()
    prefix = env.site / "nativelib.prefix/lib"
    assert value == str(1000 * 999 // 2)
    assert libs.split("|") == [str(prefix / "libgomp.so.1"), str(prefix / "libstdc++.so.6")]
