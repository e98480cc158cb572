"""Source kinds: one class per kind of upstream package, registered in one table.

:mod:`nativelib.sources.base` is the seam (:class:`SourceKind`, :func:`register`); the
built-in kinds are ``conda``, ``rpm``, ``deb`` and ``wheel``. :func:`resolve` turns a
recipe source into the files to download; :func:`upstream_version` turns a package's
version into the runtime wheel's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nativelib.errors import SourceError
from nativelib.sources.base import (
    Getter,
    ResolvedPackage,
    SourceKind,
    filename_from_url,
    get_kind,
    kind_for_filename,
    kind_names,
    register,
    unregister,
)
from nativelib.sources.conda import CondaKind
from nativelib.sources.deb import DebKind
from nativelib.sources.rpm import RpmKind
from nativelib.sources.wheel import WheelKind

if TYPE_CHECKING:
    from nativelib.catalog import Source

__all__ = [
    "Getter",
    "ResolvedPackage",
    "SourceKind",
    "get_kind",
    "kind_for_filename",
    "kind_names",
    "register",
    "resolve",
    "unregister",
    "upstream_version",
]

for _builtin in (CondaKind(), RpmKind(), DebKind(), WheelKind()):
    register(_builtin)


def _kind(name: str, where: str) -> SourceKind:
    kind = get_kind(name)
    if kind is None:
        raise SourceError(where, f"unknown source kind {name!r} (known: {', '.join(kind_names())})")
    return kind


def resolve(source: Source, get: Getter, *, arch: str = "x86_64") -> list[ResolvedPackage]:
    """Every upstream file of ``source``, with its URL and sha256: packages given by URL
    as they are, packages named in an index through the source's kind."""
    kind = _kind(source.kind, source.name)
    out: list[ResolvedPackage] = []
    for ref in source.packages:
        if ref.url is None:
            continue
        assert ref.sha256 is not None
        filename = filename_from_url(ref.url)
        out.append(
            ResolvedPackage(
                source.kind, ref.name or filename, ref.version or "", ref.url, ref.sha256, filename
            )
        )
    named = [p for p in source.packages if p.url is None]
    if named:
        out.extend(kind.resolve(source, named, get, arch))
    return out


def upstream_version(kind: str, version: str) -> str:
    """The upstream version of a package version, as a PEP 440 version.

    Each kind says what its upstream part is: Debian ``1:12.2.0-14+deb12u1`` ->
    ``12.2.0`` (epoch and revision dropped); RPM version fields are upstream already;
    conda and wheels are taken as they are.
    """
    from packaging.version import InvalidVersion, Version  # noqa: PLC0415

    known = get_kind(kind)
    text = known.upstream_version(version) if known is not None else version
    try:
        return str(Version(text))
    except InvalidVersion as e:
        raise SourceError(version, f"upstream version {text!r} is not a PEP 440 version") from e
