"""RPM packages: given by URL and sha256 only (no repository metadata is read)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nativelib.sources.base import SourceKind

if TYPE_CHECKING:
    from nativelib.archive.members import Archive

__all__ = ["RpmKind"]


class RpmKind(SourceKind):
    name = "rpm"
    suffixes = (".rpm",)

    def open(self, path: str, spelled: str) -> Archive:
        from nativelib.archive.rpm import RpmArchive  # noqa: PLC0415

        return RpmArchive(path)
