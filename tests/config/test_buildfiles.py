"""The build files' rules and their error paths: entry points in a wheel plan, a
manifest's ``build_files``, the text of the ``.pc`` and CMake files of a multi-library,
header-carrying runtime (the shape of cxx14 and cudart, no network needed)."""

from __future__ import annotations

import json

import pytest

from nativelib.errors import ManifestError, WheelError
from nativelib.prefix import parse_manifest
from nativelib.runtime_wheels.buildfiles import (
    BuildInfo,
    cmake_component,
    files_for,
    import_path_files,
    pkgconfig_file,
    target_name,
)
from nativelib.wheelfile import WheelFile, WheelPlan

CUDA = BuildInfo(
    name="nativelib-cudart-cu12",
    short="cudart-cu12",
    summary="NVIDIA CUDA runtime 12",
    version="12.9.79",
    sonames=("libcudart.so.12",),
    has_headers=True,
)
CXX = BuildInfo(
    name="nativelib-cxx14",
    short="cxx14",
    summary="GNU C++ runtime",
    version="12.2.0",
    sonames=("libgcc_s.so.1", "libstdc++.so.6", "libatomic.so.1"),
    has_headers=False,
)


def _plan(**kw: object) -> WheelPlan:
    return WheelPlan(
        name="demo",
        version="1.0",
        tag="py3-none-any",
        files=(WheelFile("demo/x.txt", data=b"x"),),
        summary="demo",
        **kw,  # type: ignore[arg-type]
    )


def test_entry_points_are_sorted_and_written_as_entry_points_txt() -> None:
    plan = _plan(
        entry_points=(("pkg_config", "b", "nativelib_pkgconfig"), ("cmake.prefix", "a", "x"))
    )
    assert (
        plan.entry_points_text()
        == "[cmake.prefix]\na = x\n\n[pkg_config]\nb = nativelib_pkgconfig\n"
    )
    assert "entry_points.txt:" in plan.describe()
    assert _plan().entry_points_text() is None


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ((("a b", "n", "m"),), "invalid entry point 'a b' 'n' = 'm'"),
        ((("g", "n=1", "m"),), "invalid entry point 'g' 'n=1' = 'm'"),
        ((("g", "n", "a/b"),), "invalid entry point value 'a/b': 'module' or 'module:attr'"),
        ((("g", "n", "m\nx"),), "an entry point value must be a single line"),
        ((("g", "n", "m"), ("g", "n", "k")), "an entry point is given twice"),
    ],
)
def test_bad_entry_points_are_refused(
    points: tuple[tuple[str, str, str], ...], message: str
) -> None:
    with pytest.raises(WheelError, match=r"wheel plan demo 1\.0") as e:
        _plan(entry_points=points)
    assert message in str(e.value)


def _manifest(build_files: list[str]) -> str:
    return json.dumps(
        {
            "manifest_version": 1, "name": "nativelib-x", "version": "1", "platform_tag": "any",
            "libraries": [], "load_order": [], "build_files": build_files,
            "provenance": {"source": "s", "kind": "deb", "packages": []},
        }
    )  # fmt: skip


def test_manifest_build_files_round_trip_and_bad_ones_are_refused() -> None:
    ok = ["lib/pkgconfig/nativelib-x.pc", "share/cmake/nativelib/nativelib-x.cmake"]
    assert parse_manifest(_manifest(ok), "m").build_files == tuple(ok)
    assert parse_manifest(_manifest([]), "m").build_files == ()
    for bad in (
        "lib/nativelib-x.pc",
        "lib/pkgconfig/../../../x.pc",
        "share/cmake/nativelib/x.pc",
        "lib/pkgconfig/.pc",
        "lib/pkgconfig/sub/x.pc",
    ):
        with pytest.raises(ManifestError, match=r"must be a <name>\.pc in lib/pkgconfig/"):
            parse_manifest(_manifest([bad]), "m")


def test_target_names() -> None:
    assert [target_name(s) for s in ("libgomp.so.1", "libcudart.so.12", "libstdc++.so.6")] == [
        "gomp",
        "cudart",
        "stdc++",
    ]


def test_pc_of_a_runtime_with_headers_and_of_one_with_several_libraries() -> None:
    cuda = pkgconfig_file(CUDA)
    assert "includedir=${prefix}/include/cudart-cu12\n" in cuda
    assert "Cflags: -I${includedir}\n" in cuda
    assert "Libs: -Wl,-L${libdir} -Wl,-l:libcudart.so.12\n" in cuda
    cxx = pkgconfig_file(CXX)
    assert "includedir" not in cxx and "Cflags: \n" in cxx
    assert (
        "Libs: -Wl,-L${libdir} -Wl,-l:libgcc_s.so.1 -Wl,-l:libstdc++.so.6 -Wl,-l:libatomic.so.1\n"
        in cxx
    )
    (copy,) = import_path_files(CUDA)
    assert copy[0] == "nativelib_pkgconfig/nativelib-cudart-cu12.pc"
    assert b"prefix=${pcfiledir}/../nativelib.prefix\n" in copy[1]


def test_cmake_component_targets() -> None:
    cuda = cmake_component(CUDA)
    assert "add_library(nativelib::cudart SHARED IMPORTED)" in cuda
    assert 'INTERFACE_INCLUDE_DIRECTORIES "${nativelib_cudart-cu12_INCLUDE_DIR}"' in cuda
    assert "add_library(nativelib::cudart-cu12 INTERFACE IMPORTED)" in cuda
    cxx = cmake_component(CXX)
    assert 'INTERFACE_LINK_LIBRARIES "nativelib::gcc_s;nativelib::stdc++;nativelib::atomic"' in cxx
    # A target another distribution defined (cudart-cu12 and cu13) is a clear error.
    assert "is defined by ${_nativelib_owner} and by nativelib-cudart-cu12" in cuda
    assert [name for name, _ in files_for(CUDA)] == [
        "lib/pkgconfig/nativelib-cudart-cu12.pc",
        "share/cmake/nativelib/nativelib-cudart-cu12.cmake",
    ]
