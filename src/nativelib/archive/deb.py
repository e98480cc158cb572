"""Debian packages: an ar archive holding control.tar.* and data.tar.*."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from nativelib.archive.members import FileArchive, Member, MemberKind, PackageInfo
from nativelib.archive.streams import (
    _CHUNK,
    _Corrupt,
    _decompressed,
    _open_file,
    _Span,
    reading_errors,
)
from nativelib.archive.tar import _metadata_members, _normalized, _read_small, _tar_members
from nativelib.errors import SourceError

# -- .deb -----------------------------------------------------------------------------

_AR_MAGIC = b"!<arch>\n"
_DEB_COMPRESSION = {
    "": "none",
    ".gz": "gzip",
    ".xz": "xz",
    ".lzma": "lzma",
    ".zst": "zstd",
    ".bz2": "bzip2",
}


@dataclass(frozen=True)
class _ArMember:
    name: str
    offset: int
    size: int


def _deb_parts(f: IO[bytes]) -> tuple[_ArMember, _ArMember]:
    """The control and data members of a deb, checked for the layout dpkg requires."""
    if f.read(len(_AR_MAGIC)) != _AR_MAGIC:
        raise _Corrupt("not a Debian package: no ar archive magic")
    end = os.fstat(f.fileno()).st_size
    pos = len(_AR_MAGIC)
    found: list[_ArMember] = []
    control: _ArMember | None = None
    data: _ArMember | None = None
    while pos < end:
        f.seek(pos)
        header = f.read(60)
        if len(header) < 60:
            raise _Corrupt(f"truncated: ar header at offset {pos}")
        if header[58:60] != b"`\n":
            raise _Corrupt(f"bad ar header at offset {pos}")
        name = header[:16].rstrip(b" ").decode("ascii", "replace")
        if name.endswith("/") and name not in ("/", "//"):
            name = name[:-1]
        size_text = header[48:58].strip()
        if not size_text.isdigit():
            raise _Corrupt(f"bad ar member size {size_text!r} at offset {pos}")
        member = _ArMember(name, pos + 60, int(size_text))
        if member.offset + member.size > end:
            raise _Corrupt(
                f"truncated: ar member {name!r} ({member.size} bytes) ends past the end of the file"
            )
        pos = member.offset + member.size + (member.size & 1)
        if not found:
            if name != "debian-binary":
                raise _Corrupt(f"the first ar member is {name!r}, not 'debian-binary'")
            f.seek(member.offset)
            if not f.read(min(member.size, 16)).startswith(b"2."):
                raise _Corrupt("unsupported deb format version in 'debian-binary'")
        elif name.startswith("_"):
            pass  # dpkg ignores members named _*
        elif name.startswith("control.tar") and name[11:] in _DEB_COMPRESSION:
            if control is not None or data is not None:
                raise _Corrupt(f"unexpected ar member {name!r}")
            control = member
        elif name.startswith("data.tar") and name[8:] in _DEB_COMPRESSION:
            if control is None or data is not None:
                raise _Corrupt(f"unexpected ar member {name!r}")
            data = member
        else:
            raise _Corrupt(f"unexpected ar member {name!r}")
        found.append(member)
    if control is None or data is None:
        missing = "control.tar" if control is None else "data.tar"
        raise _Corrupt(f"no {missing} member")
    return control, data


def _ar_tar(
    f: IO[bytes], member: _ArMember, archive: str
) -> Iterator[tuple[Member, IO[bytes] | None]]:
    f.seek(member.offset)
    span = io.BufferedReader(_Span(f, member.size, f"ar member {member.name!r}"), _CHUNK)
    ext = member.name[member.name.index(".tar") + 4 :]
    return _tar_members(_decompressed(span, _DEB_COMPRESSION[ext]), archive, member.name)


class ControlSyntaxError(ValueError):
    """A line that breaks deb822 syntax; ``stanza`` counts from 1."""

    def __init__(self, stanza: int, reason: str) -> None:
        super().__init__(f"stanza {stanza}: {reason}")
        self.stanza = stanza
        self.reason = reason


def parse_control(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    """The stanzas of a deb822 text, numbered from 1: a package's ``control`` file, a
    suite's ``Packages`` index. Stanzas are separated by blank (or white-space) lines; a
    continuation line (starting with a space or tab) extends the field above it, its
    first character dropped. Raises :class:`ControlSyntaxError` for a line with no
    ``Field:`` or a continuation line before any field."""
    fields: dict[str, str] = {}
    current: str | None = None
    number = 1
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield number, fields
                fields = {}
                number += 1
            current = None
            continue
        if line[0] in " \t":
            if current is None:
                raise ControlSyntaxError(number, "a continuation line before any field")
            fields[current] += "\n" + line[1:]
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            raise ControlSyntaxError(number, f"malformed line {line!r}")
        current = key.strip()
        fields[current] = value.strip()
    if fields:
        yield number, fields


def _parse_control(text: str) -> dict[str, str]:
    """The first stanza of a package's ``control`` file."""
    try:
        for _, fields in parse_control(text):
            return fields
    except ControlSyntaxError as e:
        raise _Corrupt(f"bad line in control file: {e.reason}") from None
    return {}


class DebArchive(FileArchive):
    """A Debian binary package; the payload is ``data.tar.*``."""

    def info(self) -> PackageInfo:
        with reading_errors(self._path):
            with _open_file(self._path) as f:
                control, _ = _deb_parts(f)
                text: bytes | None = None
                items = _ar_tar(f, control, self._path)
                for member, stream in _metadata_members(items, control.name):
                    if member.kind is MemberKind.FILE and _normalized(member.name) == "control":
                        text = _read_small(stream, member, 1 << 20)
                        break
            if text is None:
                raise _Corrupt(f"no 'control' file in {control.name}")
            fields = _parse_control(text.decode("utf-8"))
        for required in ("Package", "Version", "Architecture"):
            if not fields.get(required):
                raise SourceError(self._path, f"control file has no {required!r} field")
        extra = {k: v for k, v in fields.items() if k not in ("Package", "Version", "Architecture")}
        return PackageInfo(
            "deb", fields["Package"], fields["Version"], None, fields["Architecture"], extra
        )

    def members(self) -> Iterator[tuple[Member, IO[bytes] | None]]:
        with reading_errors(self._path), _open_file(self._path) as f:
            _, data = _deb_parts(f)
            yield from _ar_tar(f, data, self._path)
