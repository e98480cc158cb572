"""The tag and the required runtimes, decided together (``nativelib.resolver.target``),
over candidates described as data (the platforms and nodes of the real Debian 11/12
runtime wheels; the end-to-end tests use the wheels themselves)."""

from __future__ import annotations

from typing import Any

from nativelib.resolver import candidates
from nativelib.resolver.model import Requirement
from nativelib.resolver.target import decide_target

CXX = {"libstdc++.so.6": [f"GLIBCXX_3.4.{n}" for n in range(31)] + ["GLIBCXX_3.4"]}
CXX_10 = {"libstdc++.so.6": [f"GLIBCXX_3.4.{n}" for n in range(29)] + ["GLIBCXX_3.4"]}
GOMP = {"libgomp.so.1": ["GOMP_1.0", "GOMP_4.0", "OMP_1.0"]}
FORTRAN = {"libgfortran.so.5": ["GFORTRAN_8"]}


def _debian(**extra: Any) -> candidates.Source:
    rows: list[dict[str, Any]] = [
        {"name": "nativelib-cxx14", "version": "10.2.1", "provides": CXX_10,
         "platforms": ["manylinux_2_24_x86_64"]},
        {"name": "nativelib-cxx14", "version": "12.2.0", "provides": CXX,
         "platforms": ["manylinux_2_36_x86_64"]},
        {"name": "nativelib-gomp", "version": "10.2.1", "provides": GOMP,
         "platforms": ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]},
        {"name": "nativelib-gomp", "version": "12.2.0", "provides": GOMP,
         "platforms": ["manylinux_2_34_x86_64"]},
        {"name": "nativelib-gfortran5", "version": "12.2.0", "provides": FORTRAN,
         "platforms": ["manylinux_2_34_x86_64"], "requires": ["nativelib-cxx14"]},
    ]  # fmt: skip
    return candidates.static(rows + list(extra.get("more", [])))


def _reqs(*names: str) -> dict[str, Requirement]:
    nodes = {
        "nativelib-cxx14": {"libstdc++.so.6": frozenset({"GLIBCXX_3.4.30"})},
        "nativelib-gomp": {"libgomp.so.1": frozenset({"GOMP_4.0"})},
        "nativelib-gfortran5": {"libgfortran.so.5": frozenset({"GFORTRAN_8"})},
    }
    return {n: Requirement.of(n, nodes=nodes[n]) for n in names}


def test_the_issue_example_gomp_only_at_2_35_and_cxx14_forced_at_2_36() -> None:
    d = decide_target(
        _reqs("nativelib-cxx14", "nativelib-gomp"), [], "x86_64", candidates=_debian()
    )
    assert d.platforms == ("manylinux_2_35_x86_64",) and d.requires_dist() == [
        "nativelib-gomp>=4.9"
    ]
    assert not d.choices["nativelib-cxx14"].required and d.cross_checked
    forced = decide_target(
        _reqs("nativelib-cxx14", "nativelib-gomp"), [], "x86_64", candidates=_debian(),
        forced=["nativelib-cxx14"],
    )  # fmt: skip
    assert forced.platforms == ("manylinux_2_36_x86_64",)
    assert forced.requires_dist() == ["nativelib-cxx14>=12.1", "nativelib-gomp>=4.9"]


def test_plat_is_checked_and_refused_naming_the_candidate_floor() -> None:
    reqs = _reqs("nativelib-cxx14", "nativelib-gomp")
    d = decide_target(reqs, [], "x86_64", candidates=_debian(), plat="manylinux_2_28")
    assert d.refusal == (
        "manylinux_2_28_x86_64: nativelib-cxx14>=12.1 (for GLIBCXX_3.4.30): its candidate "
        "floor is manylinux_2_36_x86_64 (nativelib-cxx14 12.2.0), above manylinux_2_28_x86_64"
    )
    ok = decide_target(reqs, [], "x86_64", candidates=_debian(), plat="manylinux_2_36_x86_64")
    assert ok.refusal is None and ok.given and ok.requires_dist() == ["nativelib-gomp>=4.9"]


def test_plat_2_17_with_a_runtime_built_only_for_2_34_is_refused() -> None:
    only_new = candidates.static(
        [{"name": "nativelib-gomp", "version": "12.2.0", "provides": GOMP,
          "platforms": ["manylinux_2_34_x86_64"]}]
    )  # fmt: skip
    d = decide_target(
        _reqs("nativelib-gomp"), [], "x86_64", candidates=only_new, plat="manylinux_2_17_x86_64"
    )
    assert (
        d.refusal is not None
        and "candidate floor is manylinux_2_34_x86_64 (nativelib-gomp 12.2.0)" in d.refusal
    )
    lowest = decide_target(_reqs("nativelib-gomp"), [], "x86_64", candidates=only_new)
    assert lowest.platforms == ("manylinux_2_34_x86_64",)
    assert lowest.rejected == (
        "manylinux_2_31_x86_64: nativelib-gomp>=4.9 (for GOMP_4.0): its candidate floor is "
        "manylinux_2_34_x86_64 (nativelib-gomp 12.2.0), above manylinux_2_31_x86_64",
    )


def test_without_candidates_the_bound_rule_alone_decides() -> None:
    d = decide_target(_reqs("nativelib-cxx14", "nativelib-gomp"), [], "x86_64")
    assert d.platforms[0] == "manylinux_2_5_x86_64" and not d.cross_checked
    assert d.requires_dist() == ["nativelib-cxx14>=12.1", "nativelib-gomp>=4.9"]
    assert any("not cross-checked" in line for line in d.describe())


def test_a_runtime_pulled_in_by_another_is_required_with_its_bound() -> None:
    """gfortran5 depends on cxx14: installed with it, cxx14's libstdc++ in the prefix would
    come before the host's, so the node bound must be declared even on manylinux_2_35."""
    d = decide_target(
        _reqs("nativelib-cxx14", "nativelib-gfortran5"), [], "x86_64", candidates=_debian()
    )
    assert d.requires_dist() == ["nativelib-cxx14>=12.1", "nativelib-gfortran5>=8"]
    assert "installed with nativelib-gfortran5" in d.choices["nativelib-cxx14"].why
    assert d.platforms == ("manylinux_2_36_x86_64",)


def test_a_candidate_whose_dependency_cannot_install_there_does_not_count() -> None:
    # The only gfortran5 runs on 2_34, but every cxx14 it depends on needs 2_36.
    only = candidates.static(
        [{"name": "nativelib-gfortran5", "version": "12.2.0", "provides": FORTRAN,
          "platforms": ["manylinux_2_34_x86_64"], "requires": ["nativelib-cxx14>=12"]},
         {"name": "nativelib-cxx14", "version": "12.2.0", "provides": CXX,
          "platforms": ["manylinux_2_36_x86_64"]}]
    )  # fmt: skip
    d = decide_target(
        _reqs("nativelib-gfortran5"), [], "x86_64", candidates=only, plat="manylinux_2_34"
    )
    assert d.refusal == (
        "manylinux_2_34_x86_64: nativelib-gfortran5>=8 (for GFORTRAN_8): the runtime wheels "
        "it would pull in are not all installable on manylinux_2_34_x86_64"
    )
