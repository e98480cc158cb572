"""RPM packages: the lead, the signature and main headers, the cpio newc payload."""

from __future__ import annotations

import io
import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from nativelib.archive.members import _MAX_PATH, FileArchive, Member, MemberKind, PackageInfo
from nativelib.archive.streams import (
    _CHUNK,
    _MAX_LINK_DATA,
    _Corrupt,
    _decompressed,
    _drain_zeros,
    _MemberData,
    _open_file,
    _read_exact,
    _skip,
    _Source,
    reading_errors,
)

# -- .rpm -----------------------------------------------------------------------------

_RPM_LEAD_MAGIC = b"\xed\xab\xee\xdb"
_RPM_HEADER_MAGIC = b"\x8e\xad\xe8\x01"
_RPM_LEAD_SIZE = 96
_RPM_MAX_TAGS = 0xFFFF
_RPM_MAX_DATA = 256 << 20
_RPM_STRING_TYPES = (6, 8, 9)  # STRING, STRING_ARRAY, I18NSTRING
_RPM_INT32 = 4
TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH = 1000, 1001, 1002, 1003
TAG_LICENSE, TAG_ARCH, TAG_SOURCERPM = 1014, 1022, 1044
TAG_PAYLOADFORMAT, TAG_PAYLOADCOMPRESSOR = 1124, 1125
_RPM_COMPRESSORS = {
    "gzip": "gzip",
    "xz": "xz",
    "lzma": "lzma",
    "zstd": "zstd",
    "bzip2": "bzip2",
    "none": "none",
}


@dataclass(frozen=True)
class _RpmHeader:
    entries: dict[int, tuple[int, int, int]]  # tag -> (type, offset, count)
    store: bytes

    def string(self, tag: int) -> str | None:
        entry = self.entries.get(tag)
        if entry is None:
            return None
        typ, offset, count = entry
        if typ not in _RPM_STRING_TYPES or count < 1:
            raise _Corrupt(f"RPM header tag {tag} is not a string (type {typ})")
        end = self.store.find(b"\0", offset)
        if not 0 <= offset < len(self.store) or end < 0:
            raise _Corrupt(f"RPM header tag {tag}: string at offset {offset} is out of bounds")
        return self.store[offset:end].decode("utf-8", "replace")

    def int32(self, tag: int) -> int | None:
        entry = self.entries.get(tag)
        if entry is None:
            return None
        typ, offset, count = entry
        if typ != _RPM_INT32 or count < 1 or not 0 <= offset <= len(self.store) - 4:
            raise _Corrupt(f"RPM header tag {tag} is not a valid INT32")
        value: int = struct.unpack_from(">I", self.store, offset)[0]
        return value


def _rpm_header(f: IO[bytes], what: str, end: int, *, pad: bool) -> _RpmHeader:
    intro = _read_exact(f, 16, what)
    if intro[:4] != _RPM_HEADER_MAGIC:
        raise _Corrupt(f"bad {what} magic")
    count, size = struct.unpack(">II", intro[8:16])
    if count > _RPM_MAX_TAGS or size > _RPM_MAX_DATA:
        raise _Corrupt(f"{what} too large ({count} tags, {size} bytes)")
    if f.tell() + 16 * count + size > end:
        raise _Corrupt(f"truncated: {what} ends past the end of the file")
    index = _read_exact(f, 16 * count, what)
    store = _read_exact(f, size, what)
    if pad:
        _skip(f, (-size) % 8, what)
    entries: dict[int, tuple[int, int, int]] = {}
    for tag, typ, offset, n in struct.iter_unpack(">iIiI", index):
        entries[tag] = (typ, offset, n)
    return _RpmHeader(entries, store)


def _rpm_open(f: IO[bytes]) -> tuple[_RpmHeader, str]:
    """Read the lead and both headers; leave ``f`` at the payload; return the compressor."""
    end = os.fstat(f.fileno()).st_size
    lead = _read_exact(f, _RPM_LEAD_SIZE, "RPM lead")
    if lead[:4] != _RPM_LEAD_MAGIC:
        raise _Corrupt("not an RPM package: bad lead magic")
    _rpm_header(f, "RPM signature header", end, pad=True)
    header = _rpm_header(f, "RPM header", end, pad=False)
    payload_format = header.string(TAG_PAYLOADFORMAT) or "cpio"
    if payload_format != "cpio":
        raise _Corrupt(f"unsupported RPM payload format {payload_format!r}")
    compressor = header.string(TAG_PAYLOADCOMPRESSOR) or "gzip"
    if compressor not in _RPM_COMPRESSORS:
        raise _Corrupt(f"unsupported RPM payload compressor {compressor!r}")
    return header, _RPM_COMPRESSORS[compressor]


_CPIO_KINDS = {
    stat.S_IFREG: MemberKind.FILE,
    stat.S_IFDIR: MemberKind.DIR,
    stat.S_IFLNK: MemberKind.SYMLINK,
    stat.S_IFCHR: MemberKind.CHARDEV,
    stat.S_IFBLK: MemberKind.BLOCKDEV,
    stat.S_IFIFO: MemberKind.FIFO,
    stat.S_IFSOCK: MemberKind.SOCKET,
}


#: The most hard-linked entries held back at once, waiting for the entry with their data
#: (rpmbuild writes the names of one inode next to each other: a handful at a time).
_MAX_WAITING_LINKS = 10_000
#: How many waiting names an error lists before "and N more".
_NAMES_SHOWN = 5


def _some_names(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_NAMES_SHOWN])
    more = len(names) - _NAMES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def _cpio_members(src: _Source, archive: str) -> Iterator[tuple[Member, IO[bytes] | None]]:
    """The members of a cpio "newc" stream (070701, or 070702 with checksums).

    Hard links: newc gives every name of a hard-linked inode its own entry and puts the
    data in the last one. That entry is yielded as the file, then the others as hard
    links to it (entries after it, if any, as hard links too). At most
    ``_MAX_WAITING_LINKS`` entries wait for their data at once; each is a member
    (counted against ``max_members``) once yielded.
    """
    waiting: dict[tuple[int, int, int], list[Member]] = {}
    n_waiting = 0
    carriers: dict[tuple[int, int, int], str] = {}
    index = 0
    while True:
        where = f"cpio entry {index}"
        header = _read_exact(src, 110, f"{where} header")
        magic = header[:6]
        if magic == b"07070X":
            raise _Corrupt("unsupported RPM payload: large-file cpio ('07070X')")
        if magic not in (b"070701", b"070702"):
            raise _Corrupt(f"bad cpio magic {magic!r} at {where}")
        try:
            values = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        except ValueError:
            raise _Corrupt(f"bad cpio header at {where}") from None
        ino, mode, _uid, _gid, nlink, _mtime, size, dev_major, dev_minor = values[:9]
        name_size = values[11]
        if not 1 <= name_size <= _MAX_PATH + 2:
            raise _Corrupt(f"bad cpio name size {name_size} at {where}")
        raw_name = _read_exact(src, name_size, f"{where} name")
        if raw_name[-1] != 0:
            raise _Corrupt(f"cpio name not NUL-terminated at {where}")
        name = raw_name[:-1].decode("utf-8", "surrogateescape")
        _skip(src, (-(110 + name_size)) % 4, f"{where} name")
        if name == "TRAILER!!!":
            break
        index += 1
        pad = (-size) % 4
        kind = _CPIO_KINDS.get(stat.S_IFMT(mode), MemberKind.UNKNOWN)
        perm = mode & 0o7777
        if kind is MemberKind.SYMLINK:
            if not 0 < size <= _MAX_LINK_DATA:
                raise _Corrupt(f"cpio symlink {name!r} has a target of {size} bytes")
            target = _read_exact(src, size, f"symlink {name!r}")
            _skip(src, pad, f"symlink {name!r}")
            yield Member(name, kind, perm, 0, target.decode("utf-8", "surrogateescape")), None
            continue
        if kind is not MemberKind.FILE:
            if size and kind is not MemberKind.UNKNOWN:
                raise _Corrupt(f"the {kind.value} {name!r} claims {size} bytes of data")
            yield Member(name, kind, perm), None
            _skip(src, size + pad, f"member {name!r}")
            continue
        key = (dev_major, dev_minor, ino)
        if nlink > 1:
            if key in carriers:
                if size:
                    raise _Corrupt(f"hard link {name!r} repeats the data of {carriers[key]!r}")
                _skip(src, pad, f"member {name!r}")
                yield Member(name, MemberKind.HARDLINK, perm, 0, carriers[key]), None
                continue
            others = waiting.setdefault(key, [])
            if size == 0 and len(others) + 1 < nlink:
                n_waiting += 1
                if n_waiting > _MAX_WAITING_LINKS:
                    raise _Corrupt(
                        f"more than {_MAX_WAITING_LINKS} hard-linked cpio entries wait for"
                        f" the entry holding their data (at {name!r})"
                    )
                others.append(Member(name, MemberKind.HARDLINK, perm))
                _skip(src, pad, f"member {name!r}")
                continue
            carriers[key] = name
        data = _MemberData(src, size, archive, name)
        yield Member(name, kind, perm, size), io.BufferedReader(data, _CHUNK)
        data.finish()
        _skip(src, pad, f"member {name!r}")
        links = waiting.pop(key, [])
        n_waiting -= len(links)
        for link in links:
            yield Member(link.name, link.kind, link.mode, 0, name), None
    if waiting:
        names = sorted(m.name for group in waiting.values() for m in group)
        raise _Corrupt(
            f"hard-linked cpio entries {_some_names(names)} have no entry holding their data"
        )
    _drain_zeros(src, "cpio archive")


class RpmArchive(FileArchive):
    """An RPM package; the payload is the (compressed) cpio archive."""

    def info(self) -> PackageInfo:
        with reading_errors(self._path):
            with _open_file(self._path) as f:
                header, compressor = _rpm_open(f)
            name = header.string(TAG_NAME)
            version = header.string(TAG_VERSION)
            if not name or not version:
                raise _Corrupt("RPM header has no NAME or VERSION")
            extra = {"payload_compressor": compressor}
            for key, tag in (("release", TAG_RELEASE), ("sourcerpm", TAG_SOURCERPM)):
                value = header.string(tag)
                if value is not None:
                    extra[key] = value
            epoch = header.int32(TAG_EPOCH)
            if epoch is not None:
                extra["epoch"] = str(epoch)
            return PackageInfo(
                "rpm", name, version, header.string(TAG_LICENSE), header.string(TAG_ARCH), extra
            )

    def members(self) -> Iterator[tuple[Member, IO[bytes] | None]]:
        with reading_errors(self._path), _open_file(self._path) as f:
            _, compressor = _rpm_open(f)
            yield from _cpio_members(_decompressed(f, compressor), self._path)
