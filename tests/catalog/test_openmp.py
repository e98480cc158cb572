"""OpenMP families: one source of truth (catalog/openmp.toml and the recipes' ``openmp``
field); the loader's generated table and the doctor read it."""

from __future__ import annotations

from pathlib import Path

import pytest

import nativelib._openmp
from nativelib import loader
from nativelib.catalog import load_catalog, loader_openmp_table, parse_catalog
from nativelib.errors import CatalogError

RECIPE = """
name = "nativelib-{short}"
short = "{short}"
summary = "x"
sonames = [{sonames}]
{extra}
[[sources]]
name = "s"
kind = "conda"
packages = [{{ name = "x", version = "1" }}]
"""

FAMILIES = """
[gnu]
label = "GNU (libgomp)"
mkl-threading-layer = "GNU"

[llvm]
label = "LLVM (libomp)"
sonames = ["libomp.so", "libomp.so.5"]
"""


def _recipe(short: str, sonames: str, extra: str = "") -> str:
    return RECIPE.format(short=short, sonames=sonames, extra=extra)


def test_the_shipped_families() -> None:
    families = {k: (f.label, f.sonames, f.distribution) for k, f in load_catalog().openmp.items()}
    assert families == {
        "gnu": ("GNU (libgomp)", ("libgomp.so.1",), "nativelib-gomp"),
        "intel": ("Intel (libiomp5)", ("libiomp5.so",), "nativelib-iomp"),
        "llvm": ("LLVM (libomp)", ("libomp.so", "libomp.so.5"), None),
    }
    llvm = load_catalog().openmp["llvm"]
    assert llvm.stems == ("libomp",)
    assert llvm.names("libomp.so.5") and not llvm.names("libgomp.so.1")


def test_the_loaders_table_is_generated_from_the_catalog() -> None:
    """Fails when catalog/openmp.toml or a recipe's ``openmp`` changes without
    ``python scripts/gen_openmp_table.py``."""
    generated = Path(nativelib._openmp.__file__).read_text("utf-8")
    assert generated == loader_openmp_table(load_catalog())
    catalog = load_catalog()
    providers = {f.distribution for f in catalog.openmp.values() if f.distribution}
    assert {n for n in catalog.recipes if loader.is_openmp_provider(n)} == providers
    assert {f.label: f.sonames for f in catalog.openmp.values()} == loader._OPENMP_SONAMES


def test_a_recipe_joins_a_family() -> None:
    catalog = parse_catalog(
        {"a.toml": _recipe("a", '"libgomp.so.1"', 'openmp = "gnu"')}, openmp=FAMILIES
    )
    gnu = catalog.openmp["gnu"]
    assert (gnu.sonames, gnu.distribution, gnu.mkl_threading_layer) == (
        ("libgomp.so.1",),
        "nativelib-a",
        "GNU",
    )
    assert catalog.openmp_family_of("nativelib-a") is gnu
    assert catalog.openmp_family_of("nativelib-b") is None


@pytest.mark.parametrize(
    ("documents", "families", "reason"),
    [
        (
            {"a.toml": _recipe("a", '"libx.so.1"', 'openmp = "nope"')},
            FAMILIES,
            "unknown OpenMP family 'nope'",
        ),
        (
            {
                "a.toml": _recipe("a", '"libgomp.so.1"', 'openmp = "gnu"'),
                "b.toml": _recipe("b", '"libgomp2.so.1"', 'openmp = "gnu"'),
            },
            FAMILIES,
            "joined by nativelib-a and nativelib-b",
        ),
        ({}, FAMILIES, "family 'gnu': no sonames"),
        (
            {"a.toml": _recipe("a", '"libgomp.so.1"', 'openmp = "gnu"')},
            FAMILIES.replace('label = "GNU (libgomp)"', 'label = "G"\nsonames = ["libgomp.so.1"]'),
            "lists sonames, but they are nativelib-a's",
        ),
        (
            {
                "a.toml": _recipe("a", '"libgomp.so.1"', 'openmp = "gnu"'),
                "b.toml": _recipe("b", '"libomp.so"'),
            },
            FAMILIES,
            "soname 'libomp.so' is nativelib-b's",
        ),
        (
            {"a.toml": _recipe("a", '"libgomp.so.1"', 'openmp = "gnu"')},
            FAMILIES + 'mkl-threading-layer = "LLVM"\n',
            "'mkl-threading-layer' needs a runtime wheel",
        ),
        (
            {"a.toml": _recipe("a", '"libgomp.so.1"', 'openmp = "gnu"')},
            FAMILIES + 'colour = "x"\n',
            "unknown key 'colour'",
        ),
    ],
)
def test_bad_families(documents: dict[str, str], families: str, reason: str) -> None:
    with pytest.raises(CatalogError, match=reason):
        parse_catalog(documents, openmp=families)
