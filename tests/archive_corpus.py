"""Writers for the archive formats nativelib reads, and the shared attack corpus.

The writers build archives byte by byte (tar headers through ``tarfile.TarInfo.tobuf``,
ar, cpio "newc", RPM lead and headers, zip through ``zipfile``) so that the tests can
express what real tools refuse to make: ``../x`` names, devices, lying sizes. Real tools
(dpkg-deb, rpmbuild, gcc) build the well-formed packages in ``test_archive.py``; the
RPM writer here is checked against ``rpm`` itself there.

One :class:`Case` is one malicious archive content, rendered into every format that can
express it (:func:`render`); :func:`cannot_express` says why a format cannot.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import stat
import struct
import tarfile
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import zstandard

from nativelib.archive import DEFAULT_LIMITS, Limits

# -- entries --------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One member to write: ``kind`` is file, dir, symlink, hardlink, chardev or fifo."""

    name: str
    kind: str = "file"
    data: bytes = b"payload\n"
    mode: int | None = None
    target: str = ""
    claimed_size: int | None = None  # what the header says, when it lies

    @property
    def perm(self) -> int:
        if self.mode is not None:
            return self.mode
        return {"dir": 0o755, "symlink": 0o777}.get(self.kind, 0o644)


# -- tar ------------------------------------------------------------------------------

_TAR_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "chardev": tarfile.CHRTYPE,
    "fifo": tarfile.FIFOTYPE,
}


def _pad(n: int, to: int) -> bytes:
    return b"\0" * ((-n) % to)


def tar_header(entry: Entry, *, fmt: int = tarfile.GNU_FORMAT) -> bytes:
    info = tarfile.TarInfo(entry.name)
    info.type = _TAR_TYPES[entry.kind]
    info.mode = entry.perm
    info.mtime = 1_700_000_000
    if entry.kind in ("symlink", "hardlink"):
        info.linkname = entry.target
    if entry.kind == "chardev":
        info.devmajor, info.devminor = 1, 3
    if entry.kind == "file":
        info.size = len(entry.data) if entry.claimed_size is None else entry.claimed_size
    return info.tobuf(fmt)


def tar_bytes(
    entries: Sequence[Entry], *, end: bool = True, fmt: int = tarfile.GNU_FORMAT
) -> bytes:
    """A tar archive of ``entries``; a lying entry gets its claimed size in the header."""
    out = bytearray()
    for entry in entries:
        out += tar_header(entry, fmt=fmt)
        if entry.kind == "file":
            out += entry.data + _pad(len(entry.data), 512)
    if end:
        out += bytes(1024)
        out += _pad(len(out), 10240)
    return bytes(out)


# -- ar / deb -------------------------------------------------------------------------


def ar_bytes(members: Sequence[tuple[str, bytes]]) -> bytes:
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}`\n"
        out += header.encode("ascii") + data + _pad(len(data), 2).replace(b"\0", b"\n")
    return bytes(out)


CONTROL = (
    "Package: corpus\nVersion: 1.0-1\nArchitecture: amd64\n"
    "Maintainer: Tests <tests@example.com>\nDescription: attack corpus\n"
)


def compress(data: bytes, method: str) -> bytes:
    if method == "gzip":
        return gzip.compress(data, mtime=0)
    if method == "xz":
        return lzma.compress(data)
    if method == "lzma":
        return lzma.compress(data, format=lzma.FORMAT_ALONE)
    if method == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    if method == "bzip2":
        return bz2.compress(data)
    assert method == "none"
    return data


_DEB_SUFFIX = {"gzip": ".gz", "xz": ".xz", "zstd": ".zst", "bzip2": ".bz2", "none": ""}


def deb_bytes(
    data_tar: bytes,
    *,
    control: str = CONTROL,
    method: str = "xz",
    members: Sequence[tuple[str, bytes]] | None = None,
) -> bytes:
    """A deb holding ``data_tar``; ``members`` replaces the ar member list entirely."""
    if members is None:
        control_tar = tar_bytes([Entry("./", "dir"), Entry("./control", data=control.encode())])
        members = [
            ("debian-binary", b"2.0\n"),
            ("control.tar.gz", compress(control_tar, "gzip")),
            (f"data.tar{_DEB_SUFFIX[method]}", compress(data_tar, method)),
        ]
    return ar_bytes(members)


# -- cpio / rpm -----------------------------------------------------------------------

_CPIO_TYPES = {
    "file": stat.S_IFREG,
    "dir": stat.S_IFDIR,
    "symlink": stat.S_IFLNK,
    "chardev": stat.S_IFCHR,
    "fifo": stat.S_IFIFO,
}


def cpio_entry(
    name: str,
    mode: int,
    data: bytes = b"",
    *,
    ino: int = 1,
    nlink: int = 1,
    size: int | None = None,
    rdev: tuple[int, int] = (0, 0),
    magic: bytes = b"070701",
    name_size: int | None = None,
) -> bytes:
    raw_name = name.encode("utf-8", "surrogateescape") + b"\0"
    fields = [
        ino,
        mode,
        0,
        0,
        nlink,
        1_700_000_000,
        len(data) if size is None else size,
        8,
        1,
        rdev[0],
        rdev[1],
        len(raw_name) if name_size is None else name_size,
        0,
    ]
    header = magic + b"".join(b"%08X" % v for v in fields)
    return header + raw_name + _pad(110 + len(raw_name), 4) + data + _pad(len(data), 4)


def cpio_trailer() -> bytes:
    return cpio_entry("TRAILER!!!", 0, ino=0)


def cpio_bytes(entries: Sequence[Entry]) -> bytes:
    out = bytearray()
    for ino, entry in enumerate(entries, start=100):
        assert entry.kind != "hardlink", "newc hard links are by inode: use cpio_entry"
        mode = _CPIO_TYPES[entry.kind] | entry.perm
        data = b""
        if entry.kind == "file":
            data = entry.data
        elif entry.kind == "symlink":
            data = entry.target.encode()
        rdev = (1, 3) if entry.kind == "chardev" else (0, 0)
        out += cpio_entry(entry.name, mode, data, ino=ino, size=entry.claimed_size, rdev=rdev)
    out += cpio_trailer()
    return bytes(out + _pad(len(out), 512))


RPM_STRING, RPM_INT32, RPM_BIN = 6, 4, 7


def rpm_header(tags: Sequence[tuple[int, int, bytes, int]]) -> bytes:
    """An RPM header structure from (tag, type, data, count), data laid out in order."""
    index = bytearray()
    store = bytearray()
    for tag, typ, data, count in tags:
        if typ == RPM_INT32:
            store += _pad(len(store), 4)
        index += struct.pack(">iIiI", tag, typ, len(store), count)
        store += data
    return (
        b"\x8e\xad\xe8\x01\0\0\0\0"
        + struct.pack(">II", len(tags), len(store))
        + bytes(index)
        + bytes(store)
    )


def rpm_string(tag: int, value: str) -> tuple[int, int, bytes, int]:
    return (tag, RPM_STRING, value.encode() + b"\0", 1)


def rpm_bytes(
    cpio: bytes,
    *,
    name: str = "corpus",
    version: str = "1.0",
    compressor: str | None = "gzip",
    payload_format: str | None = "cpio",
    tags: Sequence[tuple[int, int, bytes, int]] | None = None,
    lead_magic: bytes = b"\xed\xab\xee\xdb",
) -> bytes:
    """An RPM (v3 lead, signature header, main header, payload) around ``cpio``."""
    lead = struct.pack(
        ">4sBBhh66shh16x", lead_magic, 3, 0, 0, 1, f"{name}-{version}".encode(), 1, 5
    )
    known = ("gzip", "xz", "lzma", "zstd", "bzip2", "none")
    payload = compress(cpio, compressor if compressor in known else "gzip")
    # rpm refuses a signature header without tags: give it RPMSIGTAG_SIZE.
    signature = rpm_header([(1000, RPM_INT32, struct.pack(">I", len(payload)), 1)])
    signature += _pad(len(signature), 8)
    if tags is None:
        tags = [
            rpm_string(1000, name),
            rpm_string(1001, version),
            rpm_string(1002, "1"),
            (1003, RPM_INT32, struct.pack(">I", 2), 1),
            rpm_string(1014, "MIT"),
            rpm_string(1021, "linux"),
            rpm_string(1022, "x86_64"),
        ]
        if payload_format is not None:
            tags = [*tags, rpm_string(1124, payload_format)]
        if compressor is not None:
            tags = [*tags, rpm_string(1125, compressor)]
    return lead + signature + rpm_header(tags) + payload


# -- zip: wheel and .conda ------------------------------------------------------------

_ZIP_TYPES = {
    "file": stat.S_IFREG,
    "dir": stat.S_IFDIR,
    "symlink": stat.S_IFLNK,
    "chardev": stat.S_IFCHR,
    "fifo": stat.S_IFIFO,
}

WHEEL_METADATA = "Metadata-Version: 2.4\nName: corpus\nVersion: 1.0\nLicense-Expression: MIT\n"
WHEEL_WHEEL = "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: false\nTag: py3-none-any\n"


def _set_zip_sizes(data: bytearray, name: str, size: int) -> None:
    """Make the local header and central directory both claim ``size`` for ``name``."""
    raw = name.encode()
    for signature, size_at, name_len_at, name_at in (
        (b"PK\x03\x04", 22, 26, 30),
        (b"PK\x01\x02", 24, 28, 46),
    ):
        pos = data.find(signature)
        while pos >= 0:
            (length,) = struct.unpack_from("<H", data, pos + name_len_at)
            if data[pos + name_at : pos + name_at + length] == raw:
                struct.pack_into("<I", data, pos + size_at, size)
            pos = data.find(signature, pos + 4)


def zip_bytes(
    entries: Sequence[Entry], *, extra: Sequence[tuple[str, bytes]] = (), stored: bool = False
) -> bytes:
    buf = io.BytesIO()
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": the corpus means it
        with zipfile.ZipFile(buf, "w") as zf:
            for entry in entries:
                assert entry.kind != "hardlink", "zip has no hard links"
                name = entry.name
                if entry.kind == "dir" and not name.endswith("/"):
                    name += "/"
                info = zipfile.ZipInfo(name, (2023, 11, 14, 22, 13, 20))
                info.create_system = 3
                info.external_attr = (_ZIP_TYPES[entry.kind] | entry.perm) << 16
                data = entry.target.encode() if entry.kind == "symlink" else b""
                if entry.kind == "file":
                    data = entry.data
                zf.writestr(info, data, compress_type=method)
            for name, data in extra:
                info = zipfile.ZipInfo(name, (2023, 11, 14, 22, 13, 20))
                info.create_system = 3
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                zf.writestr(info, data, compress_type=method)
    out = bytearray(buf.getvalue())
    for entry in entries:
        if entry.claimed_size is not None:
            _set_zip_sizes(out, entry.name, entry.claimed_size)
    return bytes(out)


def wheel_bytes(entries: Sequence[Entry]) -> bytes:
    return zip_bytes(
        entries,
        extra=[
            ("corpus-1.0.dist-info/METADATA", WHEEL_METADATA.encode()),
            ("corpus-1.0.dist-info/WHEEL", WHEEL_WHEEL.encode()),
        ],
    )


def conda_index(name: str = "corpus", version: str = "1.0") -> bytes:
    doc = {
        "name": name,
        "version": version,
        "build": "h0_0",
        "build_number": 0,
        "license": "MIT",
        "subdir": "linux-64",
        "depends": [],
    }
    return json.dumps(doc).encode()


def conda_info_entries(paths: Sequence[dict[str, object]] = ()) -> list[Entry]:
    return [
        Entry("info/index.json", data=conda_index()),
        Entry(
            "info/paths.json", data=json.dumps({"paths": list(paths), "paths_version": 1}).encode()
        ),
    ]


def conda_bytes(
    pkg_tar: bytes,
    *,
    info_tar: bytes | None = None,
    stem: str = "corpus-1.0-h0_0",
    outer: Sequence[tuple[str, bytes]] | None = None,
    extra: Sequence[tuple[str, bytes]] = (),
) -> bytes:
    """A .conda; ``outer`` replaces the outer zip's member list, ``extra`` adds to it."""
    if info_tar is None:
        info_tar = tar_bytes(conda_info_entries())
    if outer is None:
        outer = [
            ("metadata.json", b'{"conda_pkg_format_version": 2}'),
            *extra,
            (f"info-{stem}.tar.zst", compress(info_tar, "zstd")),
            (f"pkg-{stem}.tar.zst", compress(pkg_tar, "zstd")),
        ]
    return zip_bytes([], extra=outer, stored=True)


def tar_bz2_bytes(entries: Sequence[Entry], *, info: Sequence[Entry] | None = None) -> bytes:
    info_entries = conda_info_entries() if info is None else list(info)
    return bz2.compress(tar_bytes([*info_entries, *entries]))


# -- the corpus -----------------------------------------------------------------------

FORMATS = ("deb", "rpm", "whl", "conda", "conda-zip", "tar.bz2")

ABSOLUTE_NAME = "/nativelib-archive-corpus-abs"


@dataclass(frozen=True)
class Case:
    """A malicious payload; ``bad`` is the stored name the error must name, ``reason`` why.

    ``corrupt`` cases are rejected as damaged archives (SourceError) rather than as
    unsafe members: a tar or cpio header that under-states a member's size makes the
    reader meet the rest of the data where the next header should be.
    """

    id: str
    entries: tuple[Entry, ...]
    bad: str
    reason: str  # text the error's reason must contain, whatever the format
    limits: Limits = DEFAULT_LIMITS
    corrupt: bool = False


def _files(*names: str, data: bytes = b"payload\n") -> tuple[Entry, ...]:
    return tuple(Entry(n, data=data) for n in names)


CASES = (
    Case("dotdot", _files("../x"), "../x", "'..' component in name"),
    Case("absolute", _files(ABSOLUTE_NAME), ABSOLUTE_NAME, "absolute path"),
    Case("dotdot-inner", _files("a/../../x"), "a/../../x", "'..' component in name"),
    Case("backslash", _files("a\\b"), "a\\b", "backslash in name"),
    Case("empty-name", _files(""), "", "empty name"),
    Case(
        "duplicate",
        (Entry("dup"), Entry("dup", data=b"second\n")),
        "dup",
        "duplicate member name 'dup'",
    ),
    Case("parent-is-file", _files("f", "f/x"), "f/x", "its parent 'f' is a file"),
    Case("file-over-directory", _files("a/b", "a"), "a", "'a' is already a directory"),
    Case(
        "symlink-escape-then-write",
        (Entry("up", "symlink", target="../.."), Entry("up/x")),
        "up",
        "symlink target '../..' points outside the destination",
    ),
    Case(
        "write-through-symlink",
        (Entry("inner", "dir"), Entry("ln", "symlink", target="inner"), Entry("ln/x")),
        "ln/x",
        "would be written through the symlink 'ln'",
    ),
    Case(
        "symlink-absolute",
        (Entry("abs", "symlink", target="/etc/passwd"),),
        "abs",
        "absolute symlink target '/etc/passwd'",
    ),
    Case(
        "symlink-chain-escape",
        (
            Entry("d", "dir"),
            Entry("d/sub", "symlink", target=".."),
            Entry("x", "symlink", target="d/sub/../.."),
        ),
        "x",
        "goes up from 'd/sub', which is not a directory extracted before it",
    ),
    Case(
        "link-named-dot",
        (Entry(".", "symlink", target="x"),),
        ".",
        "naming the destination root itself",
    ),
    Case(
        "hardlink-outside",
        (Entry("hl", "hardlink", target="../outside"),),
        "hl",
        "hard link target '../outside': '..' component",
    ),
    Case(
        "hardlink-missing",
        (Entry("hl", "hardlink", target="nothere"),),
        "hl",
        "hard link to 'nothere', which is not an earlier regular file",
    ),
    Case(
        "hardlink-to-symlink",
        (Entry("f"), Entry("s", "symlink", target="f"), Entry("hl", "hardlink", target="s")),
        "hl",
        "hard link to 's', which is not an earlier regular file",
    ),
    Case("chardev", (Entry("dev", "chardev"),), "dev", "is a character device"),
    Case("fifo", (Entry("fifo", "fifo"),), "fifo", "is a FIFO"),
    Case(
        "setuid",
        (Entry("suid", mode=0o4755),),
        "suid",
        "setuid, setgid or sticky bit set (mode 0o4755)",
    ),
    Case(
        "setgid-dir",
        (Entry("sgid", "dir", mode=0o2755),),
        "sgid",
        "setuid, setgid or sticky bit set (mode 0o2755)",
    ),
    Case(
        "oversized",
        _files("big", data=b"A" * 5000),
        "big",
        "5000 bytes, more than the limit of 1000 (max_member_size)",
        Limits(max_member_size=1000),
    ),
    Case(
        "too-many-members",
        _files(*(f"f{i}" for i in range(8))),
        "f5",
        "more than 5 members (max_members)",
        Limits(max_members=5),
    ),
    Case(
        "total-size",
        _files("t0", "t1", "t2", data=b"B" * 2000),
        "t1",
        "exceed the limit of 3000 bytes (max_total_size)",
        Limits(max_total_size=3000),
    ),
    Case(
        "lying-size",
        (Entry("liar", data=b"A" * 3000, claimed_size=10), Entry("after")),
        "liar",
        "",  # differs by format: a bad next header, or a bad CRC-32
        corrupt=True,
    ),
)


def cannot_express(case: Case, fmt: str) -> str | None:
    """Why ``fmt`` cannot express ``case``, or None when it can."""
    kinds = {e.kind for e in case.entries}
    if fmt == "conda-zip":
        plain = kinds == {"file"} and all(
            e.mode is None and e.claimed_size is None for e in case.entries
        )
        if not plain or case.limits != DEFAULT_LIMITS:
            return (
                "the outer zip of a .conda is never extracted: only its member names are"
                " checked, so only name cases apply"
            )
    if "hardlink" in kinds and fmt == "whl":
        return "zip has no hard links"
    if "hardlink" in kinds and fmt == "rpm":
        return "newc cpio links entries by inode number: a hard link cannot name a path"
    return None


def render(case: Case, fmt: str, directory: Path) -> Path:
    """Write ``case`` as an archive of format ``fmt`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    entries = case.entries
    if fmt == "deb":
        path, data = directory / "corpus_1.0-1_amd64.deb", deb_bytes(tar_bytes(entries))
    elif fmt == "rpm":
        path, data = directory / "corpus-1.0-1.x86_64.rpm", rpm_bytes(cpio_bytes(entries))
    elif fmt == "whl":
        path, data = directory / "corpus-1.0-py3-none-any.whl", wheel_bytes(entries)
    elif fmt == "conda":
        path, data = directory / "corpus-1.0-h0_0.conda", conda_bytes(tar_bytes(entries))
    elif fmt == "conda-zip":
        path = directory / "corpus-1.0-h0_0.conda"
        ok = tar_bytes([Entry("lib/ok")])
        data = conda_bytes(ok, extra=[(e.name, e.data) for e in entries])
    elif fmt == "tar.bz2":
        path, data = directory / "corpus-1.0-h0_0.tar.bz2", tar_bz2_bytes(entries)
    else:
        raise ValueError(fmt)
    path.write_bytes(data)
    return path
