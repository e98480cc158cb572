"""Reading a wheel for repair: its members checked against RECORD, extracted safely.

Every member must be listed in RECORD with a hash that matches its content (sha256 or a
stronger hashlib algorithm) and its size, and RECORD must list nothing that is not in the
archive; member names must be relative and stay inside the wheel. Any problem is a
:class:`~nativelib.errors.RepairError` naming the wheel and the reason, raised before
anything is written.
"""

from __future__ import annotations

import csv
import hashlib
import os
import posixpath
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from nativelib.archive.members import name_problem
from nativelib.errors import RepairError
from nativelib.prefix import record_digest

__all__ = ["Member", "WheelContents", "read_wheel", "verify_record"]

_HASHES = ("sha256", "sha384", "sha512", "blake2b", "sha3_256", "sha3_384", "sha3_512")
_SIGNATURES = ("RECORD.jws", "RECORD.p7s")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    arcname: str
    path: Path  # the extracted copy
    size: int
    executable: bool


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


def _parse_record(where: str, text: str) -> dict[str, tuple[str, str, int | None]]:
    """RECORD rows: path -> (algorithm, urlsafe-b64 digest, size); checked line by line."""
    rows: dict[str, tuple[str, str, int | None]] = {}
    for n, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row:
            continue
        if len(row) != 3:
            raise RepairError(where, f"RECORD line {n}: expected 3 fields, found {len(row)}")
        path, digest, size = row
        if path in rows:
            raise RepairError(where, f"RECORD line {n}: {path!r} is listed twice")
        if not digest:
            rows[path] = ("", "", None)
            continue
        algorithm, sep, value = digest.partition("=")
        if not sep or algorithm not in _HASHES or not value:
            raise RepairError(
                where, f"RECORD line {n}: hash {digest!r} of {path!r} is not 'sha256=...'"
            )
        if not size.isdigit():
            raise RepairError(where, f"RECORD line {n}: size {size!r} of {path!r} is not a number")
        rows[path] = (algorithm, value, int(size))
    return rows


def _open(path: Path) -> tuple[zipfile.ZipFile, str, str, str | None, frozenset[Tag]]:
    where = str(path)
    try:
        _name, _version, _build, tags = parse_wheel_filename(path.name)
    except InvalidWheelFilename as e:
        raise RepairError(where, f"not a wheel file name: {e}") from e
    parts = path.name[: -len(".whl")].split("-")
    build = parts[2] if len(parts) == 6 else None
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise RepairError(where, f"not a zip file: {e}") from e
    except OSError as e:
        raise RepairError(where, f"cannot open: {e.strerror or e}") from e
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
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise RepairError(where, f"not a readable zip file: {e}") from e
    with zf:
        _check(where, zf, extract_to=None)


def _check(where: str, zf: zipfile.ZipFile, extract_to: Path | None) -> tuple[str, list[Member]]:
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
    except (zipfile.BadZipFile, OSError) as e:
        raise RepairError(where, f"cannot read {record_name}: {e}") from e
    rows = _parse_record(where, record_text)
    files = [i for i in infos if not i.is_dir()]
    present = {i.filename for i in files}
    for listed in rows:
        if listed not in present:
            raise RepairError(where, f"RECORD lists {listed!r}, which is not in the wheel")
    members: list[Member] = []
    for info in files:
        name = info.filename
        if name == record_name:
            continue
        if name not in rows:
            raise RepairError(where, f"{name!r} is not listed in RECORD")
        algorithm, expected, size = rows[name]
        if not algorithm and posixpath.basename(name) not in _SIGNATURES:
            raise RepairError(where, f"RECORD has no hash for {name!r}")
        h = hashlib.new(algorithm or "sha256")
        done = 0
        out = None
        target = extract_to / name if extract_to is not None else None
        try:
            if target is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                out = open(target, "xb")  # noqa: SIM115 (closed below)
            with zf.open(info) as stream:
                while chunk := stream.read(_CHUNK):
                    h.update(chunk)
                    done += len(chunk)
                    if out is not None:
                        out.write(chunk)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise RepairError(where, f"cannot read {name!r}: {e}") from e
        finally:
            if out is not None:
                out.close()
        if algorithm and record_digest(h.digest()) != expected:
            raise RepairError(where, f"{name!r}: {algorithm} does not match RECORD")
        if size is not None and done != size:
            raise RepairError(where, f"{name!r}: size {done} does not match RECORD's {size}")
        if posixpath.basename(name) in _SIGNATURES and posixpath.dirname(name) == dist_info:
            continue  # a signature of the old RECORD means nothing for the new one
        executable = bool((info.external_attr >> 16) & 0o111)
        if target is not None:
            os.chmod(target, 0o755 if executable else 0o644)
        members.append(Member(name, target or Path(name), done, executable))
    return dist_info, members


def read_wheel(path: Path, workdir: Path) -> WheelContents:
    """Verify ``path`` and extract its members into ``workdir`` (which must be empty)."""
    where = str(path)
    zf, name_part, version_part, build_part, tags = _open(path)
    with zf:
        dist_info, members = _check(where, zf, extract_to=workdir)
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
