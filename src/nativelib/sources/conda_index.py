"""A conda channel's ``repodata.json``: its records, and the best one for a package.
Imported by :class:`~nativelib.sources.conda.CondaKind` when it resolves, not when the
catalog loads."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nativelib.errors import SourceError
from nativelib.sources.base import ResolvedPackage

if TYPE_CHECKING:
    from nativelib.catalog import PackageRef

__all__ = ["CondaEntry", "parse_repodata", "pick_conda"]


@dataclass(frozen=True)
class CondaEntry:
    filename: str
    name: str
    version: str
    build: str
    build_number: int
    sha256: str
    size: int | None
    subdir: str


def parse_repodata(data: bytes, where: str) -> list[CondaEntry]:
    """Every package record of a conda ``repodata.json`` (``packages`` and ``packages.conda``)."""
    import json  # noqa: PLC0415

    from nativelib.digest import is_sha256  # noqa: PLC0415

    try:
        doc = json.loads(data)
    except ValueError as e:
        raise SourceError(where, f"invalid repodata.json: {e}") from e
    if not isinstance(doc, dict):
        raise SourceError(where, "invalid repodata.json: not an object")
    subdir = str(doc.get("info", {}).get("subdir", "")) if isinstance(doc.get("info"), dict) else ""
    entries: list[CondaEntry] = []
    for section in ("packages", "packages.conda"):
        records = doc.get(section, {})
        if not isinstance(records, dict):
            raise SourceError(where, f"invalid repodata.json: {section!r} is not an object")
        for filename, rec in records.items():
            if not isinstance(rec, dict):
                raise SourceError(where, f"{filename}: record is not an object")
            try:
                sha = str(rec["sha256"]).lower()
                entry = CondaEntry(
                    filename=filename,
                    name=str(rec["name"]),
                    version=str(rec["version"]),
                    build=str(rec.get("build", "")),
                    build_number=int(rec.get("build_number", 0)),
                    sha256=sha,
                    size=int(rec["size"]) if "size" in rec else None,
                    subdir=str(rec.get("subdir", subdir)),
                )
            except (KeyError, TypeError, ValueError) as e:
                raise SourceError(where, f"{filename}: record lacks or mangles {e}") from e
            if not is_sha256(sha):
                raise SourceError(where, f"{filename}: bad sha256 {sha!r}")
            entries.append(entry)
    return entries


def pick_conda(
    entries: Iterable[CondaEntry], ref: PackageRef, channel: str, subdir: str, where: str
) -> ResolvedPackage:
    """The record for ``ref``: its version and build pattern, the highest build number,
    ``.conda`` before ``.tar.bz2``."""
    matches = [
        e
        for e in entries
        if e.name == ref.name
        and (ref.version is None or e.version == ref.version)
        and (ref.build is None or fnmatch.fnmatchcase(e.build, ref.build))
    ]
    if not matches:
        raise SourceError(where, f"no conda package {ref.describe()!r} in {channel}/{subdir}")
    best = max(matches, key=lambda e: (e.build_number, e.filename.endswith(".conda"), e.build))
    url = f"{channel.rstrip('/')}/{subdir}/{best.filename}"
    return ResolvedPackage(
        "conda", best.name, best.version, url, best.sha256, best.filename, best.size
    )
