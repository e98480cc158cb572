"""Debian packages: by name from a suite's ``Packages.xz``, or by URL; read as ``.deb``.

``dists/<suite>/main/binary-<arch>/Packages.xz`` holds stanzas with Package, Version,
Architecture, Filename, SHA256 and Size; the newest version (dpkg's ordering) of the
named package for the architecture wins.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from nativelib.errors import SourceError
from nativelib.sources.base import Getter, ResolvedPackage, SourceKind

if TYPE_CHECKING:
    from nativelib.archive.members import Archive
    from nativelib.catalog import PackageRef, Source

__all__ = ["DebKind"]

_ARCHES = {"x86_64": "amd64", "aarch64": "arm64"}


class DebKind(SourceKind):
    name = "deb"
    suffixes = (".deb", ".udeb")

    def check_package(self, name: str, version: str | None) -> str | None:
        return None

    def check_source(self, source: Source) -> str | None:
        if source.suite is None and any(p.url is None for p in source.packages):
            return "a deb source that names packages needs a 'suite'"
        return None

    def resolve(
        self, source: Source, named: Sequence[PackageRef], get: Getter, arch: str
    ) -> list[ResolvedPackage]:
        import lzma  # noqa: PLC0415

        deb_arch = _ARCHES.get(arch, arch)
        url = f"{source.mirror}/dists/{source.suite}/main/binary-{deb_arch}/Packages.xz"
        body, _ = get(url)
        try:
            text = lzma.decompress(body).decode("utf-8", "replace")
        except lzma.LZMAError as e:
            raise SourceError(url, f"cannot decompress the Packages index: {e}") from e
        from nativelib.sources.deb_index import parse_debian_packages, pick_debian  # noqa: PLC0415

        entries = parse_debian_packages(text, url)
        return [pick_debian(entries, ref, deb_arch, source.mirror, url) for ref in named]

    def upstream_version(self, version: str) -> str:
        """``1:12.2.0-14+deb12u1`` -> ``12.2.0``: epoch, revision and ``+``/``~`` suffixes
        dropped."""
        text = version.split(":", 1)[-1]
        text = text.rsplit("-", 1)[0] if "-" in text else text
        return re.split(r"[+~]", text, maxsplit=1)[0]

    def open(self, path: str, spelled: str) -> Archive:
        from nativelib.archive.deb import DebArchive  # noqa: PLC0415

        return DebArchive(path)
