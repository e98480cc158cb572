"""The strict wheel validator (file name, zip structure, WHEEL, RECORD, METADATA)."""

from __future__ import annotations

import email.parser
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path

from packaging.metadata import ExceptionGroup, InvalidMetadata, Metadata
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from nativelib.errors import WheelError
from nativelib.safezip import open_stored
from nativelib.wheelfile.opening import open_zip
from nativelib.wheelfile.plan import _WHEEL_VERSION_RE, StoredMember, _arcname_problem
from nativelib.wheelfile.record import RecordRow, check_listing, parse_record, verify_members

# --------------------------------------------------------------------------- validating


def validate_wheel(path: Path) -> None:
    """Check a wheel file; raise :class:`~nativelib.errors.WheelError` on the first problem.

    In order: the file name parses (``packaging.utils.parse_wheel_filename``); the file is
    a zip whose member names are safe and unique; it has exactly one ``.dist-info``
    directory, matching the file name's name and version; WHEEL says Wheel-Version 1.x;
    RECORD lists every member with a matching hash and size and nothing that is not a
    member (:mod:`nativelib.wheelfile.record`, the rules repair's reader applies too);
    METADATA is valid core metadata (``packaging.metadata``, validated) whose Name and
    Version match the file name.
    """
    path = Path(path)
    _check_wheel(path, path.name)


def validate_layout(path: Path) -> None:
    """The checks of :func:`validate_wheel` but RECORD's (for a reader that verifies RECORD
    itself, with the same rules, as it extracts: repair's): the file name, the zip
    structure, the one ``.dist-info`` directory matching the file name, WHEEL and
    METADATA."""
    path = Path(path)
    _check_wheel(path, path.name, record=False)


def _check_wheel(
    path: Path,
    filename: str,
    *,
    record: bool = True,
    copied: Mapping[str, StoredMember] | None = None,
) -> None:
    """validate_wheel for the file at ``path`` as if it were named ``filename``; members in
    ``copied`` (written by copying the stored bytes of a verified member) are checked by
    those bytes (:func:`_check_copied`) instead of being inflated and hashed again."""
    where = str(path.parent / filename)
    try:
        name, version, _build, _tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as e:
        raise WheelError(where, f"invalid wheel file name: {e}") from e
    zf = open_zip(path, where, WheelError)
    with zf:
        try:
            dist_info = _check_structure(zf, where, name, version)
            if record:
                _check_record(zf, where, dist_info, copied or {})
            _check_metadata(zf, where, dist_info, name, version)
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:
            raise WheelError(where, f"corrupt zip data: {e}") from e


def _read_member(zf: zipfile.ZipFile, where: str, member: str) -> str:
    try:
        raw = zf.read(member)
    except KeyError:
        raise WheelError(where, f"{member} is missing") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise WheelError(where, f"{member} is not UTF-8: {e}") from e


def _check_structure(zf: zipfile.ZipFile, where: str, name: str, version: Version) -> str:
    names = zf.namelist()
    seen: set[str] = set()
    for member in names:
        if member in seen:
            raise WheelError(where, f"duplicate zip entry {member!r}")
        seen.add(member)
        problem = _arcname_problem(member[:-1] if member.endswith("/") else member)
        if problem is not None:
            raise WheelError(where, f"unsafe member name {member!r}: {problem}")
    dist_infos = sorted(
        {m.split("/", 1)[0] for m in names if m.split("/", 1)[0].endswith(".dist-info")}
    )
    if len(dist_infos) != 1:
        raise WheelError(
            where,
            f"expected exactly one .dist-info directory, found {len(dist_infos)}"
            + (f": {', '.join(dist_infos)}" if dist_infos else ""),
        )
    dist_info = dist_infos[0]
    di_name, sep, di_version = dist_info[: -len(".dist-info")].rpartition("-")
    try:
        matches = bool(sep) and canonicalize_name(di_name) == name
        matches = matches and Version(di_version) == version
    except InvalidVersion:
        matches = False
    if not matches:
        raise WheelError(
            where,
            f".dist-info directory {dist_info!r} does not match the file name"
            f" (name {name!r}, version {str(version)!r})",
        )
    wheel_text = _read_member(zf, where, f"{dist_info}/WHEEL")
    headers = email.parser.HeaderParser().parsestr(wheel_text)
    wheel_version = headers.get("Wheel-Version")
    if wheel_version is None:
        raise WheelError(where, f"{dist_info}/WHEEL has no Wheel-Version")
    m = _WHEEL_VERSION_RE.match(str(wheel_version))
    if m is None:
        raise WheelError(where, f"{dist_info}/WHEEL: malformed Wheel-Version {wheel_version!r}")
    if int(m.group(1)) != 1:
        raise WheelError(
            where,
            f"{dist_info}/WHEEL: Wheel-Version {wheel_version.strip()} is not supported"
            " (only 1.x is)",
        )
    return dist_info


def _check_record(
    zf: zipfile.ZipFile, where: str, dist_info: str, copied: Mapping[str, StoredMember]
) -> None:
    record_text = _read_member(zf, where, f"{dist_info}/RECORD")
    try:
        rows = parse_record(record_text, where)
    except WheelError as e:
        # (installer's wording, which this validator used before it had its own reader)
        reason = f"RECORD check failed: Unable to retrieve `RECORD`: {e.reason}"
        raise WheelError(where, reason) from e
    try:
        check_listing(rows, [m for m in zf.namelist() if not m.endswith("/")], dist_info, where)
        verify_members(zf, rows, where, skip=copied)
        for name, stored in copied.items():
            _check_copied(zf, rows, where, name, stored)
    except WheelError as e:
        raise WheelError(where, f"RECORD check failed: {e.reason}") from e


def _check_copied(
    zf: zipfile.ZipFile,
    rows: Mapping[str, RecordRow],
    where: str,
    name: str,
    stored: StoredMember,
) -> None:
    """A member written as a copy of ``stored``: its directory entry (method, CRC-32,
    sizes) and RECORD row are the verified member's, and so are its stored bytes (by
    their CRC-32): then its content is the verified content."""
    info = zf.getinfo(name)
    row = rows[name]
    if (info.compress_type, info.CRC, info.compress_size, info.file_size) != (
        stored.method, stored.crc, stored.compress_size, stored.file_size,
    ):  # fmt: skip
        raise WheelError(where, f"{name}: its zip entry differs from the member it copies")
    if (f"{row.algorithm}={row.digest}", row.size) != (stored.record_hash, stored.file_size):
        raise WheelError(where, f"{name}: its RECORD row differs from the member it copies")
    crc = 0
    with open_stored(zf, info) as f:
        while chunk := f.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    if crc != stored.stored_crc:
        raise WheelError(where, f"{name}: its compressed bytes differ from the member it copies")


def _check_metadata(
    zf: zipfile.ZipFile, where: str, dist_info: str, name: str, version: Version
) -> None:
    member = f"{dist_info}/METADATA"
    try:
        raw = zf.read(member)
    except KeyError:
        raise WheelError(where, f"{member} is missing") from None
    try:
        metadata = Metadata.from_email(raw, validate=True)
    except (ExceptionGroup, InvalidMetadata) as e:
        problems = [str(x) for x in _flatten(e)]
        raise WheelError(where, f"{member} is invalid: {'; '.join(problems)}") from e
    if canonicalize_name(metadata.name) != name or metadata.version != version:
        raise WheelError(
            where,
            f"{member} describes {metadata.name} {metadata.version}, not the file name's"
            f" {name} {version}",
        )


def _flatten(e: BaseException) -> Iterator[BaseException]:
    if isinstance(e, ExceptionGroup):
        for sub in e.exceptions:
            yield from _flatten(sub)
    else:
        yield e
