"""Debian packages: by name from a suite's ``Packages.xz``, or by URL; read as ``.deb``.

``dists/<suite>/main/binary-<arch>/Packages.xz`` holds stanzas with Package, Version,
Architecture, Filename, SHA256 and Size; the newest version (dpkg's ordering) of the
named package for the architecture wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nativelib.errors import SourceError
from nativelib.sources.base import Getter, ResolvedPackage, SourceKind, filename_from_url

if TYPE_CHECKING:
    from nativelib.archive.members import Archive
    from nativelib.catalog import PackageRef, Source

__all__ = ["DebKind", "DebianEntry", "parse_debian_packages", "pick_debian"]

_ARCHES = {"x86_64": "amd64", "aarch64": "arm64"}


@dataclass(frozen=True)
class DebianEntry:
    package: str
    version: str
    architecture: str
    filename: str
    sha256: str
    size: int | None


def parse_debian_packages(text: str, where: str) -> list[DebianEntry]:
    """The stanzas of a Debian ``Packages`` index (RFC 822 style, blank-line separated)."""
    from nativelib.archive.deb import ControlSyntaxError, parse_control  # noqa: PLC0415
    from nativelib.prefix import is_sha256  # noqa: PLC0415

    entries: list[DebianEntry] = []
    try:
        for number, fields in parse_control(text):
            missing = [k for k in ("Package", "Version", "Filename", "SHA256") if k not in fields]
            if missing:
                raise SourceError(
                    where,
                    f"stanza {number} ({fields.get('Package', '?')}): missing {', '.join(missing)}",
                )
            sha = fields["SHA256"].lower()
            if not is_sha256(sha):
                raise SourceError(
                    where, f"stanza {number} ({fields['Package']}): bad SHA256 {sha!r}"
                )
            size = fields.get("Size")
            entries.append(
                DebianEntry(
                    package=fields["Package"],
                    version=fields["Version"],
                    architecture=fields.get("Architecture", ""),
                    filename=fields["Filename"],
                    sha256=sha,
                    size=int(size) if size and size.isdigit() else None,
                )
            )
    except ControlSyntaxError as e:
        raise SourceError(where, f"stanza {e.stanza}: {e.reason}") from e
    return entries


def _debian_version_key(version: str) -> tuple[Any, ...]:
    """A sort key following dpkg's version ordering (epoch, upstream, revision)."""

    def part(text: str) -> tuple[Any, ...]:
        out: list[Any] = []
        for non_digit, digit in re.findall(r"(\D*)(\d*)", text):
            # '~' sorts before everything, even the end of the string; letters before others.
            chars = [(0 if c == "~" else 2 if c.isalpha() else 3, c) for c in non_digit]
            out.append((*chars, (1, "")))
            out.append(int(digit) if digit else 0)
        return tuple(out)

    epoch, _, rest = version.rpartition(":") if ":" in version else ("0", "", version)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")
    return (int(epoch or 0), part(upstream), part(revision))


def pick_debian(
    entries: Iterable[DebianEntry], ref: PackageRef, arch: str, mirror: str, where: str
) -> ResolvedPackage:
    """The entry for ``ref`` (its version, or the newest), as a file to download."""
    matches = [
        e
        for e in entries
        if e.package == ref.name
        and e.architecture in (arch, "all")
        and (ref.version is None or e.version == ref.version)
    ]
    if not matches:
        wanted = ref.describe()
        raise SourceError(where, f"no package {wanted!r} for {arch} in the index")
    best = max(matches, key=lambda e: _debian_version_key(e.version))
    url = f"{mirror.rstrip('/')}/{best.filename}"
    return ResolvedPackage(
        "deb", best.package, best.version, url, best.sha256, filename_from_url(url), best.size
    )


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
