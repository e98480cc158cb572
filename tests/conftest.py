from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures.build import Fixtures, build
from nativelib.cli import main


@pytest.fixture(scope="session")
def elf_fixtures(tmp_path_factory: pytest.TempPathFactory) -> Fixtures:
    """The ELF fixtures of tests/fixtures/build.py, compiled once per test session."""
    return build(tmp_path_factory.mktemp("elf-fixtures"))


#: The runtime wheels most end-to-end tests install: three runtimes from two Debian
#: releases, so each runtime has two versions at two manylinux floors (bullseye: gomp
#: 10.2.1 manylinux2014, cxx14 10.2.1 manylinux_2_24, gfortran5 10.2.1 manylinux_2_31;
#: bookworm: 12.2.0 at manylinux_2_34/2_36/2_34).
RUNTIME_WHEELHOUSE_SOURCES = ("debian-bullseye", "debian-bookworm")
RUNTIME_WHEELHOUSE_RUNTIMES = ("cxx14", "gomp", "gfortran5")


@pytest.fixture(scope="session")
def runtime_wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of real runtime wheels built from Debian's packages once per test
    session (network: a test that uses it must be marked ``network``). Treat it as
    read-only; copy the wheels a test wants to change."""
    out = tmp_path_factory.mktemp("runtime-wheelhouse")
    for source in RUNTIME_WHEELHOUSE_SOURCES:
        argv = ["-q", "build", *RUNTIME_WHEELHOUSE_RUNTIMES, "--source", source, "-w", str(out)]
        assert main(argv) == 0, f"nativelib build --source {source} failed"
    return out


@pytest.fixture(scope="session")
def intel_wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """nativelib-iomp and nativelib-mkl built once per session from PyPI's intel-openmp
    and mkl wheels (network; large: the download cache in ~/.cache/nativelib, or
    $NATIVELIB_CACHE_DIR, keeps them across runs). Treat them as read-only."""
    out = tmp_path_factory.mktemp("intel")
    assert main(["-q", "build", "iomp", "mkl", "-o", str(out)]) == 0, "nativelib build failed"
    return sorted(out.glob("*.whl"))


@pytest.fixture(scope="session")
def pynativelib_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of this checkout (``pip wheel --no-deps``, from a copy of the source tree so
    that nothing is written into the checkout), built once per session (network: pip
    fetches the build backend). The runtime wheels depend on ``pynativelib``."""
    import shutil  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    root = Path(__file__).resolve().parent.parent
    tree = tmp_path_factory.mktemp("pynativelib-source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (root / name).exists():
            shutil.copy2(root / name, tree / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(root / "src", tree / "src", ignore=ignore)
    out = tmp_path_factory.mktemp("pynativelib-wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(tree), "-w", str(out)],
        check=True,
    )
    (wheel,) = out.glob("pynativelib-*.whl")
    return wheel
