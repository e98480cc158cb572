"""The release file: which runtimes a release builds, from which sources, at which versions.

A TOML file (the project's own is ``nativelib/data/release.toml``)::

    [runtimes]
    cxx14 = { debian-bullseye = "10.2.1", debian-bookworm = "12.2.0" }
    gomp = { debian-bullseye = "10.2.1", debian-bookworm = "12.2.0" }

    [[yanked]]
    name = "nativelib-gomp"
    version = "12.2.0"
    reason = "why it must not be picked"

Each runtime (short or distribution name, as the catalog knows it) maps catalog source
names to the upstream version that source must give. It is parsed once into frozen
values and checked against the catalog here: an unknown runtime or source, a runtime
whose dependency is not in the release, a yanked entry that names nothing the release
builds, unknown keys and wrong types are a :class:`ReleaseFileError` naming the file and
the entry. Whether each source really gives its version is checked when the release
resolves its sources (:mod:`nativelib.release.build`), before anything is built.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from nativelib.catalog import Catalog
from nativelib.errors import CatalogError, NativeLibError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "ReleaseEntry",
    "ReleaseFile",
    "ReleaseFileError",
    "Yanked",
    "default_release_file",
    "load_release_file",
    "parse_release_file",
]


class ReleaseFileError(NativeLibError):
    """A release file that cannot be used: ``<file>: <entry>: <reason>``."""

    def __init__(self, where: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"{where}: {reason}", hint=hint)
        self.where = where
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.where, self.reason), self.__dict__)


@dataclass(frozen=True)
class ReleaseEntry:
    """One wheel of the matrix: a runtime (distribution name) from one catalog source,
    at the upstream version that source must give."""

    runtime: str
    source: str
    version: str

    @property
    def label(self) -> str:
        return f"{self.runtime} from {self.source}"


@dataclass(frozen=True)
class Yanked:
    """A distribution version the index marks as yanked (PEP 592), with its reason."""

    name: str
    version: str
    reason: str


@dataclass(frozen=True)
class ReleaseFile:
    path: str
    entries: tuple[ReleaseEntry, ...]  # runtimes in dependency order, sources as written
    yanked: tuple[Yanked, ...]

    @property
    def runtimes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.runtime for e in self.entries))


def default_release_file() -> Path:
    """The project's own release file (``nativelib/data/release.toml``)."""
    return Path(str(resources.files("nativelib") / "data" / "release.toml"))


def load_release_file(path: Path, catalog: Catalog) -> ReleaseFile:
    """Read and check ``path`` (see the module docstring)."""
    where = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise ReleaseFileError(
            where,
            f"cannot read the release file: {e.strerror or e}",
            hint="give the path of a release file, or no argument for the project's own",
        ) from e
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ReleaseFileError(where, f"not valid TOML: {e}") from e
    return parse_release_file(doc, where, catalog)


def _keys(where: str, table: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ReleaseFileError(
            where,
            f"{what}: unknown key {unknown[0]!r}",
            hint=f"the keys are: {', '.join(sorted(allowed))}",
        )


def _str(where: str, value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ReleaseFileError(where, f"{what}: expected a non-empty string, got {value!r}")
    return value.strip()


def parse_release_file(doc: dict[str, Any], where: str, catalog: Catalog) -> ReleaseFile:
    """A parsed TOML document as a :class:`ReleaseFile`, checked against ``catalog``."""
    from packaging.utils import canonicalize_name  # noqa: PLC0415
    from packaging.version import InvalidVersion, Version  # noqa: PLC0415

    _keys(where, doc, {"runtimes", "yanked"}, "the file")
    runtimes = doc.get("runtimes")
    if not isinstance(runtimes, dict) or not runtimes:
        raise ReleaseFileError(
            where,
            "no [runtimes] table (each runtime maps sources to versions)",
            hint='e.g. [runtimes] then gomp = { debian-bookworm = "12.2.0" }',
        )
    by_runtime: dict[str, list[ReleaseEntry]] = {}
    for key, sources in runtimes.items():
        what = f"runtimes.{key}"
        try:
            recipe = catalog.get(key)
        except CatalogError as e:
            raise ReleaseFileError(where, f"{what}: {e.reason}") from e
        if recipe.name in by_runtime:
            raise ReleaseFileError(where, f"{what}: {recipe.name} is listed twice")
        if not isinstance(sources, dict) or not sources:
            raise ReleaseFileError(
                where,
                f"{what}: expected a table of source = version, got {sources!r}",
                hint=f'e.g. {key} = {{ {recipe.default_source} = "VERSION" }}',
            )
        entries = []
        for source_name, version in sources.items():
            if source_name not in {s.name for s in recipe.sources}:
                known = ", ".join(s.name for s in recipe.sources)
                raise ReleaseFileError(
                    where,
                    f"{what}.{source_name}: {recipe.name} has no source {source_name!r}",
                    hint=f"its sources (src/nativelib/catalog/recipes): {known}",
                )
            text = _str(where, version, f"{what}.{source_name}")
            try:
                Version(text)
            except InvalidVersion as e:
                raise ReleaseFileError(
                    where, f"{what}.{source_name}: {text!r} is not a PEP 440 version"
                ) from e
            entries.append(ReleaseEntry(recipe.name, source_name, text))
        by_runtime[recipe.name] = entries

    for name in by_runtime:
        for dep in catalog.recipes[name].depends:
            if dep not in by_runtime:
                raise ReleaseFileError(
                    where,
                    f"runtimes: {name} depends on {dep}, which the release does not build",
                    hint=f"add {catalog.recipes[dep].short} to [runtimes], so that the "
                    "release directory is self-contained",
                )
    order = [r.name for r in catalog.in_dependency_order(sorted(by_runtime))]
    ordered = tuple(e for name in order for e in by_runtime[name])

    yanked_raw = doc.get("yanked", [])
    if not isinstance(yanked_raw, list):
        raise ReleaseFileError(where, "yanked: expected an array of tables ([[yanked]])")
    yanked = []
    for i, item in enumerate(yanked_raw):
        what = f"yanked[{i}]"
        if not isinstance(item, dict):
            raise ReleaseFileError(where, f"{what}: expected a table")
        _keys(where, item, {"name", "version", "reason"}, what)
        name = canonicalize_name(_str(where, item.get("name"), f"{what}.name"))
        version = _str(where, item.get("version"), f"{what}.version")
        reason = _str(where, item.get("reason"), f"{what}.reason")
        if not any(
            canonicalize_name(e.runtime) == name and e.version == version for e in ordered
        ) and name != canonicalize_name("pynativelib"):
            raise ReleaseFileError(
                where,
                f"{what}: the release builds no {name} {version}",
                hint="a yanked entry names a runtime and a version listed in [runtimes]",
            )
        yanked.append(Yanked(name, version, reason))
    return ReleaseFile(where, ordered, tuple(yanked))
