"""Reading a wheel for repair: its members checked against RECORD, extracted safely.

Each member is streamed once (bounded memory) and hashed; those the caller asks for
(``wanted``, and every ELF file) are copied to disk on the way, the others are not
written anywhere: each :class:`Member` says where its verified, compressed bytes are in
the wheel (:class:`~nativelib.wheelfile.plan.StoredMember`), so that a writer copies the
members that do not change as they are (``WheelFile(stored=...)``).

RECORD is checked by :mod:`nativelib.wheelfile.record` (the rules the validator applies
too): every member listed with a hash that matches its content (sha256 or a stronger
hashlib algorithm) and its size, RECORD listing nothing that is not in the archive and
no signature of itself; member names must be relative and stay inside the wheel. Any problem is a
:class:`~nativelib.errors.RepairError` naming the wheel and the reason, raised before
anything is written.
"""

from __future__ import annotations

import os
import stat
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from nativelib.archive.members import name_problem
from nativelib.errors import RepairError, WheelError
from nativelib.safezip import SafeZipFile, ZipMemberError
from nativelib.wheelfile.opening import open_zip
from nativelib.wheelfile.plan import StoredMember
from nativelib.wheelfile.record import check_listing, parse_record, verify_members

__all__ = ["ELF_MAGIC", "Member", "WheelContents", "read_wheel", "verify_record"]


#: The first bytes of an ELF file: such a member is always extracted.
ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class Member:
    arcname: str
    path: Path  # the extracted copy (where it would be, when ``extracted`` is False)
    size: int
    executable: bool
    extracted: bool = True
    elf: bool = False  # its content starts with the ELF magic
    stored: StoredMember | None = None  # its verified compressed bytes in the wheel

    def read_bytes(self) -> bytes:
        """The member's content: the extracted copy, else read (and inflated, bounded
        and checked against its CRC-32) from the wheel."""
        if self.extracted:
            return self.path.read_bytes()
        assert self.stored is not None
        with SafeZipFile(self.stored.archive) as zf:
            return zf.read(self.stored.name)


@dataclass(frozen=True)
class WheelContents:
    """An extracted, verified wheel."""

    source: Path
    filename: str
    name_part: str  # the file name's distribution and version fields, as spelled
    version_part: str
    build_part: str | None
    tags: frozenset[Tag]
    dist_info: str
    members: tuple[Member, ...]  # in archive order, RECORD and its signatures left out

    def member(self, arcname: str) -> Member | None:
        return next((m for m in self.members if m.arcname == arcname), None)


def _name_problem(name: str) -> str | None:
    # A directory entry ends in "/"; the rest is the one rule, as the writer applies it.
    return name_problem(name[:-1] if name.endswith("/") else name, canonical=True)


def _open(path: Path) -> tuple[zipfile.ZipFile, str, str, str | None, frozenset[Tag]]:
    where = str(path)
    try:
        _name, _version, _build, tags = parse_wheel_filename(path.name)
    except InvalidWheelFilename as e:
        raise RepairError(where, f"not a wheel file name: {e}") from e
    parts = path.name[: -len(".whl")].split("-")
    build = parts[2] if len(parts) == 6 else None
    zf = open_zip(path, where, RepairError)
    return zf, parts[0], parts[1], build, tags


def _dist_info(where: str, names: list[str]) -> str:
    tops = sorted({n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")})
    if len(tops) != 1:
        raise RepairError(where, f"expected exactly one .dist-info directory, found {len(tops)}")
    return tops[0]


def verify_record(path: Path) -> None:
    """Check a wheel's RECORD against its members without extracting anything."""
    where = str(path)
    try:
        zf = SafeZipFile(path)
    except ZipMemberError as e:
        raise RepairError(where, str(e)) from e
    except (zipfile.BadZipFile, OSError) as e:
        raise RepairError(where, f"not a readable zip file: {e}") from e
    with zf:
        _check(path, zf, extract_to=None, wanted=None)


def _check(
    path: Path,
    zf: zipfile.ZipFile,
    extract_to: Path | None,
    wanted: Callable[[str], bool] | None,
) -> tuple[str, list[Member]]:
    where = str(path)
    infos = zf.infolist()
    names = [i.filename for i in infos]
    seen: set[str] = set()
    for info in infos:
        problem = _name_problem(info.filename)
        if problem:
            raise RepairError(where, f"unsafe member name {info.filename!r}: {problem}")
        if info.filename in seen:
            raise RepairError(where, f"duplicate member {info.filename!r}")
        seen.add(info.filename)
        mode = info.external_attr >> 16
        if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise RepairError(where, f"member {info.filename!r} is not a regular file")
    dist_info = _dist_info(where, names)
    record_name = f"{dist_info}/RECORD"
    try:
        record_text = zf.read(record_name).decode("utf-8")
    except KeyError:
        raise RepairError(where, f"{record_name} is missing") from None
    except UnicodeDecodeError as e:
        raise RepairError(where, f"{record_name} is not UTF-8: {e}") from e
    except ZipMemberError as e:
        raise RepairError(where, f"cannot read {record_name}: {e.reason}") from e
    except (zipfile.BadZipFile, OSError) as e:
        raise RepairError(where, f"cannot read {record_name}: {e}") from e
    files = [i.filename for i in infos if not i.is_dir()]
    elves: set[str] = set()
    extracted: set[str] = set()

    def open_out(info: zipfile.ZipInfo, head: bytes) -> BinaryIO | None:
        elf = head.startswith(ELF_MAGIC)
        if elf:
            elves.add(info.filename)
        if extract_to is None or not (elf or wanted is None or wanted(info.filename)):
            return None
        target = extract_to / info.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        extracted.add(info.filename)
        return open(target, "xb")  # verify_members closes it

    try:
        rows = parse_record(record_text, where)
        check_listing(rows, files, dist_info, where)
        verified = verify_members(zf, rows, where, open_out)
    except WheelError as e:
        raise RepairError(where, e.reason) from e
    except ZipMemberError as e:
        raise RepairError(where, f"cannot read member {e.member!r}: {e.reason}") from e
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:
        raise RepairError(where, f"cannot read a member: {e}") from e
    members: list[Member] = []
    for info, size, stored_crc in verified:
        name = info.filename
        executable = bool((info.external_attr >> 16) & 0o111)
        target = extract_to / name if extract_to is not None else Path(name)
        if name in extracted:
            os.chmod(target, 0o755 if executable else 0o644)
        row = rows[name]
        stored = None
        if stored_crc is not None:
            stored = StoredMember(
                archive=path, name=name, header_offset=info.header_offset,
                method=info.compress_type, crc=info.CRC, compress_size=info.compress_size,
                file_size=info.file_size, stored_crc=stored_crc,
                record_hash=f"{row.algorithm}={row.digest}",
            )  # fmt: skip
        members.append(
            Member(name, target, size, executable, name in extracted, name in elves, stored)
        )
    return dist_info, members


def read_wheel(
    path: Path, workdir: Path, *, wanted: Callable[[str], bool] | None = None
) -> WheelContents:
    """Verify ``path`` and extract its members into ``workdir`` (which must be empty):
    every member when ``wanted`` is None, else the ELF files and the members whose names
    ``wanted`` accepts (the others are verified and not written)."""
    zf, name_part, version_part, build_part, tags = _open(path)
    with zf:
        dist_info, members = _check(path, zf, extract_to=workdir, wanted=wanted)
    return WheelContents(
        source=path,
        filename=path.name,
        name_part=name_part,
        version_part=version_part,
        build_part=build_part,
        tags=tags,
        dist_info=dist_info,
        members=tuple(members),
    )
