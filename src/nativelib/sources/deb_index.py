"""A Debian suite's ``Packages`` index: its stanzas, and the newest entry for a package
(dpkg's version ordering). Imported by :class:`~nativelib.sources.deb.DebKind` when it
resolves, not when the catalog loads."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nativelib.errors import SourceError
from nativelib.sources.base import ResolvedPackage, filename_from_url

if TYPE_CHECKING:
    from nativelib.catalog import PackageRef

__all__ = ["DebianEntry", "parse_debian_packages", "pick_debian"]


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
    from nativelib.digest import is_sha256  # noqa: PLC0415

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
