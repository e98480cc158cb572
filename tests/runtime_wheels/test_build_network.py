"""Real runtime wheels from Debian and PyPI, installed together with pip (network)."""

from __future__ import annotations

import csv
import json
import subprocess
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from nativelib.cli import main
from nativelib.net.download import cache_dir
from nativelib.prefix import Manifest, parse_manifest
from nativelib.wheelfile import validate_wheel
from nativelib_testing import make_venv

pytestmark = pytest.mark.network


def _build(out: Path, *argv: str) -> list[Path]:
    assert main(["build", *argv, "-o", str(out)]) == 0
    return sorted(out.glob("*.whl"))


@pytest.fixture(scope="module")
def bookworm(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("bookworm")
    _build(out, "cxx14", "gomp", "gfortran5", "toolchain-base", "--source", "debian-bookworm")
    return _build(out, "cudart-cu12", "cudart-cu13")


@pytest.fixture(scope="module")
def bullseye(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return _build(
        tmp_path_factory.mktemp("bullseye"), "cxx14", "gomp", "--source", "debian-bullseye"
    )


def _cached(manifest: Manifest) -> Path:
    """The upstream file of a manifest's first package, in the download cache."""
    pkg = manifest.provenance.packages[0]
    return cache_dir() / "downloads" / pkg.sha256 / pkg.filename


def _glibc_minor(wheel: Path) -> int:
    platform = wheel.name.rsplit("-", 1)[1].removesuffix(".whl").split(".")[0]
    return int(platform.split("_")[2]) if platform.startswith("manylinux_") else 0


def _install(wheels: list[Path], venv: Path) -> Path:
    make_venv(venv)
    subprocess.run(
        [str(venv / "bin/pip"), "install", "-q", "--no-index", "--no-deps", *map(str, wheels)],
        check=True,
    )
    site = subprocess.run(
        [str(venv / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_path('platlib'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    return Path(site)


def test_bookworm_and_pypi_runtimes(bookworm: list[Path], tmp_path: Path) -> None:
    names = {w.name.split("-")[0] for w in bookworm}
    assert names == {
        "nativelib_cxx14", "nativelib_gomp", "nativelib_gfortran5", "nativelib_toolchain_base",
        "nativelib_cudart_cu12", "nativelib_cudart_cu13",
    }  # fmt: skip
    for wheel in bookworm:
        validate_wheel(wheel)
        if "cudart" not in wheel.name and "toolchain" not in wheel.name:
            assert wheel.name.split("-")[1] == "12.2.0"
            assert 17 <= _glibc_minor(wheel) <= 36, wheel.name  # Debian 12: glibc 2.36
    cxx14 = next(w for w in bookworm if w.name.startswith("nativelib_cxx14-"))
    assert cxx14.name.endswith("-py3-none-manylinux_2_36_x86_64.whl")

    site = _install(bookworm, tmp_path / "venv")
    prefix = site / "nativelib.prefix"
    libs = sorted(p.name for p in (prefix / "lib").iterdir() if p.name != "pkgconfig")
    pcs = sorted(p.name for p in (prefix / "lib/pkgconfig").iterdir())  # one per runtime
    assert pcs and all(n.startswith("nativelib-") and n.endswith(".pc") for n in pcs), pcs
    assert libs == sorted([
        "libstdc++.so.6", "libgcc_s.so.1", "libatomic.so.1", "libgomp.so.1",
        "libgfortran.so.5", "libquadmath.so.0", "libcudart.so.12", "libcudart.so.13",
    ])  # fmt: skip
    assert all(not (prefix / "lib" / n).is_symlink() for n in libs)
    manifests = {
        p.stem: parse_manifest(p.read_text(), str(p))
        for p in (prefix / "share/nativelib/runtimes").glob("*.json")
    }
    assert set(manifests) == {
        "nativelib-cxx14", "nativelib-gomp", "nativelib-gfortran5", "nativelib-toolchain-base",
        "nativelib-cudart-cu12", "nativelib-cudart-cu13",
    }  # fmt: skip
    cxx = manifests["nativelib-cxx14"]
    assert cxx.load_order.index("libgcc_s.so.1") < cxx.load_order.index("libstdc++.so.6")
    assert "GLIBCXX_3.4.30" in cxx.library("libstdc++.so.6").version_definitions  # type: ignore[union-attr]
    assert cxx.provenance.kind == "deb" and all(
        p.url.startswith("https://deb.debian.org/") for p in cxx.provenance.packages
    )
    cu13 = manifests["nativelib-cudart-cu13"]
    assert [d.name for d in cu13.dependencies] == ["nativelib-cxx14"]
    assert (prefix / "include/cudart-cu13/cuda_runtime_api.h").is_file()
    assert (prefix / "include/cudart-cu12/cuda_runtime_api.h").is_file()
    # ... and the crt/ headers they include (nvidia-cuda-nvcc-cu12, nvidia-cuda-crt).
    assert (prefix / "include/cudart-cu12/crt/host_defines.h").is_file()
    assert (prefix / "include/cudart-cu13/crt/host_defines.h").is_file()
    base = manifests["nativelib-toolchain-base"]
    assert not base.libraries and {d.requirement() for d in base.dependencies} == {
        "nativelib-cxx14==12.2.0", "nativelib-gomp==12.2.0", "nativelib-gfortran5==12.2.0",
    }  # fmt: skip
    # Every wheel carries its upstream licence.
    for dist_info in site.glob("nativelib_*.dist-info"):
        assert any((dist_info / "licenses").rglob("*")), dist_info
    # No file of the prefix is owned by two distributions.
    owners: Counter[str] = Counter()
    for record in site.glob("nativelib_*.dist-info/RECORD"):
        with record.open(newline="") as f:
            owners.update(
                row[0] for row in csv.reader(f) if row and row[0].startswith("nativelib.prefix/")
            )
    assert owners and max(owners.values()) == 1, [p for p, n in owners.items() if n > 1]


def test_bullseye_runtimes(bullseye: list[Path], tmp_path: Path) -> None:
    assert len(bullseye) == 2
    for wheel in bullseye:
        validate_wheel(wheel)
        assert wheel.name.split("-")[1] == "10.2.1"
        assert _glibc_minor(wheel) <= 31, wheel.name  # Debian 11: glibc 2.31
    site = _install(bullseye, tmp_path / "venv")
    doc = json.loads(
        (site / "nativelib.prefix/share/nativelib/runtimes/nativelib-cxx14.json").read_text()
    )
    std = next(lib for lib in doc["libraries"] if lib["soname"] == "libstdc++.so.6")
    assert (
        "GLIBCXX_3.4.28" in std["version_definitions"]
        and "GLIBCXX_3.4.29" not in std["version_definitions"]
    )


@pytest.fixture
def intel(intel_wheels: list[Path]) -> list[Path]:
    """MKL and its OpenMP from PyPI's mkl / intel-openmp wheels: conftest's session
    fixture (test_loader_network.py installs the same wheels)."""
    return intel_wheels


def test_mkl_and_iomp_from_pypi(intel: list[Path], tmp_path: Path) -> None:
    assert [w.name.split("-")[:2] for w in intel] == [
        ["nativelib_iomp", "2024.2.1"],
        ["nativelib_mkl", "2024.2.2"],
    ]
    for wheel in intel:
        validate_wheel(wheel)
    site = _install(intel, tmp_path / "venv")
    prefix = site / "nativelib.prefix"
    libs = sorted(p.name for p in (prefix / "lib").iterdir() if p.name != "pkgconfig")
    pcs = sorted(p.name for p in (prefix / "lib/pkgconfig").iterdir())  # one per runtime
    assert pcs and all(n.startswith("nativelib-") and n.endswith(".pc") for n in pcs), pcs
    assert "libiomp5.so" in libs and "libmkl_rt.so.2" in libs and "libmkl_core.so.2" in libs
    assert "libmkl_tbb_thread.so.2" not in libs  # excluded: it needs libtbb.so.12
    assert all(
        n == "libiomp5.so" or (n.startswith("libmkl_") and n.endswith(".so.2")) for n in libs
    ), libs
    assert all(not (prefix / "lib" / n).is_symlink() for n in libs)
    mkl = parse_manifest(
        (prefix / "share/nativelib/runtimes/nativelib-mkl.json").read_text(), "mkl"
    )
    assert {d.name for d in mkl.dependencies} == {"nativelib-iomp", "nativelib-gomp"}
    assert mkl.library("libmkl_gnu_thread.so.2").implicit_needs == ("libgomp.so.1",)  # type: ignore[union-attr]
    assert mkl.library("libmkl_intel_thread.so.2").implicit_needs == ("libiomp5.so",)  # type: ignore[union-attr]
    assert mkl.provenance.kind == "wheel" and mkl.provenance.packages[0].name == "mkl"
    # One real file per soname: upstream ships .so, .so.2 (and more) as full copies.
    with zipfile.ZipFile(_cached(mkl)) as upstream:
        upstream_libs = [i for i in upstream.infolist() if "/lib/libmkl_" in i.filename]
    assert len(upstream_libs) > len([n for n in libs if n.startswith("libmkl_")])
