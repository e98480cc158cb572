"""The one lower-bound rule (``nativelib.resolver.bounds``): data checked against this
host's real GCC runtime libraries, bounds from files compiled here, and the decisions
(declared bounds kept, candidates cross-checked)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from nativelib.elf import read_elf
from nativelib.resolver import candidates
from nativelib.resolver.bounds import (
    first_release,
    node_bound,
    requirement_bounds,
    rule_bound,
    runtime_releases,
)
from nativelib.resolver.model import Requirement
from nativelib_testing import host_library

HOST_RUNTIMES = {
    "nativelib-cxx14": ("libstdc++.so.6", "libgcc_s.so.1", "libatomic.so.1"),
    "nativelib-gomp": ("libgomp.so.1",),
    "nativelib-gfortran5": ("libgfortran.so.5", "libquadmath.so.0"),
}


def _gcc_version() -> Version:
    out = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True, check=True)
    return Version(out.stdout.strip())


def _defined(path: Path) -> set[str]:
    return set(read_elf(str(path)).version_definitions) - {read_elf(str(path)).soname or ""}


@pytest.mark.parametrize(
    ("dist", "soname"), [(d, s) for d, sonames in HOST_RUNTIMES.items() for s in sonames]
)
def test_the_data_matches_this_hosts_libraries(dist: str, soname: str) -> None:
    """Every node the host's copy defines is in the data with a first release at or below
    the host's GCC, and every node the data dates at or below it is defined by the copy."""
    defined = _defined(host_library(soname))
    gcc = _gcc_version()
    releases = runtime_releases().distributions[dist].sonames[soname]  # type: ignore[index]
    unknown = sorted(n for n in defined if n not in releases.nodes)
    assert not unknown, f"{soname}: nodes missing from the data: {unknown}"
    too_new = sorted(n for n in defined if releases.nodes[n] > gcc)
    assert not too_new, f"{soname}: dated after GCC {gcc} but defined by it: {too_new}"
    dated_older = {n for n, v in releases.nodes.items() if v <= gcc}
    assert dated_older <= defined, f"{soname}: not defined by GCC {gcc}: {dated_older - defined}"


def _compile(tmp_path: Path, name: str, source: str, suffix: str, *flags: str) -> Path:
    src = tmp_path / f"{name}{suffix}"
    src.write_text(source)
    out = tmp_path / f"lib{name}.so"
    compiler = "g++" if suffix == ".cpp" else "gcc"
    cmd = [compiler, "-shared", "-fPIC", "-O1", "-o", str(out), str(src), *flags]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


CXX_OMP = r"""
#include <optional>
#include <string>
#include <stdexcept>
#include <omp.h>
extern "C" long work(long n) {
    std::optional<std::string> s = std::to_string(n);
    long t = 0;
#pragma omp parallel for reduction(+ : t)
    for (long i = 0; i < n; i++) t += i;
    if (!s) throw std::runtime_error("none");
    return t + (long)s->size() + omp_get_max_threads();
}
"""

# libgfortran's I/O entry points are GFORTRAN_8 (the soname bump): a C caller is enough.
FORTRAN_CALLER = r"""
extern void _gfortran_set_args(int, char **);
void call(int argc, char **argv) { _gfortran_set_args(argc, argv); }
"""


def _needs(path: Path) -> dict[str, frozenset[str]]:
    info = read_elf(str(path))
    return {s: frozenset(n) for s, n in info.version_needs.items()}


def test_bounds_of_files_compiled_here_are_at_most_this_gcc(tmp_path: Path) -> None:
    host_library("libgomp.so.1")
    lib = _compile(tmp_path, "cxxomp", CXX_OMP, ".cpp", "-fopenmp")
    needs = _needs(lib)
    gcc = _gcc_version()
    cxx = rule_bound("nativelib-cxx14", {s: needs.get(s, frozenset()) for s in ("libstdc++.so.6",)})
    gomp = rule_bound("nativelib-gomp", {"libgomp.so.1": needs["libgomp.so.1"]})
    assert cxx.bound is not None and gomp.bound is not None
    assert cxx.bound <= gcc and gomp.bound <= gcc
    # GOMP_4.0 (GOMP_parallel) came with GCC 4.9: the need, not the host, sets the bound.
    assert gomp.bound >= Version("4.9") and "GOMP" in gomp.because


def test_gfortran_8_gives_gfortran5_at_least_8_whatever_the_candidates(tmp_path: Path) -> None:
    fortran = host_library("libgfortran.so.5")
    lib = _compile(tmp_path, "fcall", FORTRAN_CALLER, ".c", str(fortran))
    nodes = _needs(lib)["libgfortran.so.5"]
    assert nodes == {"GFORTRAN_8"}
    req = Requirement.of("nativelib-gfortran5", nodes={"libgfortran.so.5": nodes})
    alone = requirement_bounds([req])["nativelib-gfortran5"]
    assert alone.requirement() == "nativelib-gfortran5>=8"
    assert not alone.cross_checked
    # Only a 12.2.0 candidate known: the bound stays what the node needs.
    defs = sorted(_defined(fortran) | {"libgfortran.so.5"})
    only_new = candidates.static(
        [{"name": "nativelib-gfortran5", "version": "12.2.0",
          "provides": {"libgfortran.so.5": defs}}]
    )  # fmt: skip
    checked = requirement_bounds([req], only_new)["nativelib-gfortran5"]
    assert checked.requirement() == "nativelib-gfortran5>=8"
    assert checked.cross_checked and checked.candidate == Version("12.2.0")
    assert node_bound("nativelib-gfortran5", ["GFORTRAN_8"]) == Version("8")


def _gomp(*nodes: str) -> Requirement:
    return Requirement.of("nativelib-gomp", nodes={"libgomp.so.1": frozenset(nodes)})


def test_a_tighter_declared_bound_is_kept_and_a_looser_one_is_not() -> None:
    tighter = requirement_bounds(
        [_gomp("GOMP_4.0")], declared={"nativelib-gomp": SpecifierSet(">=12.2")}
    )
    d = tighter["nativelib-gomp"]
    assert d.requirement() == "nativelib-gomp>=12.2" and d.kept_declared
    assert "declared bound 12.2 is tighter" in d.describe()
    looser = requirement_bounds(
        [_gomp("GOMP_5.0")], declared={"nativelib-gomp": SpecifierSet(">=4")}
    )
    assert looser["nativelib-gomp"].requirement() == "nativelib-gomp>=9.1"
    assert not looser["nativelib-gomp"].kept_declared


def test_the_issue_examples() -> None:
    cxx = Requirement.of(
        "nativelib-cxx14", nodes={"libstdc++.so.6": frozenset({"GLIBCXX_3.4.30", "CXXABI_1.3.9"})}
    )
    assert requirement_bounds([cxx])["nativelib-cxx14"].requirement() == "nativelib-cxx14>=12.1"
    assert node_bound("nativelib-cxx14", ["GLIBCXX_3.4.29"]) == Version("11.1.0")
    assert node_bound("nativelib-cudart-cu12", ["libcudart.so.12"]) == Version("12.0")
    assert node_bound("nativelib-mkl", []) == Version("2022.0")
    assert first_release("QUADMATH_1.0") == Version("4.6.0")


def test_an_unknown_node_gives_no_bound_and_says_so_then_candidates_decide() -> None:
    req = _gomp("GOMP_4.0", "GOMP_99.0")
    bare = requirement_bounds([req])["nativelib-gomp"]
    assert bare.bound is None and bare.rule.unknown == ("GOMP_99.0",)
    assert bare.requirement() == "nativelib-gomp"
    assert "no first release is known for GOMP_99.0" in bare.describe()
    assert node_bound("nativelib-gomp", ["GOMP_99.0"]) is None
    source = candidates.static(
        [{"name": "nativelib-gomp", "version": v,
          "provides": {"libgomp.so.1": ["GOMP_4.0", "GOMP_99.0"] if v != "13.1" else ["GOMP_4.0"]}}
         for v in ("13.1", "14.2", "15.1")]
    )  # fmt: skip
    d = requirement_bounds([req], source)["nativelib-gomp"]
    assert d.requirement() == "nativelib-gomp>=14.2" and d.candidate == Version("14.2")


def test_no_candidate_defining_the_nodes_is_a_problem() -> None:
    source = candidates.static(
        [{"name": "nativelib-gomp", "version": "10.2.1", "provides": {"libgomp.so.1": ["GOMP_5.0"]}}]
    )  # fmt: skip
    d = requirement_bounds([_gomp("GOMP_5.1")], source)["nativelib-gomp"]
    assert d.bound == Version("12.1.0")
    assert d.problem == (
        "no nativelib-gomp candidate at or above 12.1 defines GOMP_5.1 (the newest known is 10.2.1)"
    )


@pytest.mark.network
def test_the_data_matches_debian_11s_gcc_10_runtime_wheels(runtime_wheelhouse: Path) -> None:
    """The same check against the real GCC 10.2.1 runtime wheels (Debian 11): every node
    they define is dated at or before 10.2.1 and every node dated so is defined."""
    import zipfile  # noqa: PLC0415

    seen = 0
    for wheel in sorted(runtime_wheelhouse.glob("nativelib_*-10.2.1-*.whl")):
        dist = "nativelib-" + wheel.name.split("-")[0].removeprefix("nativelib_").replace("_", "-")
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                soname = name.rsplit("/", 1)[-1]
                if (
                    not name.startswith("nativelib.prefix/lib/")
                    or soname not in HOST_RUNTIMES[dist]
                ):
                    continue
                path = Path(zf.extract(name, runtime_wheelhouse.parent / f"x-{wheel.stem}"))
                releases = runtime_releases().distributions[dist].sonames[soname]  # type: ignore[index]
                defined = _defined(path)
                assert defined <= set(releases.nodes), sorted(defined - set(releases.nodes))
                assert {n for n in defined if releases.nodes[n] > Version("10.2.1")} == set()
                dated = {n for n, v in releases.nodes.items() if v <= Version("10.2.1")}
                assert dated <= defined, sorted(dated - defined)
                seen += 1
    assert seen == 6
