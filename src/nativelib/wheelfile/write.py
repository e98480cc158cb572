"""The reproducible wheel writer.

A checked plan is written to a temporary file, validated, then renamed into place.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import shutil
import struct
import time
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from nativelib.errors import WheelError
from nativelib.leftovers import owner_tag, remove_stale
from nativelib.prefix import record_digest
from nativelib.wheelfile.plan import (
    _CHUNK,
    _CREATE_SYSTEM_UNIX,
    _EXEC_MODE,
    _FILE_MODE,
    _MAX_EPOCH,
    _MIN_EPOCH,
    COMPRESSLEVEL,
    DEFAULT_DATE_TIME,
    DateTime,
    WheelFile,
    WheelPlan,
    _open_source,
)
from nativelib.wheelfile.validate import _check_wheel

# --------------------------------------------------------------------------- writing


def zip_date_time(source_date_epoch: int | None = None) -> DateTime:
    """The timestamp every entry gets, as a zip ``date_time`` tuple (UTC).

    ``source_date_epoch`` if given, else ``$SOURCE_DATE_EPOCH`` if set and not empty,
    else 1980-01-01 00:00:00; clamped into [1980-01-01 00:00:00, 2107-12-31 23:59:58].
    """
    if source_date_epoch is None:
        raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
        if not raw:
            return DEFAULT_DATE_TIME
        try:
            source_date_epoch = int(raw)
        except ValueError:
            raise WheelError(
                "SOURCE_DATE_EPOCH", f"{raw!r} is not an integer number of seconds"
            ) from None
    epoch = min(max(source_date_epoch, _MIN_EPOCH), _MAX_EPOCH)
    t = time.gmtime(epoch)
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


@dataclass(frozen=True)
class _Entry:
    arcname: str
    file: WheelFile | None  # None: generated (METADATA, WHEEL, RECORD)
    data: bytes | None
    size: int


def _zipinfo(arcname: str, date_time: DateTime, executable: bool, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(arcname, date_time=date_time)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = _CREATE_SYSTEM_UNIX
    info.external_attr = (_EXEC_MODE if executable else _FILE_MODE) << 16
    info.file_size = size  # decides ZIP64 up front, from the size alone
    # ZipInfo.compress_level is public from Python 3.13 on, _compresslevel before.
    level_attr = (
        "compress_level" if "compress_level" in zipfile.ZipInfo.__slots__ else "_compresslevel"
    )
    setattr(info, level_attr, COMPRESSLEVEL)
    return info


def _entry_chunks(entry: _Entry) -> Iterator[bytes]:
    """The content of an entry in chunks, checked against the size it had when the plan
    was checked (a source that grew or shrank since is an error)."""
    if entry.data is not None:
        yield entry.data
        return
    assert entry.file is not None and entry.file.source is not None
    fd, _ = _open_source(entry.file)
    written = 0
    try:
        while chunk := os.read(fd, min(_CHUNK, entry.size - written + 1)):
            written += len(chunk)
            if written > entry.size:
                break
            yield chunk
    finally:
        os.close(fd)
    if written != entry.size:
        raise WheelError(
            str(entry.file.source),
            f"source of {entry.arcname!r} changed while the wheel was written: it had"
            f" {entry.size} bytes when checked and "
            + ("has more now" if written > entry.size else f"{written} when read"),
        )


def _entry_bytes(entry: _Entry) -> bytes:
    return entry.data if entry.data is not None else b"".join(_entry_chunks(entry))


def _write_entry(zf: zipfile.ZipFile, entry: _Entry, date_time: DateTime) -> tuple[str, str, str]:
    """Write one entry through zipfile (the ZIP64 path), hashing what is written."""
    executable = entry.file.executable if entry.file is not None else False
    info = _zipinfo(entry.arcname, date_time, executable, entry.size)
    sha = hashlib.sha256()
    with zf.open(info, "w") as out:
        for chunk in _entry_chunks(entry):
            sha.update(chunk)
            out.write(chunk)
    return (entry.arcname, f"sha256={record_digest(sha.digest())}", str(entry.size))


#: Members are deflated in blocks of this size on a thread pool (zlib releases the GIL).
#: Each block is primed with the 32 KiB before it and sync-flushed; only the last one is
#: final, so the blocks form one deflate stream, and the bytes do not depend on the
#: number of threads.
_BLOCK = 1 << 18
_DEFLATE_WINDOW = 1 << 15
#: Wheels that would need ZIP64 (a member or the whole file near 4 GiB, or 65535
#: members) are written through zipfile instead, one thread.
_RAW_LIMIT = 0xFFFFFFFF - (1 << 24)
_LOCAL = struct.Struct("<4s5H3I2H")
_CENTRAL = struct.Struct("<4s6H3I5H2I")
_END = struct.Struct("<4s4H2IH")


def _deflate_block(data: memoryview, start: int, end: int) -> bytes:
    if start:
        dictionary = bytes(data[max(0, start - _DEFLATE_WINDOW) : start])
        c = zlib.compressobj(
            COMPRESSLEVEL, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, dictionary
        )
    else:
        c = zlib.compressobj(COMPRESSLEVEL, zlib.DEFLATED, -15)
    out = c.compress(data[start:end])
    return out + c.flush(zlib.Z_FINISH if end == len(data) else zlib.Z_SYNC_FLUSH)


class _RawZip:
    """Writes members that are already deflated (no ZIP64: see ``_RAW_LIMIT``)."""

    def __init__(self, fh: IO[bytes], date_time: DateTime) -> None:
        self._fh = fh
        self._offset = 0
        self._central: list[bytes] = []
        y, mo, d, h, mi, sec = date_time
        self._time = (h << 11) | (mi << 5) | (sec // 2)
        self._date = ((y - 1980) << 9) | (mo << 5) | d

    def add(self, name: str, deflated: bytes, crc: int, size: int, mode: int) -> None:
        raw = name.encode("utf-8")
        flags = 0 if name.isascii() else 0x800  # the name is UTF-8
        head = (20, flags, zipfile.ZIP_DEFLATED, self._time, self._date, crc, len(deflated), size)
        self._fh.write(_LOCAL.pack(b"PK\x03\x04", *head, len(raw), 0) + raw)
        self._fh.write(deflated)
        self._central.append(
            _CENTRAL.pack(
                b"PK\x01\x02",
                (_CREATE_SYSTEM_UNIX << 8) | 20,
                *head,
                len(raw),
                0,
                0,
                0,
                0,
                mode << 16,
                self._offset,
            )
            + raw
        )
        self._offset += _LOCAL.size + len(raw) + len(deflated)

    def close(self) -> None:
        directory = b"".join(self._central)
        n = len(self._central)
        self._fh.write(directory)
        self._fh.write(_END.pack(b"PK\x05\x06", 0, 0, n, n, len(directory), self._offset, 0))


#: How far ahead of the writer the deflating may run (bytes of member data in memory).
_AHEAD = 64 << 20


def _write_raw(fh: IO[bytes], entries: list[_Entry], record: str, date_time: DateTime) -> None:
    """All entries, then RECORD: deflated on a thread pool, up to ``_AHEAD`` bytes ahead of
    the writer, and written in order; hashing overlaps the deflating."""
    zf = _RawZip(fh, date_time)
    rows: list[tuple[str, str, str]] = []
    pending: deque[tuple[_Entry, bytes, list[Future[bytes]]]] = deque()
    ahead = 0
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:

        def submit(entry: _Entry, data: bytes) -> None:
            nonlocal ahead
            view = memoryview(data)
            starts = range(0, len(data), _BLOCK) if data else range(1)
            blocks = [
                pool.submit(_deflate_block, view, start, min(start + _BLOCK, len(data)))
                for start in starts
            ]
            pending.append((entry, data, blocks))
            ahead += len(data)

        def write_next() -> None:
            nonlocal ahead
            entry, data, blocks = pending.popleft()
            digest = record_digest(hashlib.sha256(data).digest())
            crc = zlib.crc32(data)
            executable = entry.file.executable if entry.file is not None else False
            mode = _EXEC_MODE if executable else _FILE_MODE
            zf.add(entry.arcname, b"".join(f.result() for f in blocks), crc, len(data), mode)
            rows.append((entry.arcname, f"sha256={digest}", str(len(data))))
            ahead -= len(data)

        for entry in entries:
            submit(entry, _entry_bytes(entry))
            while ahead > _AHEAD:
                write_next()
        while pending:
            write_next()
        rows.append((record, "", ""))
        data = _record_bytes(rows)
        submit(_Entry(record, None, data, len(data)), data)
        write_next()
    zf.close()


def _fits_raw(entries: list[_Entry]) -> bool:
    total = sum(e.size for e in entries)
    return len(entries) < 65000 and total < _RAW_LIMIT // 2


def _record_bytes(rows: Iterable[tuple[str, str, str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=",", quotechar='"', lineterminator="\n")
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def _entries(plan: WheelPlan) -> list[_Entry]:
    """Every entry but RECORD, in archive order; source files checked and sized."""
    entries: list[_Entry] = []
    for f in plan.files:
        entries.append(_Entry(f.arcname, f, f.data, f.size()))
    for f in plan.license_files:
        entries.append(_Entry(f"{plan.dist_info}/licenses/{f.arcname}", f, f.data, f.size()))
    generated = [
        ("METADATA", plan.metadata_text()),
        ("WHEEL", "\n".join(plan.wheel_lines()) + "\n"),
    ]
    points = plan.entry_points_text()
    if points is not None:
        generated.append(("entry_points.txt", points))
    for name, text in generated:
        data = text.encode("utf-8")
        entries.append(_Entry(f"{plan.dist_info}/{name}", None, data, len(data)))
    return entries


#: The temporary files of this writer: ``.<wheel file name>.<owner tag>.tmp`` (older
#: versions used 16 random hex digits in place of the owner tag).
_TEMP_PATTERN = r"\..+\.whl\.[0-9a-f-]+\.tmp"


def _create_temp(out_dir: Path, filename: str) -> tuple[int, Path]:
    """Create ``.<filename>.<owner tag>.tmp`` in ``out_dir`` (mode 0666 less the umask),
    after removing the temporary files that writers killed earlier left there."""
    remove_stale(out_dir, _TEMP_PATTERN)
    for _ in range(100):
        path = out_dir / f".{filename}.{owner_tag()}.tmp"
        try:
            fd = os.open(
                path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666
            )
        except FileExistsError:  # pragma: no cover - 64 random bits
            continue
        return fd, path
    raise FileExistsError(f"no free temporary name in {out_dir}")  # pragma: no cover


def write_wheel(plan: WheelPlan, out_dir: Path, *, source_date_epoch: int | None = None) -> Path:
    """Write ``plan`` as ``out_dir/plan.filename`` and return that path.

    Byte-identical output for the same plan and timestamp (see :func:`zip_date_time`).
    Checks every source file first, writes into a temporary file in ``out_dir``,
    validates it with the same checks as :func:`validate_wheel`, then renames it into
    place (a new inode: a process that has the old wheel open is undisturbed). On any
    error the temporary file is removed and :class:`~nativelib.errors.WheelError` names
    the wheel. Two writers of one plan into one directory both succeed with the same
    result.
    """
    out_dir = Path(out_dir)
    final = out_dir / plan.filename
    try:
        date_time = zip_date_time(source_date_epoch)
    except WheelError as e:
        raise WheelError(str(final), f"{e.path}: {e.reason}") from e
    entries = _entries(plan)  # raises before anything is written
    return _write_archive(
        out_dir, plan.filename, entries, f"{plan.dist_info}/RECORD", date_time,
        lambda tmp: _check_wheel(tmp, plan.filename),
    )  # fmt: skip


def write_members(
    out_dir: Path,
    filename: str,
    files: Iterable[WheelFile],
    *,
    record: str,
    source_date_epoch: int | None = None,
    check: Callable[[Path], None] | None = None,
) -> Path:
    """Write a wheel from ready-made members (its METADATA and WHEEL among them) as
    ``out_dir/filename``; RECORD (the member named ``record``) is generated. Same
    guarantees as :func:`write_wheel` (deterministic, written to a temporary file,
    validated and renamed into place, removed on any error); ``check(temporary_path)``
    validates the result before the rename, by default with the checks of
    :func:`validate_wheel`.
    """
    out_dir = Path(out_dir)
    final = out_dir / filename
    try:
        date_time = zip_date_time(source_date_epoch)
    except WheelError as e:
        raise WheelError(str(final), f"{e.path}: {e.reason}") from e
    entries = [_Entry(f.arcname, f, f.data, f.size()) for f in files]
    return _write_archive(
        out_dir, filename, entries, record, date_time,
        check or (lambda tmp: _check_wheel(tmp, filename)),
    )  # fmt: skip


def _write_archive(
    out_dir: Path,
    filename: str,
    entries: list[_Entry],
    record: str,
    date_time: DateTime,
    check: Callable[[Path], None],
) -> Path:
    def fill(fh: IO[bytes]) -> None:
        if _fits_raw(entries):
            _write_raw(fh, entries, record, date_time)
        else:
            with zipfile.ZipFile(fh, "w", allowZip64=True) as zf:
                rows = [_write_entry(zf, entry, date_time) for entry in entries]
                rows.append((record, "", ""))
                data = _record_bytes(rows)
                _write_entry(zf, _Entry(record, None, data, len(data)), date_time)

    return _publish(out_dir, filename, fill, check)


def copy_wheel(source: Path, out_dir: Path, *, check: Callable[[Path], None] | None = None) -> Path:
    """Copy the wheel ``source`` unchanged to ``out_dir/source.name`` the way every wheel
    is written: into a temporary file, validated (``check``, by default the checks of
    :func:`validate_wheel`), then renamed into place. Whatever is at the final name (a
    symlink, a hard link to the source) is replaced, never written through."""
    source = Path(source)
    filename = source.name

    def fill(fh: IO[bytes]) -> None:
        with open(source, "rb") as src:
            shutil.copyfileobj(src, fh, _CHUNK)

    return _publish(
        Path(out_dir), filename, fill, check or (lambda tmp: _check_wheel(tmp, filename))
    )


def _publish(
    out_dir: Path, filename: str, fill: Callable[[IO[bytes]], None], check: Callable[[Path], None]
) -> Path:
    """The one way a wheel reaches ``out_dir/filename``: ``fill`` writes it into a new
    temporary file there, which is synced, checked with ``check(temporary path)`` and
    renamed into place; on any error (or signal) the temporary file is removed."""
    final = out_dir / filename
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(out_dir, filename)
    except OSError as e:
        raise WheelError(
            str(final), f"cannot create a temporary file in {str(out_dir)!r}: {e.strerror or e}"
        ) from e
    try:
        with os.fdopen(fd, "w+b") as fh:
            fill(fh)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            check(tmp)
        except WheelError as e:
            raise WheelError(str(final), f"the written wheel failed validation: {e.reason}") from e
        os.replace(tmp, final)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise WheelError(str(final), f"cannot write the wheel: {e}") from e
        raise
    return final
