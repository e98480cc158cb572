"""The runtime catalog: the shipped recipes load, and every inconsistency is rejected."""

from __future__ import annotations

import pytest

from nativelib.catalog import load_catalog, parse_catalog
from nativelib.errors import CatalogError

SHA = "a" * 64


def recipe(
    name: str,
    *,
    sonames: str = "[]",
    depends: str = "[]",
    extra: str = "",
    source: str | None = None,
) -> str:
    short = name.removeprefix("nativelib-")
    src = (
        source
        if source is not None
        else f"""
[[sources]]
name = "deb"
kind = "deb"
suite = "bookworm"
packages = [{{ name = "lib{short}" }}]
"""
    )
    return f'''
name = "{name}"
short = "{short}"
summary = "test runtime {short}"
sonames = {sonames}
depends = {depends}
{extra}
{src}
'''


def src(kind: str, packages: str, extra: str = "") -> str:
    """One [[sources]] table named "s"."""
    return f'[[sources]]\nname = "s"\nkind = "{kind}"\n{extra}\npackages = [{packages}]\n'


def test_shipped_catalog() -> None:
    catalog = load_catalog()
    assert sorted(r.short for r in catalog.recipes.values()) == [
        "cudart-cu12",
        "cudart-cu13",
        "cxx14",
        "gfortran5",
        "gomp",
        "iomp",
        "mkl",
        "toolchain-base",
    ]
    assert catalog.owner_of("libstdc++.so.6") is catalog.get("cxx14")
    assert catalog.owner_of("libmkl_intel_lp64.so.2") is catalog.get("nativelib-mkl")
    assert catalog.owner_of("libmkl_tbb_thread.so.2") is None  # excluded
    assert catalog.owner_of("libc.so.6") is None
    order = [r.short for r in catalog.in_dependency_order(["toolchain-base", "cudart-cu13"])]
    assert order.index("cxx14") < order.index("gfortran5") < order.index("toolchain-base")
    assert order.index("cxx14") < order.index("cudart-cu13")
    assert catalog.get("toolchain-base").pin_depends_to_own_version
    assert catalog.get("mkl").implicit_needs["libmkl_gnu_thread.so.2"] == ("libgomp.so.1",)
    bookworm = catalog.get("cxx14").source("debian-bookworm")
    assert bookworm.kind == "deb" and bookworm.suite == "bookworm"
    assert [p.name for p in bookworm.packages][:3] == ["libstdc++6", "libgcc-s1", "libatomic1"]


def test_unknown_runtime_and_source_names() -> None:
    catalog = load_catalog()
    with pytest.raises(CatalogError, match=r"unknown runtime .*known: .*cxx14"):
        catalog.get("cxx11")
    with pytest.raises(CatalogError, match="no source named 'nope'"):
        catalog.get("gomp").source("nope")


BAD = [
    pytest.param(
        {
            "a.toml": recipe("nativelib-a", sonames='["libx.so.1"]'),
            "b.toml": recipe("nativelib-b", sonames='["libx.so.1"]'),
        },
        "soname 'libx.so.1' of nativelib-b is also owned by nativelib-a",
        id="soname-two-owners",
    ),
    pytest.param(
        {
            "a.toml": recipe("nativelib-a", sonames='["libmkl_core.so.2"]'),
            "b.toml": recipe("nativelib-b", sonames='["libmkl_*.so.2"]'),
        },
        "also owned by",
        id="soname-pattern-overlap",
    ),
    pytest.param(
        {
            "a.toml": recipe("nativelib-a", depends='["nativelib-b"]'),
            "b.toml": recipe("nativelib-b", depends='["nativelib-c"]'),
            "c.toml": recipe("nativelib-c", depends='["nativelib-a"]'),
        },
        "dependency cycle: nativelib-a -> nativelib-b -> nativelib-c -> nativelib-a",
        id="cycle",
    ),
    pytest.param(
        {"a.toml": recipe("nativelib-a", depends='["nativelib-a"]')},
        "dependency cycle: nativelib-a -> nativelib-a",
        id="self-cycle",
    ),
    pytest.param(
        {"a.toml": recipe("nativelib-a", depends='["nativelib-zzz"]')},
        "depends on unknown 'nativelib-zzz'",
        id="unknown-dependency",
    ),
    pytest.param(
        {
            "a.toml": recipe(
                "nativelib-a",
                source=src("apk", '{ name = "x" }'),
            )
        },
        "unknown source kind 'apk'",
        id="unknown-kind",
    ),
    pytest.param(
        {
            "a.toml": recipe(
                "nativelib-a",
                source=src("rpm", '{ url = "https://example.org/x.rpm" }'),
            )
        },
        "has no sha256",
        id="rpm-url-without-sha256",
    ),
    pytest.param(
        {
            "a.toml": recipe(
                "nativelib-a",
                source=src("rpm", '{ name = "libgomp" }'),
            )
        },
        "needs a 'url' and a 'sha256'",
        id="rpm-by-name",
    ),
    pytest.param(
        {
            "a.toml": recipe(
                "nativelib-a",
                source=src("deb", '{ url = "https://example.org/x.deb" }'),
            )
        },
        "has no sha256",
        id="deb-url-without-sha256",
    ),
    pytest.param(
        {
            "a.toml": recipe(
                "nativelib-a",
                source=src("wheel", '{ url = "https://example.org/x.whl", sha256 = "ABC" }'),
            )
        },
        "is not 64 lowercase hex digits",
        id="bad-sha256",
    ),
    pytest.param(
        {
            "a.toml": recipe(
                "nativelib-a",
                source=src("conda", '{ name = "libgomp" }'),
            )
        },
        "conda package 'libgomp' needs a 'version'",
        id="conda-without-version",
    ),
    pytest.param(
        {
            "a.toml": recipe(
                "nativelib-a",
                source=src("deb", '{ name = "libgomp1" }'),
            )
        },
        "needs a 'suite'",
        id="deb-without-suite",
    ),
    pytest.param(
        {"a.toml": recipe("nativelib-a", extra='colour = "blue"')},
        "unknown key 'colour'",
        id="unknown-key",
    ),
    pytest.param(
        {"a.toml": recipe("nativelib-a", sonames='"libx.so.1"')},
        "'sonames' must be a list",
        id="wrong-type",
    ),
    pytest.param(
        {"a.toml": recipe("nativelib-a", extra='default-source = "conda"')},
        "no source named 'conda'",
        id="missing-default-source",
    ),
    pytest.param({"a.toml": recipe("nativelib-a", source="")}, "no sources", id="no-sources"),
    pytest.param(
        {
            "a.toml": recipe(
                "nativelib-a",
                sonames='["liba.so.1"]',
                extra='[implicit-needs]\n"libzz.so.1" = ["liba.so.1"]',
            )
        },
        "implicit-needs names 'libzz.so.1'",
        id="implicit-need-not-owned",
    ),
    pytest.param(
        {
            "a.toml": recipe(
                "nativelib-a",
                sonames='["liba.so.1"]',
                extra='[implicit-needs]\n"liba.so.1" = ["libb.so.1"]',
            ),
            "b.toml": recipe("nativelib-b", sonames='["libb.so.1"]'),
        },
        "implicit need 'libb.so.1' of 'liba.so.1' is not owned by nativelib-a or one of its",
        id="implicit-need-without-dependency",
    ),
    pytest.param(
        {
            "a.toml": recipe(
                "nativelib-a",
                sonames='["liba.so.1"]',
                extra='signatures = { "libzz.so.1" = ["A_1"] }',
            )
        },
        "signatures names 'libzz.so.1', which is not one of its sonames",
        id="signature-of-unowned-soname",
    ),
    pytest.param(
        {
            "a.toml": recipe(
                "nativelib-a", sonames='["liba.so.1"]', extra='signatures = { "liba.so.1" = [] }'
            )
        },
        "signatures['liba.so.1'] must be a non-empty list of version nodes",
        id="empty-signature",
    ),
    pytest.param({"a.toml": recipe("a")}, "must look like 'nativelib-<name>'", id="bad-name"),
    pytest.param(
        {"a.toml": recipe("nativelib-a"), "b.toml": recipe("nativelib-a")},
        "is also defined in a.toml",
        id="duplicate",
    ),
    pytest.param({"a.toml": "name = \n"}, "invalid TOML", id="invalid-toml"),
    pytest.param(
        {
            "a.toml": recipe(
                "nativelib-a",
                source=src("deb", '{ name = "y" }', 'suite = "x"\nversion-from = "zz"'),
            )
        },
        "'version-from' 'zz' is not one of its packages",
        id="version-from-unknown",
    ),
    pytest.param(
        {
            "a.toml": recipe(
                "nativelib-a", source=src("deb", '{ name = "y" }', 'suite = "x"\nglibc = "2.3x"')
            )
        },
        "'glibc' '2.3x' is not a glibc version like \"2.36\"",
        id="bad-glibc",
    ),
    pytest.param(
        {
            "a.toml": recipe(
                "nativelib-a",
                source=src("deb", '{ name = "y" }', 'suite = "x"\nheaders-root = ["inc", ""]'),
            )
        },
        "'headers-root' must be a non-empty string or a list of them",
        id="headers-root-empty",
    ),
    pytest.param(
        {"a.toml": recipe("nativelib-a").replace('short = "a"', 'short = "b"')},
        "short name 'b' must be 'a'",
        id="short-name-not-the-distributions",
    ),
]


@pytest.mark.parametrize(("documents", "message"), BAD)
def test_bad_catalog_is_rejected(documents: dict[str, str], message: str) -> None:
    with pytest.raises(CatalogError) as e:
        parse_catalog(documents)
    assert message in str(e.value)
    assert e.value.where.endswith(".toml")


def test_good_synthetic_catalog() -> None:
    catalog = parse_catalog(
        {
            "a.toml": recipe("nativelib-a", sonames='["liba.so.1"]'),
            "b.toml": recipe("nativelib-b", sonames='["libb.so.1"]', depends='["nativelib-a"]'),
        }
    )
    assert [r.name for r in catalog.in_dependency_order(["b"])] == ["nativelib-a", "nativelib-b"]
