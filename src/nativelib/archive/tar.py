"""Our own tar reader (bounded extended headers; a damaged header is an error, not an end)."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from typing import IO

from nativelib.archive.members import Member, MemberKind, _name_parts
from nativelib.archive.streams import (
    _CHUNK,
    _Corrupt,
    _drain_zeros,
    _MemberData,
    _read_exact,
    _skip,
    _Source,
)

# -- tar ------------------------------------------------------------------------------

_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)
_MAX_TAR_META = 1 << 20  # one pax header or GNU long name
#: The extended headers before one member together, and the global (``g``) pax headers of
#: the whole archive together; each header also counts its header block.
_MAX_TAR_META_TOTAL = 1 << 20
_TAR_KINDS = {
    b"0": MemberKind.FILE,
    b"\0": MemberKind.FILE,
    b"7": MemberKind.FILE,
    b"1": MemberKind.HARDLINK,
    b"2": MemberKind.SYMLINK,
    b"3": MemberKind.CHARDEV,
    b"4": MemberKind.BLOCKDEV,
    b"5": MemberKind.DIR,
    b"6": MemberKind.FIFO,
}


def _tar_number(raw: bytes, field: str, where: str) -> int:
    if raw and raw[0] & 0x80:  # GNU base-256
        if raw[0] == 0xFF:
            raise _Corrupt(f"negative {field} in the tar header at {where}")
        value = raw[0] & 0x7F
        for byte in raw[1:]:
            value = value << 8 | byte
        return value
    text = raw.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise _Corrupt(f"bad {field} field {raw!r} in the tar header at {where}") from None


def _tar_text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax_records(data: bytes, where: str) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space]) if space > pos else 0
        except ValueError:
            length = 0
        end = pos + length
        if length <= space - pos or end > len(data) or data[end - 1] != 0x0A:
            raise _Corrupt(f"bad pax record at {where}")
        key, eq, value = data[space + 1 : end - 1].partition(b"=")
        if not eq or not key:
            raise _Corrupt(f"bad pax record at {where}")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos = end
    return records


def _tar_members(
    src: _Source, archive: str, what: str
) -> Iterator[tuple[Member, IO[bytes] | None]]:
    """The members of a tar stream (ustar, GNU and pax), strictly.

    A bad header checksum anywhere, a stream that ends without the end-of-archive
    blocks, or non-zero data after them is an error (tarfile would end the archive
    there silently). Extended headers are bounded by ``_MAX_TAR_META`` each, and by
    ``_MAX_TAR_META_TOTAL`` for those before one member and for the global ones of the
    whole archive; a member costs only what its own headers hold.
    """
    global_pax: dict[str, str] = {}
    global_sparse = False
    global_kept = 0
    pax: dict[str, str] = {}
    pending = 0
    long_name: str | None = None
    long_link: str | None = None
    offset = 0
    while True:
        where = f"{what} offset {offset}"
        block = _read_exact(src, _BLOCK, f"tar header at {where}")
        offset += _BLOCK
        if block == _ZERO_BLOCK:
            if pax or long_name is not None or long_link is not None:
                raise _Corrupt(f"extended header not followed by a member at {where}")
            _drain_zeros(src, what)
            return
        stored = _tar_number(block[148:156], "checksum", where)
        unsigned = sum(block[:148]) + 8 * 0x20 + sum(block[156:])
        if stored != unsigned:
            signed = sum(struct.unpack("148b", block[:148])) + 8 * 0x20
            signed += sum(struct.unpack("356b", block[156:]))
            if stored != signed:
                raise _Corrupt(f"bad tar header checksum at {where}")
        typeflag = block[156:157]
        size = _tar_number(block[124:136], "size", where)
        padded = size + (-size) % _BLOCK
        if typeflag in (b"x", b"g", b"L", b"K"):
            if size > _MAX_TAR_META:
                raise _Corrupt(f"extended header of {size} bytes at {where}")
            if typeflag == b"g":
                global_kept += _BLOCK + size
                if global_kept > _MAX_TAR_META_TOTAL:
                    raise _Corrupt(
                        f"global pax headers of more than {_MAX_TAR_META_TOTAL} bytes"
                        f" in all at {where}"
                    )
            else:
                pending += _BLOCK + size
                if pending > _MAX_TAR_META_TOTAL:
                    raise _Corrupt(
                        f"extended headers of more than {_MAX_TAR_META_TOTAL} bytes"
                        f" before one member at {where}"
                    )
            data = _read_exact(src, size, f"extended header at {where}")
            _skip(src, padded - size, f"extended header at {where}")
            offset += padded
            if typeflag == b"x":
                pax.update(_pax_records(data, where))
            elif typeflag == b"g":
                records = _pax_records(data, where)
                global_pax.update(records)
                global_sparse = global_sparse or any(
                    key.startswith("GNU.sparse.") for key in records
                )
            elif typeflag == b"L":
                long_name = _tar_text(data)
            else:
                long_link = _tar_text(data)
            continue
        magic = block[257:263]
        name = _tar_text(block[0:100])
        if magic == b"ustar\0":
            prefix = _tar_text(block[345:500])
            if prefix:
                name = f"{prefix}/{name}"
        linkname = _tar_text(block[157:257])
        if long_name is not None:
            name = long_name
        if long_link is not None:
            linkname = long_link
        # The member's own pax records over the global ones, looked up key by key: the
        # global ones are never copied per member.
        name = pax.get("path", global_pax.get("path", name))
        linkname = pax.get("linkpath", global_pax.get("linkpath", linkname))
        text = pax.get("size", global_pax.get("size"))
        if text is not None:
            if not text.isdigit():
                raise _Corrupt(f"bad pax size {text!r} at {where}")
            size = int(text)
            padded = size + (-size) % _BLOCK
        sparse = global_sparse or any(key.startswith("GNU.sparse.") for key in pax)
        pax = {}
        pending = 0
        long_name = long_link = None
        mode = _tar_number(block[100:108], "mode", where) & 0o7777
        kind = _TAR_KINDS.get(typeflag, MemberKind.UNKNOWN)
        if typeflag == b"\0" and name.endswith("/"):
            kind = MemberKind.DIR
        if sparse:
            kind = MemberKind.UNKNOWN
        has_data = kind is MemberKind.FILE or kind is MemberKind.UNKNOWN
        if not has_data and size:
            raise _Corrupt(f"the {kind.value} {name!r} claims {size} bytes of data at {where}")
        if kind is MemberKind.FILE:
            data_stream = _MemberData(src, size, archive, name)
            yield Member(name, kind, mode, size), io.BufferedReader(data_stream, _CHUNK)
            data_stream.finish()
        else:
            link = linkname if kind in (MemberKind.SYMLINK, MemberKind.HARDLINK) else None
            yield Member(name, kind, mode, 0, link), None
            if has_data:
                _skip(src, size, f"member {name!r}")
        if has_data:
            _skip(src, padded - size, f"member {name!r}")
            offset += padded


def _normalized(name: str) -> str:
    return "/".join(_name_parts(name))


#: Bounds on reading a metadata tar (a deb's control.tar, a conda info/ tree) in info().
_MAX_META_MEMBERS = 10_000
_MAX_META_BYTES = 256 << 20


def _metadata_members(
    items: Iterator[tuple[Member, IO[bytes] | None]], what: str
) -> Iterator[tuple[Member, IO[bytes] | None]]:
    """``items``, stopped with an error past the metadata bounds (no bombs in info())."""
    size = 0
    for seen, (member, stream) in enumerate(items, start=1):
        size += member.size
        if seen > _MAX_META_MEMBERS:
            raise _Corrupt(f"{what} holds more than {_MAX_META_MEMBERS} members")
        if size > _MAX_META_BYTES:
            raise _Corrupt(f"{what} holds more than {_MAX_META_BYTES} bytes")
        yield member, stream


def _read_small(stream: IO[bytes] | None, member: Member, limit: int) -> bytes:
    if stream is None or member.size > limit:
        raise _Corrupt(f"{member.name!r} is {member.size} bytes, more than {limit}")
    return stream.read(limit + 1)
