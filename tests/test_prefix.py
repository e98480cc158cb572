"""Runtime manifests: round trip, strict parsing, load order."""

from __future__ import annotations

import json

import pytest

from nativelib.prefix import (
    Dependency,
    Library,
    Manifest,
    ManifestError,
    PackageProvenance,
    Provenance,
    load_order,
    parse_manifest,
)


def lib(soname: str, needed: tuple[str, ...] = (), implicit: tuple[str, ...] = ()) -> Library:
    return Library(
        soname=soname,
        file=f"lib/{soname}",
        sha256="0" * 64,
        size=10,
        version_definitions=("V_1",),
        needed=needed,
        version_needs={"libc.so.6": ("GLIBC_2.2.5",)},
        implicit_needs=implicit,
    )


def manifest() -> Manifest:
    libs = (
        lib("libstdc++.so.6", ("libm.so.6", "libgcc_s.so.1")),
        lib("libgcc_s.so.1", ("libc.so.6",)),
    )
    return Manifest(
        name="nativelib-cxx14",
        version="12.2.0",
        libraries=libs,
        load_order=load_order(libs),
        dependencies=(Dependency("nativelib-gomp", ">=12.2"),),
        provenance=Provenance(
            source="debian-bookworm",
            kind="deb",
            license="GPL-3.0-or-later WITH GCC-exception-3.1",
            license_files=("copyright",),
            packages=(
                PackageProvenance("libstdc++6", "12.2.0-14", "https://x/y.deb", "1" * 64, "y.deb"),
            ),
        ),
        platform_tag="manylinux_2_36_x86_64",
        headers=("include/x.h",),
    )


def test_round_trip_and_determinism() -> None:
    m = manifest()
    text = m.to_json()
    assert text == m.to_json() and text.endswith("\n")
    assert parse_manifest(text, "m.json") == m
    assert m.filename == "share/nativelib/runtimes/nativelib-cxx14.json"
    assert m.library("libgcc_s.so.1") is m.libraries[1]
    assert m.dependencies[0].requirement() == "nativelib-gomp>=12.2"


def test_load_order_puts_needs_first() -> None:
    assert manifest().load_order == ("libgcc_s.so.1", "libstdc++.so.6")
    libs = [lib("a", ("b",)), lib("b", ("c",)), lib("c"), lib("d", implicit=("a",))]
    assert load_order(libs) == ("c", "b", "a", "d")
    # A cycle is broken, every soname still appears once.
    assert sorted(load_order([lib("x", ("y",)), lib("y", ("x",))])) == ["x", "y"]


def _mutate(**changes: object) -> str:
    doc = json.loads(manifest().to_json())
    for path, value in changes.items():
        target = doc
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[keys[-1]] = value
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "invalid JSON"),
        ("[]", "manifest must be an object"),
        (_mutate(manifest_version=2), "unsupported manifest_version 2"),
        (_mutate(name=3), "manifest.name must be a string"),
        (_mutate(libraries__0__size=-1), "libraries[0].size must be a non-negative integer"),
        (
            _mutate(libraries__0__needed="libm.so.6"),
            "libraries[0].needed must be a list of strings",
        ),
        (_mutate(libraries__0__file="lib/other.so"), "must be the file 'lib/libstdc++.so.6'"),
        (_mutate(load_order=["libgcc_s.so.1"]), "load_order must list every library"),
        (_mutate(provenance=None), "provenance must be an object"),
        (
            _mutate(provenance__packages__0__sha256=None),
            "provenance.packages[0].sha256 must be a string",
        ),
        (_mutate(libraries__1__soname="libstdc++.so.6"), "a soname is listed twice"),
    ],
)
def test_malformed_manifest(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as e:
        parse_manifest(text, "runtimes/x.json")
    assert message in str(e.value)
    assert e.value.where == "runtimes/x.json"
