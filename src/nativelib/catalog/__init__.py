"""The runtime catalog: which distribution owns which sonames, and where to build it from.

Policy is data: one TOML recipe per runtime distribution in ``recipes/``, parsed once into
frozen dataclasses and checked as a whole when the catalog loads. A broken catalog is a
:class:`~nativelib.errors.CatalogError` naming the recipe and the reason:

- a soname owned by two distributions (also through ``libmkl_*.so.2``-style patterns);
- a dependency on an unknown distribution, or a dependency cycle (the cycle is named);
- an unknown source kind, or a source without a sha256 where one is required (an RPM
  URL, any direct URL); conda, Debian-by-name and PyPI sources take the sha256 from their
  index (repodata.json, the suite's Packages index, the simple API). What each kind
  requires is the kind's own rule (:mod:`nativelib.sources`);
- an OpenMP family (``openmp.toml``) that is unknown, joined by two recipes, without
  sonames or with sonames from both a recipe and the table;
- unknown keys, missing keys, wrong types.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from nativelib.digest import is_sha256
from nativelib.errors import CatalogError
from nativelib.sources.base import SourceKind, get_kind, kind_names

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "DEFAULT_CHANNEL",
    "DEFAULT_DEBIAN_MIRROR",
    "DEFAULT_INDEX_URL",
    "Catalog",
    "OpenMPFamily",
    "PackageRef",
    "Recipe",
    "Source",
    "load_catalog",
    "loader_openmp_table",
    "parse_catalog",
]

DEFAULT_CHANNEL = "https://conda.anaconda.org/conda-forge"
DEFAULT_DEBIAN_MIRROR = "https://deb.debian.org/debian"
DEFAULT_INDEX_URL = "https://pypi.org/simple"
#: A Debian mirror to use instead of deb.debian.org for the sources that name none (a
#: local or corporate mirror; the tests serve one on 127.0.0.1).
MIRROR_ENV = "NATIVELIB_DEBIAN_MIRROR"
_DIST = re.compile(r"^nativelib-[a-z0-9]+(?:-[a-z0-9]+)*$")


@dataclass(frozen=True)
class PackageRef:
    """One upstream package of a source: by name (and version) in an index, or by URL."""

    name: str | None = None
    version: str | None = None
    build: str | None = None  # conda build string pattern, e.g. "h*_2"
    url: str | None = None
    sha256: str | None = None

    def describe(self) -> str:
        if self.url:
            return self.url
        text = self.name or "?"
        if self.version:
            text += f" {self.version}"
        if self.build:
            text += f" {self.build}"
        return text


@dataclass(frozen=True)
class Source:
    """Where one recipe can be built from: one kind, one or more upstream packages."""

    name: str
    kind: str
    packages: tuple[PackageRef, ...]
    channel: str = DEFAULT_CHANNEL
    subdir: str = "linux-64"
    suite: str | None = None
    mirror: str = DEFAULT_DEBIAN_MIRROR
    index_url: str = DEFAULT_INDEX_URL
    version_from: str | None = None
    license_files: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    #: The folders the headers are taken relative to (``include/<short>/<path below it>``):
    #: one per upstream package that has headers (CUDA 12's ``crt/`` is in another wheel).
    headers_roots: tuple[str, ...] = ()
    post: int | None = None
    #: The glibc its upstream packages were built against (``"2.36"`` for Debian 12): a
    #: wheel built from it is tagged manylinux at most that, so it installs on any host
    #: with that glibc or newer (``nativelib fix --build`` picks a source by it without
    #: downloading anything). None: not known before the build.
    glibc: str | None = None

    def glibc_version(self) -> tuple[int, int] | None:
        if self.glibc is None:
            return None
        major, _, minor = self.glibc.partition(".")
        return int(major), int(minor)


@dataclass(frozen=True)
class Recipe:
    """One runtime distribution: the sonames it owns, its dependencies, its sources."""

    name: str
    short: str
    summary: str
    sonames: tuple[str, ...]
    exclude: tuple[str, ...]
    depends: tuple[str, ...]
    implicit_needs: Mapping[str, tuple[str, ...]]
    license_expression: str | None
    pin_depends_to_own_version: bool
    sources: tuple[Source, ...]
    default_source: str
    preload: tuple[str, ...] = ()  # what the loader preloads; () means every library
    #: Version nodes a copy of the soname defines, whatever its file is called: how a
    #: vendored copy (``pkg.libs/libgomp-1a2b3c4d.so.1.0.0``) is recognised.
    signatures: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    openmp: str | None = None  # the OpenMP family (openmp.toml) its sonames make up
    where: str = field(default="", compare=False)

    def owns(self, soname: str) -> bool:
        """Whether ``soname`` is one of this distribution's (patterns included)."""
        if soname in self.exclude or any(fnmatch.fnmatchcase(soname, p) for p in self.exclude):
            return False
        return any(s == soname or fnmatch.fnmatchcase(soname, s) for s in self.sonames)

    def source(self, name: str | None = None) -> Source:
        wanted = name or self.default_source
        for src in self.sources:
            if src.name == wanted:
                return src
        known = ", ".join(s.name for s in self.sources) or "none"
        raise CatalogError(self.name, f"no source named {wanted!r} (sources: {known})")


@dataclass(frozen=True)
class OpenMPFamily:
    """One OpenMP runtime family (a process must hold only one): its sonames, and the
    runtime distribution that ships them (None: we ship no wheel of it)."""

    key: str
    label: str  # "GNU (libgomp)": how warnings and findings name it
    sonames: tuple[str, ...]
    distribution: str | None
    mkl_threading_layer: str | None  # the MKL_THREADING_LAYER value that picks it

    @property
    def stems(self) -> tuple[str, ...]:
        """The file name stems of its libraries (``libgomp``), renamed copies included."""
        return tuple(dict.fromkeys(s.partition(".so")[0] for s in self.sonames))

    def names(self, filename: str) -> bool:
        """Whether a (canonical, un-renamed) file name is one of this family's."""
        return ".so" in filename and filename.partition(".so")[0] in self.stems


@dataclass(frozen=True)
class Catalog:
    """All recipes, by distribution name, checked as a whole; the OpenMP families."""

    recipes: Mapping[str, Recipe]
    openmp: Mapping[str, OpenMPFamily] = field(default_factory=dict)

    def openmp_family_of(self, distribution: str) -> OpenMPFamily | None:
        """The OpenMP family a runtime distribution ships, if any."""
        return next((f for f in self.openmp.values() if f.distribution == distribution), None)

    def get(self, name: str) -> Recipe:
        """A recipe by distribution name (``nativelib-gomp``) or short name (``gomp``)."""
        recipe = self.recipes.get(name) or self.recipes.get(f"nativelib-{name}")
        if recipe is None:
            for r in self.recipes.values():
                if r.short == name:
                    return r
            known = ", ".join(sorted(r.short for r in self.recipes.values()))
            raise CatalogError(name, f"unknown runtime (known: {known})")
        return recipe

    def owner_of(self, soname: str) -> Recipe | None:
        """The distribution that owns ``soname``, if any."""
        for recipe in self.recipes.values():
            if recipe.owns(soname):
                return recipe
        return None

    def in_dependency_order(self, names: Iterable[str]) -> tuple[Recipe, ...]:
        """The named recipes and everything they depend on, dependencies first."""
        order: list[Recipe] = []
        done: set[str] = set()

        def visit(recipe: Recipe) -> None:
            if recipe.name in done:
                return
            done.add(recipe.name)
            for dep in recipe.depends:
                visit(self.recipes[dep])
            order.append(recipe)

        for name in names:
            visit(self.get(name))
        return tuple(order)


# --------------------------------------------------------------------------- parsing


class _Doc:
    """Typed access to one TOML table, rejecting unknown keys."""

    def __init__(self, where: str, table: Mapping[str, Any], context: str = "") -> None:
        self.where = where
        self.table = table
        self.context = context
        self.used: set[str] = set()

    def _fail(self, reason: str) -> CatalogError:
        return CatalogError(self.where, f"{self.context}{reason}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.table:
            if default is ...:
                raise self._fail(f"missing key {key!r}")
            return default
        value = self.table[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self._fail(f"{key!r} must be a {names}, not {type(value).__name__}")
        return value

    def strings(self, key: str, default: Any = ...) -> tuple[str, ...]:
        value = self.get(key, list, default)
        if value is default and default is not ...:
            return tuple(value)
        if not all(isinstance(v, str) and v for v in value):
            raise self._fail(f"{key!r} must be a list of non-empty strings")
        return tuple(value)

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self._fail(
                f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
            )


def _sha256(doc: _Doc, required: bool, what: str) -> str | None:
    value = doc.get("sha256", str, None)
    if value is None:
        if required:
            raise doc._fail(f"{what} has no sha256 (one is required for a direct URL)")
        return None
    if not is_sha256(value):
        raise doc._fail(f"sha256 {value!r} is not 64 lowercase hex digits")
    return str(value)


def _package(where: str, kind: SourceKind, raw: Any, context: str) -> PackageRef:
    if not isinstance(raw, dict):
        raise CatalogError(where, f"{context}each package must be a table")
    doc = _Doc(where, raw, context)
    url = doc.get("url", str, None)
    name = doc.get("name", str, None)
    version = doc.get("version", str, None)
    build = doc.get("build", str, None)
    if url is not None:
        if not url.startswith("https://") and not url.startswith("http://"):
            raise doc._fail(f"url {url!r} must be http(s)")
        sha = _sha256(doc, required=True, what=f"package {url!r}")
    else:
        if name is None:
            raise doc._fail("a package needs a 'name' (or a 'url' with a 'sha256')")
        problem = kind.check_package(name, version)
        if problem is not None:
            raise doc._fail(problem)
        sha = _sha256(doc, required=False, what=f"package {name!r}")
    doc.done()
    return PackageRef(name=name, version=version, build=build, url=url, sha256=sha)


def _default_mirror() -> str:
    return os.environ.get(MIRROR_ENV, "").strip() or DEFAULT_DEBIAN_MIRROR


def _headers_roots(doc: _Doc) -> tuple[str, ...]:
    """``headers-root``: one folder, or a list of them (one per upstream package)."""
    value = doc.get("headers-root", (str, list), None)
    roots = [value] if isinstance(value, str) else value or []
    if not all(isinstance(r, str) and r.strip("/") for r in roots):
        raise doc._fail("'headers-root' must be a non-empty string or a list of them")
    return tuple(r.strip("/") for r in roots)


def _source(where: str, raw: Any, index: int) -> Source:
    if not isinstance(raw, dict):
        raise CatalogError(where, f"sources[{index}] must be a table")
    doc = _Doc(where, raw, f"sources[{index}]: ")
    name = doc.get("name", str)
    doc.context = f"source {name!r}: "
    kind_name = doc.get("kind", str)
    kind = get_kind(kind_name)
    if kind is None:
        raise doc._fail(f"unknown source kind {kind_name!r} (known: {', '.join(kind_names())})")
    raw_packages = doc.get("packages", list)
    if not raw_packages:
        raise doc._fail("'packages' is empty")
    packages = tuple(_package(where, kind, p, doc.context) for p in raw_packages)
    suite = doc.get("suite", str, None)
    version_from = doc.get("version-from", str, None)
    if version_from is not None and version_from not in {p.name for p in packages}:
        raise doc._fail(f"'version-from' {version_from!r} is not one of its packages")
    post = doc.get("post", int, None)
    if post is not None and post < 0:
        raise doc._fail("'post' must not be negative")
    glibc = doc.get("glibc", str, None)
    if glibc is not None and not re.fullmatch(r"2\.[0-9]+", glibc):
        raise doc._fail(f"'glibc' {glibc!r} is not a glibc version like \"2.36\"")
    source = Source(
        name=name,
        kind=kind_name,
        packages=packages,
        channel=doc.get("channel", str, DEFAULT_CHANNEL).rstrip("/"),
        subdir=doc.get("subdir", str, "linux-64"),
        suite=suite,
        mirror=doc.get("mirror", str, _default_mirror()).rstrip("/"),
        index_url=doc.get("index-url", str, DEFAULT_INDEX_URL).rstrip("/"),
        version_from=version_from,
        license_files=doc.strings("license-files", ()),
        headers=doc.strings("headers", ()),
        headers_roots=_headers_roots(doc),
        post=post,
        glibc=glibc,
    )
    problem = kind.check_source(source)
    if problem is not None:
        raise doc._fail(problem)
    doc.done()
    return source


def _recipe(where: str, table: Mapping[str, Any]) -> Recipe:
    doc = _Doc(where, table)
    name = doc.get("name", str)
    if not _DIST.match(name):
        raise doc._fail(f"distribution name {name!r} must look like 'nativelib-<name>'")
    short = doc.get("short", str)
    if short != name.removeprefix("nativelib-"):
        # What is installed names no short name: nativelib config and the headers'
        # folder (include/<short>/) take it from the distribution's name.
        raise doc._fail(f"short name {short!r} must be {name.removeprefix('nativelib-')!r}")
    implicit_raw = doc.get("implicit-needs", dict, {})
    implicit: dict[str, tuple[str, ...]] = {}
    for soname, needs in implicit_raw.items():
        if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
            raise doc._fail(f"implicit-needs[{soname!r}] must be a list of sonames")
        implicit[soname] = tuple(needs)
    signatures_raw = doc.get("signatures", dict, {})
    signatures: dict[str, tuple[str, ...]] = {}
    for soname, nodes in signatures_raw.items():
        if (
            not isinstance(nodes, list)
            or not nodes
            or not all(isinstance(n, str) and n for n in nodes)
        ):
            raise doc._fail(f"signatures[{soname!r}] must be a non-empty list of version nodes")
        signatures[soname] = tuple(nodes)
    raw_sources = doc.get("sources", list, [])
    sources = tuple(_source(where, s, i) for i, s in enumerate(raw_sources))
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise doc._fail("two sources share a name")
    recipe = Recipe(
        name=name,
        short=short,
        summary=doc.get("summary", str),
        sonames=doc.strings("sonames"),
        exclude=doc.strings("exclude", ()),
        depends=doc.strings("depends", ()),
        implicit_needs=implicit,
        license_expression=doc.get("license-expression", str, None),
        pin_depends_to_own_version=doc.get("pin-depends-to-own-version", bool, False),
        sources=sources,
        preload=doc.strings("preload", ()),
        signatures=signatures,
        openmp=doc.get("openmp", str, None),
        default_source=doc.get("default-source", str, names[0] if names else ""),
        where=where,
    )
    doc.done()
    if not sources:
        raise doc._fail("no sources")
    try:
        recipe.source()  # the default source exists
    except CatalogError as e:
        raise CatalogError(where, e.reason) from None
    for soname in implicit:
        if not recipe.owns(soname):
            raise doc._fail(f"implicit-needs names {soname!r}, which it does not own")
    for soname in signatures:
        if soname not in recipe.sonames:
            raise doc._fail(f"signatures names {soname!r}, which is not one of its sonames")
    for soname in recipe.preload:
        if not recipe.owns(soname) or any(c in soname for c in "*?["):
            raise doc._fail(f"preload names {soname!r}, which is not one of its sonames")
    return recipe


def _overlap(a: str, b: str) -> bool:
    """Whether two soname patterns can name the same soname (conservative for globs)."""
    return a == b or fnmatch.fnmatchcase(a, b) or fnmatch.fnmatchcase(b, a)


def _check_catalog(recipes: Mapping[str, Recipe]) -> None:
    shorts: dict[str, str] = {}
    for recipe in recipes.values():
        if recipe.short in shorts:
            raise CatalogError(
                recipe.where, f"short name {recipe.short!r} is also {shorts[recipe.short]}'s"
            )
        shorts[recipe.short] = recipe.name
    owners: list[tuple[str, Recipe]] = []
    for recipe in recipes.values():
        for pattern in recipe.sonames:
            for other_pattern, other in owners:
                if other is not recipe and _overlap(pattern, other_pattern):
                    raise CatalogError(
                        recipe.where,
                        f"soname {pattern!r} of {recipe.name} is also owned by {other.name} "
                        f"({other_pattern!r}): one soname, one owning distribution",
                    )
            owners.append((pattern, recipe))
    for recipe in recipes.values():
        for dep in recipe.depends:
            if dep not in recipes:
                raise CatalogError(recipe.where, f"{recipe.name} depends on unknown {dep!r}")
        for soname, needs in recipe.implicit_needs.items():
            for need in needs:
                owner = next((r for r in recipes.values() if r.owns(need)), None)
                if owner is None or (owner is not recipe and owner.name not in recipe.depends):
                    raise CatalogError(
                        recipe.where,
                        f"implicit need {need!r} of {soname!r} is not owned by {recipe.name} "
                        "or one of its dependencies",
                    )
    # Dependency cycles: depth-first search, reporting the cycle itself.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for dep in recipes[name].depends:
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep) :], dep]
                raise CatalogError(recipes[name].where, f"dependency cycle: {' -> '.join(cycle)}")
            if dep not in state:
                visit(dep)
        stack.pop()
        state[name] = 2

    for name in sorted(recipes):
        if name not in state:
            visit(name)


def _toml(where: str, text: str) -> dict[str, Any]:
    try:
        table: dict[str, Any] = tomllib.loads(text)
        return table
    except tomllib.TOMLDecodeError as e:
        raise CatalogError(where, f"invalid TOML: {e}") from e


_OPENMP_TABLE = "openmp.toml"


def _openmp_families(
    where: str, table: Mapping[str, Any], recipes: Mapping[str, Recipe]
) -> dict[str, OpenMPFamily]:
    members: dict[str, list[Recipe]] = {}
    for member in recipes.values():
        if member.openmp is not None:
            if member.openmp not in table:
                raise CatalogError(
                    member.where,
                    f"unknown OpenMP family {member.openmp!r} (known: {', '.join(sorted(table))})",
                )
            members.setdefault(member.openmp, []).append(member)
    families: dict[str, OpenMPFamily] = {}
    for key, raw in table.items():
        if not isinstance(raw, dict):
            raise CatalogError(where, f"family {key!r} must be a table")
        doc = _Doc(where, raw, f"family {key!r}: ")
        label = doc.get("label", str)
        listed = doc.strings("sonames", ())
        layer = doc.get("mkl-threading-layer", str, None)
        doc.done()
        joined = members.get(key, [])
        if len(joined) > 1:
            raise doc._fail(f"joined by {' and '.join(r.name for r in joined)}: one recipe each")
        recipe = joined[0] if joined else None
        if recipe is not None and listed:
            raise doc._fail(f"lists sonames, but they are {recipe.name}'s (its recipe joins it)")
        if recipe is None and not listed:
            raise doc._fail("no sonames: list them, or give a recipe 'openmp = ...'")
        if recipe is None and layer is not None:
            raise doc._fail("'mkl-threading-layer' needs a runtime wheel of the family")
        sonames = recipe.sonames if recipe is not None else listed
        for soname in sonames:
            if any(c in soname for c in "*?["):
                raise doc._fail(f"soname {soname!r} is a pattern; a family needs plain sonames")
            owner = next((r for r in recipes.values() if r.owns(soname)), None)
            if recipe is None and owner is not None:
                raise doc._fail(f"soname {soname!r} is {owner.name}'s: join with its recipe")
        families[key] = OpenMPFamily(
            key, label, sonames, recipe.name if recipe is not None else None, layer
        )
    return families


def parse_catalog(documents: Mapping[str, str], openmp: str = "") -> Catalog:
    """A catalog from TOML texts, keyed by where each came from (a file name); ``openmp``
    is the text of the OpenMP families table (default: no families)."""
    recipes: dict[str, Recipe] = {}
    for where, text in sorted(documents.items()):
        table = _toml(where, text)
        recipe = _recipe(where, table)
        if recipe.name in recipes:
            raise CatalogError(
                where, f"{recipe.name} is also defined in {recipes[recipe.name].where}"
            )
        recipes[recipe.name] = recipe
    _check_catalog(recipes)
    families = _openmp_families(_OPENMP_TABLE, _toml(_OPENMP_TABLE, openmp), recipes)
    return Catalog(recipes, families)


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """The catalog shipped in the package (``nativelib/catalog/recipes/*.toml`` and
    ``openmp.toml``)."""
    folder = resources.files("nativelib.catalog").joinpath("recipes")
    documents = {
        f"recipes/{entry.name}": entry.read_text("utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    }
    openmp = resources.files("nativelib.catalog").joinpath(_OPENMP_TABLE).read_text("utf-8")
    return parse_catalog(documents, openmp)


def loader_openmp_table(catalog: Catalog) -> str:
    """The text of ``nativelib/_openmp.py``: the OpenMP families for the loader, which
    reads no TOML (``scripts/gen_openmp_table.py`` writes it; a test compares)."""
    lines = [
        '"""OpenMP runtime families, for the loader. Generated from nativelib/catalog/openmp.toml',
        "and the recipes' ``openmp`` fields by scripts/gen_openmp_table.py: do not edit.",
        '"""',
        "",
        "#: (label, runtime distribution or None, MKL_THREADING_LAYER value or None, sonames)",
        "FAMILIES: tuple[tuple[str, str | None, str | None, tuple[str, ...]], ...] = (",
    ]

    def text(value: str | None) -> str:
        return "None" if value is None else json.dumps(value)  # as ruff formats it

    for f in catalog.openmp.values():
        sonames = ", ".join(text(s) for s in f.sonames) + ("," if len(f.sonames) == 1 else "")
        fields = [text(f.label), text(f.distribution), text(f.mkl_threading_layer)]
        lines.append(f"    ({', '.join(fields)}, ({sonames})),")
    lines.append(")")
    return "\n".join(lines) + "\n"
