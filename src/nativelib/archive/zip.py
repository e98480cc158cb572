"""Zip archives: wheels, and the outer layer of .conda packages."""

from __future__ import annotations

import io
import stat
import zipfile
from collections.abc import Iterator
from email.parser import BytesHeaderParser
from typing import IO

from nativelib.archive.members import FileArchive, Member, MemberKind, PackageInfo
from nativelib.archive.rpm import _CPIO_KINDS
from nativelib.archive.streams import (
    _CHUNK,
    _MAX_LINK_DATA,
    _Corrupt,
    _MemberData,
    _open_file,
    reading_errors,
)
from nativelib.errors import SourceError
from nativelib.safezip import CONDA_METHODS, WHEEL_METHODS, SafeZipFile, ZipMemberError

# -- zip: wheels and the outer layer of .conda ---------------------------------------


def _open_zip(
    path: str, methods: frozenset[int] = WHEEL_METHODS, kind: str = "a wheel's members"
) -> zipfile.ZipFile:
    """Open a zip under the one rule (:mod:`nativelib.safezip`): a member that uses a
    compression method other than ``methods``, or is encrypted, is an error, and members
    are read with bounded memory."""
    f = _open_file(path)
    try:
        return SafeZipFile(f, methods=methods, kind=kind)
    except ZipMemberError as e:
        f.close()
        raise _Corrupt(f"zip {e}") from e  # "zip member 'x' is encrypted"
    except BaseException:
        f.close()
        raise


def _open_conda_zip(path: str) -> zipfile.ZipFile:
    """The outer zip of a ``.conda``: stored, as conda-package-handling and
    conda-package-streaming write it (its components are zstd-compressed already)."""
    return _open_zip(path, CONDA_METHODS, "the members of a .conda's outer zip")


class _Unwrapped:
    """A member stream whose :class:`ZipMemberError` becomes :class:`_Corrupt` with the
    bare reason (the archive layer names the member itself)."""

    __slots__ = ("_f",)

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f

    def read(self, size: int = -1, /) -> bytes:
        try:
            return self._f.read(size)
        except ZipMemberError as e:
            raise _Corrupt(e.reason) from e


def _zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Member:
    mode = info.external_attr >> 16 if info.create_system == 3 else 0
    ftype = stat.S_IFMT(mode)
    if info.filename.endswith("/"):
        kind = MemberKind.DIR
    elif ftype in (0, stat.S_IFREG):
        kind = MemberKind.FILE
    else:
        kind = _CPIO_KINDS.get(ftype, MemberKind.UNKNOWN)
    perm = mode & 0o7777 if mode else (0o755 if kind is MemberKind.DIR else 0o644)
    if kind is MemberKind.SYMLINK:
        if info.file_size > _MAX_LINK_DATA:
            raise _Corrupt(f"zip symlink {info.filename!r} has a target of {info.file_size} bytes")
        with zf.open(info) as f:
            target = f.read(_MAX_LINK_DATA + 1)
        return Member(info.filename, kind, perm, 0, target.decode("utf-8", "surrogateescape"))
    return Member(info.filename, kind, perm, info.file_size if kind is MemberKind.FILE else 0)


def _zip_members(zf: zipfile.ZipFile, archive: str) -> Iterator[tuple[Member, IO[bytes] | None]]:
    for info in zf.infolist():
        member = _zip_member(zf, info)
        if member.kind is not MemberKind.FILE:
            yield member, None
            continue
        with zf.open(info) as raw:
            data = _MemberData(_Unwrapped(raw), info.file_size, archive, info.filename)
            yield member, io.BufferedReader(data, _CHUNK)
            data.finish(skip=False)


def _zip_read_small(zf: zipfile.ZipFile, name: str, limit: int = 1 << 20) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise _Corrupt(f"no {name}") from None
    if info.file_size > limit:
        raise _Corrupt(f"{name} is {info.file_size} bytes, more than {limit}")
    return zf.read(info)


class WheelArchive(FileArchive):
    """A wheel (zip); the payload is every member."""

    def info(self) -> PackageInfo:
        with reading_errors(self._path), _open_zip(self._path) as zf:
            names = [
                n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
            ]
            if len(names) != 1:
                raise _Corrupt(f"expected one *.dist-info/METADATA, found {len(names)}")
            dist_info = names[0].split("/")[0]
            metadata = BytesHeaderParser().parsebytes(_zip_read_small(zf, names[0]))
            wheel = BytesHeaderParser().parsebytes(_zip_read_small(zf, f"{dist_info}/WHEEL"))
        name, version = metadata.get("Name"), metadata.get("Version")
        if not name or not version:
            raise SourceError(self._path, f"{names[0]} has no Name or Version")
        license = metadata.get("License-Expression") or metadata.get("License") or None
        tags = [str(t) for t in wheel.get_all("Tag") or []]
        platforms = sorted({t.rsplit("-", 1)[-1] for t in tags})
        extra = {"tags": " ".join(tags)}
        return PackageInfo(
            "wheel",
            str(name),
            str(version),
            license and str(license),
            ".".join(platforms) or None,
            extra,
        )

    def members(self) -> Iterator[tuple[Member, IO[bytes] | None]]:
        with reading_errors(self._path), _open_zip(self._path) as zf:
            yield from _zip_members(zf, self._path)
