"""The seam for a source kind: one class per kind, registered in one table.

A :class:`SourceKind` owns everything that differs between kinds of upstream package:

- its recipe rules (:meth:`~SourceKind.check_package`, :meth:`~SourceKind.check_source`),
  which the catalog applies when it loads;
- its index resolution (:meth:`~SourceKind.resolve`): from packages named in a recipe
  to files with a URL and a sha256 (a Debian suite's ``Packages``, conda's
  ``repodata.json``, a simple index);
- its archive reader: the file-name :attr:`~SourceKind.suffixes` it recognises and
  :meth:`~SourceKind.open`, which :func:`nativelib.archive.open_archive` calls.

This module is imported by the catalog, and so by the doctor and the resolver in a base
install: it and the kind modules import only the standard library at import time;
archive readers, ``packaging`` and the network are imported inside the methods.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlsplit

from nativelib.errors import SourceError

if TYPE_CHECKING:
    from nativelib.archive.members import Archive
    from nativelib.catalog import PackageRef, Source

__all__ = [
    "Getter",
    "ResolvedPackage",
    "SourceKind",
    "filename_from_url",
    "get_kind",
    "kind_for_filename",
    "kind_names",
    "register",
    "unregister",
]

Getter = Callable[[str], tuple[bytes, str]]
"""``get(url) -> (body, content type)``: fetches an index document (no sha256 pin)."""


@dataclass(frozen=True)
class ResolvedPackage:
    """One upstream file to download: where it is, its sha256, what it is."""

    kind: str
    name: str
    version: str
    url: str
    sha256: str
    filename: str
    size: int | None = None


def filename_from_url(url: str) -> str:
    """The last component of a URL's path; a URL that ends in ``/`` is a SourceError."""
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    if not name:
        raise SourceError(url, "the URL does not end in a file name")
    return name


class SourceKind:
    """One kind of upstream package. Subclass it, set :attr:`name`, and :func:`register`
    an instance; the defaults describe a kind whose packages are given by URL only."""

    #: The kind as recipes (``kind = "deb"``) and ``--from KIND:...`` spell it.
    name: ClassVar[str]
    #: File-name suffixes of its packages, lower case (``.deb``): how a file is recognised.
    suffixes: ClassVar[tuple[str, ...]] = ()
    #: Other names :func:`nativelib.archive.open_archive` accepts for it (``whl``).
    aliases: ClassVar[tuple[str, ...]] = ()

    def check_package(self, name: str, version: str | None) -> str | None:
        """Why a package named in a recipe (not given by URL) cannot be resolved, or None."""
        return f"{self.name} package {name!r} needs a 'url' and a 'sha256'"

    def check_source(self, source: Source) -> str | None:
        """Why a whole recipe source of this kind is unusable, or None."""
        return None

    def resolve(
        self, source: Source, named: Sequence[PackageRef], get: Getter, arch: str
    ) -> list[ResolvedPackage]:
        """The files of the packages of ``source`` named in an index (not by URL)."""
        raise SourceError(source.name, f"cannot resolve {self.name} packages by name")

    def upstream_version(self, version: str) -> str:
        """The upstream part of a package version (before PEP 440 normalisation)."""
        return version

    def open(self, path: str, spelled: str) -> Archive:
        """The package at ``path`` (a regular file) as an archive; ``spelled`` is the
        name or alias it was asked for by, or the kind's name when found by suffix."""
        raise SourceError(path, f"{self.name} packages cannot be read")


_KINDS: dict[str, SourceKind] = {}


def register(kind: SourceKind) -> SourceKind:
    """Add ``kind`` to the table (its name and aliases must be new); returns it."""
    for spelled in (kind.name, *kind.aliases):
        if _lookup(spelled) is not None:
            raise ValueError(f"source kind {spelled!r} is already registered")
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a kind registered under ``name`` (tests add and remove toy kinds)."""
    del _KINDS[name]


def _lookup(spelled: str) -> SourceKind | None:
    kind = _KINDS.get(spelled)
    if kind is None:
        kind = next((k for k in _KINDS.values() if spelled in k.aliases), None)
    return kind


def all_names() -> tuple[str, ...]:
    """Every name and alias the table knows, sorted."""
    return tuple(sorted(s for k in _KINDS.values() for s in (k.name, *k.aliases)))


def kind_names() -> tuple[str, ...]:
    """The registered kinds, in registration order."""
    return tuple(_KINDS)


def get_kind(spelled: str, *, aliases: bool = False) -> SourceKind | None:
    """The kind named ``spelled`` (also by an alias if ``aliases``), or None."""
    return _lookup(spelled) if aliases else _KINDS.get(spelled)


def all_suffixes() -> tuple[str, ...]:
    """Every registered suffix, in registration order."""
    return tuple(s for k in _KINDS.values() for s in k.suffixes)


def kind_for_filename(filename: str) -> SourceKind | None:
    """The kind whose suffix ends ``filename`` (case-insensitive; the longest wins)."""
    lower = filename.lower()
    best: tuple[int, SourceKind] | None = None
    for kind in _KINDS.values():
        for suffix in kind.suffixes:
            if lower.endswith(suffix) and (best is None or len(suffix) > best[0]):
                best = (len(suffix), kind)
    return best[1] if best else None
