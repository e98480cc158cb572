"""Which runtime wheels ``nativelib fix --build`` builds for a host: the real catalog and
the project's real release file, hosts given by their glibc (nothing is built here; the
build itself runs in tests/repair/test_fix.py, from a Debian mirror served on 127.0.0.1)."""

from __future__ import annotations

import pytest
from packaging.specifiers import SpecifierSet

from nativelib.catalog import load_catalog
from nativelib.errors import BuildError
from nativelib.release.forhost import choose_builds, installable_here
from nativelib.release.releasefile import (
    default_release_file,
    load_release_file,
    parse_release_file,
)

CATALOG = load_catalog()
RELEASE = load_release_file(default_release_file(), CATALOG)


def _chosen(wanted: dict[str, str], glibc: tuple[int, int], **installed: str) -> list[str]:
    specs = {name: SpecifierSet(spec) for name, spec in wanted.items()}
    have = {name.replace("_", "-"): v for name, v in installed.items()}
    builds = choose_builds(specs, have, glibc, CATALOG, RELEASE)
    return [f"{b.recipe.name} {b.entry.version} {b.entry.source}" for b in builds]


def test_newest_entry_the_host_runs() -> None:
    gomp = {"nativelib-gomp": ">=4.9"}
    assert _chosen(gomp, (2, 41)) == ["nativelib-gomp 14.2.0 debian-trixie"]
    assert _chosen(gomp, (2, 36)) == ["nativelib-gomp 12.2.0 debian-bookworm"]
    assert _chosen(gomp, (2, 35)) == ["nativelib-gomp 10.2.1 debian-bullseye"]
    # The bound decides among those the host runs.
    assert _chosen({"nativelib-gomp": ">=4.9,<12"}, (2, 41)) == [
        "nativelib-gomp 10.2.1 debian-bullseye"
    ]


def test_dependencies_are_built_unless_installed() -> None:
    assert _chosen({"nativelib-gfortran5": ">=8"}, (2, 36)) == [
        "nativelib-cxx14 12.2.0 debian-bookworm",
        "nativelib-gfortran5 12.2.0 debian-bookworm",
    ]
    assert _chosen({"nativelib-gfortran5": ">=8"}, (2, 36), nativelib_cxx14="10.2.1") == [
        "nativelib-gfortran5 12.2.0 debian-bookworm"
    ]
    # An installed runtime that satisfies is not built; one too old is.
    assert _chosen({"nativelib-gomp": ">=4.9"}, (2, 36), nativelib_gomp="10.2.1") == []
    assert _chosen({"nativelib-gomp": ">=11"}, (2, 36), nativelib_gomp="10.2.1") == [
        "nativelib-gomp 12.2.0 debian-bookworm"
    ]
    # Bounds on one runtime from two wheels (and a short name) are both kept.
    assert _chosen({"nativelib-cxx14": ">=5.1", "cxx14": "<12"}, (2, 41)) == [
        "nativelib-cxx14 10.2.1 debian-bullseye"
    ]


def test_no_entry_fits() -> None:
    with pytest.raises(BuildError) as info:
        _chosen({"nativelib-gomp": ">=4.9"}, (2, 28))
    text = str(info.value)
    assert "nativelib-gomp: no entry of the release file" in text
    assert "satisfies nativelib-gomp>=4.9 on this host (glibc 2.28)" in text
    assert "10.2.1 from debian-bullseye (glibc 2.31)" in text and "hint: " in text
    with pytest.raises(BuildError, match="satisfies nativelib-gomp>=15"):
        _chosen({"nativelib-gomp": ">=15"}, (2, 41))
    # cudart's only source (PyPI) has no glibc in the catalog, and no release entry.
    with pytest.raises(BuildError, match="it offers no build of it"):
        _chosen({"nativelib-cudart-cu12": ">=12"}, (2, 41))


def test_installable_here() -> None:
    name = "nativelib_gomp-12.2.0-py3-none-manylinux_2_34_x86_64.whl"
    assert installable_here(name, (2, 36), "x86_64")
    assert not installable_here(name, (2, 31), "x86_64")
    assert not installable_here(name, (2, 36), "aarch64")
    assert installable_here("x-1-py3-none-manylinux2014_x86_64.whl", (2, 17), "x86_64")


def test_a_pin_of_a_dependency_chooses_it_again() -> None:
    """toolchain-base pins its GCC runtimes to its own version: cxx14, chosen at 14.2.0
    first (trixie), is chosen again at the pinned 12.2.0."""
    gcc = {"debian-bullseye": "10.2.1", "debian-bookworm": "12.2.0"}
    doc = {"runtimes": {"cxx14": {**gcc, "debian-trixie": "14.2.0"}, "gomp": gcc,
                        "gfortran5": gcc, "toolchain-base": {"debian-bookworm": "12.2.0"}}}  # fmt: skip
    release = parse_release_file(doc, "toolchain.toml", CATALOG)
    specs = {"nativelib-cxx14": SpecifierSet(">=5"), "nativelib-toolchain-base": SpecifierSet()}
    got = choose_builds(specs, {}, (2, 41), CATALOG, release)
    assert [f"{b.recipe.name} {b.entry.version}" for b in got] == [
        "nativelib-cxx14 12.2.0",
        "nativelib-gfortran5 12.2.0",
        "nativelib-gomp 12.2.0",
        "nativelib-toolchain-base 12.2.0",
    ]
