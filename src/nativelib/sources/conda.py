"""conda packages: by name from a channel's ``repodata.json``, or by URL; read as
``.conda`` (a zip of zstd tars) or ``.tar.bz2``.

Both ``packages`` (.tar.bz2) and ``packages.conda`` are read; the highest build number
wins, and ``.conda`` before ``.tar.bz2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from nativelib.sources.base import Getter, ResolvedPackage, SourceKind

if TYPE_CHECKING:
    from nativelib.archive.members import Archive
    from nativelib.catalog import PackageRef, Source

__all__ = ["CondaKind"]


class CondaKind(SourceKind):
    name = "conda"
    suffixes = (".conda", ".tar.bz2")
    #: ``tar.bz2`` asks for the ``.tar.bz2`` reader whatever the file is called.
    aliases = ("tar.bz2",)

    def check_package(self, name: str, version: str | None) -> str | None:
        return None if version is not None else f"conda package {name!r} needs a 'version'"

    def resolve(
        self, source: Source, named: Sequence[PackageRef], get: Getter, arch: str
    ) -> list[ResolvedPackage]:
        from nativelib.sources.conda_index import parse_repodata, pick_conda  # noqa: PLC0415

        url = f"{source.channel}/{source.subdir}/repodata.json"
        body, _ = get(url)
        records = parse_repodata(body, url)
        return [pick_conda(records, ref, source.channel, source.subdir, url) for ref in named]

    def open(self, path: str, spelled: str) -> Archive:
        from nativelib.archive.conda import CondaArchive, CondaTarBz2Archive  # noqa: PLC0415

        if spelled == "tar.bz2" or path.lower().endswith(".tar.bz2"):
            return CondaTarBz2Archive(path)
        return CondaArchive(path)
