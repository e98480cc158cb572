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
from functools import partial
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
    StoredMember,
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


Rows = list[tuple[str, str, str]]


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
    assert entry.file is not None
    if entry.file.stored is not None:
        yield from _stored_chunks(entry.file.stored)
        return
    assert entry.file.source is not None
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
        raise _changed(entry, written)


def _changed(entry: _Entry, read: int) -> WheelError:
    assert entry.file is not None
    return WheelError(
        str(entry.file.source),
        f"source of {entry.arcname!r} changed while the wheel was written: it had"
        f" {entry.size} bytes when checked and "
        + ("has more now" if read > entry.size else f"{read} when read"),
    )


def _stored_chunks(stored: StoredMember) -> Iterator[bytes]:
    """A stored member's content, inflated and checked again (the ZIP64 path, which
    writes through :mod:`zipfile` and so cannot copy compressed bytes)."""
    from nativelib.safezip import SafeZipFile, ZipMemberError, stored_crc  # noqa: PLC0415

    try:
        with SafeZipFile(stored.archive) as zf, zf.open(zf.getinfo(stored.name)) as f:
            while chunk := f.read(_CHUNK):
                yield chunk
            crc = stored_crc(f)
    except (ZipMemberError, zipfile.BadZipFile, KeyError, OSError, zlib.error) as e:
        raise WheelError(str(stored.archive), f"cannot read {stored.name!r} again: {e}") from e
    if crc != stored.stored_crc:
        raise _stored_changed(stored)


def _stored_changed(stored: StoredMember) -> WheelError:
    return WheelError(
        str(stored.archive),
        f"{stored.name}: its compressed bytes changed since they were verified",
    )


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
_SIZES = struct.Struct("<3I")  # crc, compressed size, size: at offset 14 of a local header
_UTF8 = 0x800


def _deflate_block(dictionary: bytes, data: memoryview | bytes, final: bool) -> bytes:
    """One block of a deflate stream: primed with the 32 KiB before it (``dictionary``),
    sync-flushed, or finished when it is the ``final`` one."""
    if dictionary:
        c = zlib.compressobj(
            COMPRESSLEVEL, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, dictionary
        )
    else:
        c = zlib.compressobj(COMPRESSLEVEL, zlib.DEFLATED, -15)
    out = c.compress(data)
    return out + c.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)


class _RawZip:
    """Writes a zip whose members are already compressed (no ZIP64: see ``_RAW_LIMIT``):
    :meth:`add` when the sizes and CRC are known before the data (a stored member being
    copied, a one-block member), :meth:`start` ... :meth:`end` when they are known after
    it (the local header is then patched)."""

    def __init__(self, fh: IO[bytes], date_time: DateTime) -> None:
        self._fh = fh
        self._offset = 0
        self._central: list[bytes] = []
        self._open: tuple[bytes, int, int, int, int] | None = None
        self._written = 0
        y, mo, d, h, mi, sec = date_time
        self._time = (h << 11) | (mi << 5) | (sec // 2)
        self._date = ((y - 1980) << 9) | (mo << 5) | d

    def start(
        self, name: str, method: int, mode: int, crc: int = 0, csize: int = 0, size: int = 0
    ) -> None:
        raw = name.encode("utf-8")
        flags = 0 if name.isascii() else _UTF8
        head = (20, flags, method, self._time, self._date, crc, csize, size)
        self._fh.write(_LOCAL.pack(b"PK\x03\x04", *head, len(raw), 0) + raw)
        self._open = (raw, flags, method, mode, self._offset)
        self._offset += _LOCAL.size + len(raw)
        self._written = 0

    def write(self, data: bytes | memoryview) -> None:
        self._fh.write(data)
        self._offset += len(data)
        self._written += len(data)

    def end(self, crc: int, size: int, *, patch: bool = True) -> None:
        assert self._open is not None
        raw, flags, method, mode, at = self._open
        csize = self._written
        if patch:
            self._fh.seek(at + 14)
            self._fh.write(_SIZES.pack(crc, csize, size))
            self._fh.seek(self._offset)
        head = (20, flags, method, self._time, self._date, crc, csize, size)
        version = (_CREATE_SYSTEM_UNIX << 8) | 20
        self._central.append(
            _CENTRAL.pack(b"PK\x01\x02", version, *head, len(raw), 0, 0, 0, 0, mode << 16, at) + raw
        )
        self._open = None

    def add(self, name: str, deflated: bytes, crc: int, size: int, mode: int) -> None:
        self.start(name, zipfile.ZIP_DEFLATED, mode, crc, len(deflated), size)
        self.write(deflated)
        self.end(crc, size, patch=False)

    def close(self) -> None:
        directory = b"".join(self._central)
        n = len(self._central)
        self._fh.write(directory)
        self._fh.write(_END.pack(b"PK\x05\x06", 0, 0, n, n, len(directory), self._offset, 0))


class _Sources:
    """The archives stored members are copied from, each opened once."""

    def __init__(self) -> None:
        self._fds: dict[Path, int] = {}

    def fd(self, stored: StoredMember) -> int:
        fd = self._fds.get(stored.archive)
        if fd is None:
            try:
                fd = os.open(stored.archive, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise WheelError(str(stored.archive), f"cannot open: {e.strerror or e}") from e
            self._fds[stored.archive] = fd
        return fd

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _copy_stored(zf: _RawZip, sources: _Sources, arcname: str, stored: StoredMember,
                 mode: int) -> None:  # fmt: skip
    """Copy a member's compressed bytes as they are, from its local header's data on:
    the header must name the member, and the bytes must be the ones verified (their
    CRC-32 is ``stored.stored_crc``)."""
    fd = sources.fd(stored)
    where = str(stored.archive)
    at = stored.header_offset
    try:
        head = os.pread(fd, _LOCAL.size, at)
        if len(head) != _LOCAL.size or head[:4] != b"PK\x03\x04":
            raise WheelError(where, f"{stored.name}: no local header at offset {at}")
        fields = _LOCAL.unpack(head)
        flags, name_len, extra_len = fields[2], fields[-2], fields[-1]
        raw_name = os.pread(fd, name_len, at + _LOCAL.size)
        name = raw_name.decode("utf-8" if flags & _UTF8 else "cp437", "replace")
        if name != stored.name:
            raise WheelError(
                where, f"{stored.name}: its local header names {name!r}: the archive changed"
            )
        pos = at + _LOCAL.size + name_len + extra_len
        zf.start(arcname, stored.method, mode, stored.crc, stored.compress_size, stored.file_size)
        left = stored.compress_size
        crc = 0
        while left:
            chunk = os.pread(fd, min(_CHUNK, left), pos)
            if not chunk:
                raise WheelError(where, f"{stored.name}: the archive ends inside its data")
            crc = zlib.crc32(chunk, crc)
            zf.write(chunk)
            pos += len(chunk)
            left -= len(chunk)
    except OSError as e:
        raise WheelError(where, f"{stored.name}: cannot read: {e.strerror or e}") from e
    if crc != stored.stored_crc:
        raise _stored_changed(stored)
    zf.end(stored.crc, stored.file_size, patch=False)


def _blocks(entry: _Entry) -> Iterator[tuple[bytes, memoryview | bytes, bool]]:
    """``(dictionary, block, final)`` for each ``_BLOCK``-sized block of an entry, read
    one block at a time (a source file is never in memory whole); a source whose size
    differs from the one checked is an error."""
    if entry.data is not None:
        view = memoryview(entry.data)
        n = len(view)
        for start in range(0, n, _BLOCK) if n else range(1):
            end = min(start + _BLOCK, n)
            yield bytes(view[max(0, start - _DEFLATE_WINDOW) : start]), view[start:end], end == n
        return
    assert entry.file is not None
    fd, _ = _open_source(entry.file)
    try:
        done = 0
        previous = b""
        while True:
            want = min(_BLOCK, entry.size - done)
            parts = []
            got = 0
            while got < want and (chunk := os.read(fd, want - got)):
                parts.append(chunk)
                got += len(chunk)
            block = b"".join(parts)
            done += got
            if got < want:
                raise _changed(entry, done)
            final = done == entry.size
            if final and os.read(fd, 1):
                raise _changed(entry, done + 1)
            yield previous[-_DEFLATE_WINDOW:], block, final
            if final:
                return
            previous = block
    finally:
        os.close(fd)


def _add_whole(
    zf: _RawZip, rows: Rows, name: str, job: Future[bytes], crc: int, size: int, mode: int,
    row: tuple[str, str, str],
) -> None:  # fmt: skip
    zf.add(name, job.result(), crc, size, mode)
    rows.append(row)


def _write_job(zf: _RawZip, job: Future[bytes]) -> None:
    zf.write(job.result())


def _end_streamed(zf: _RawZip, rows: Rows, crc: int, size: int, row: tuple[str, str, str]) -> None:
    zf.end(crc, size)
    rows.append(row)


def _add_stored(
    zf: _RawZip, rows: Rows, sources: _Sources, name: str, stored: StoredMember, mode: int
) -> None:
    _copy_stored(zf, sources, name, stored, mode)
    rows.append((name, stored.record_hash, str(stored.file_size)))


#: How far ahead of the writer the deflating may run (bytes of member data in memory).
_AHEAD = 64 << 20


def _write_raw(fh: IO[bytes], entries: list[_Entry], record: str, date_time: DateTime) -> None:
    """All entries, then RECORD, in order. A stored member (``WheelFile.stored``) is copied
    compressed as it is; every other entry is deflated block by block on a thread pool,
    up to ``_AHEAD`` bytes ahead of the writer, and hashed as it is read: memory stays
    bounded whatever the size of a member."""
    zf = _RawZip(fh, date_time)
    rows: list[tuple[str, str, str]] = []
    pending: deque[tuple[int, Callable[[], None]]] = deque()  # (bytes held, write it)
    ahead = 0
    sources = _Sources()

    def write_next() -> None:
        nonlocal ahead
        held, action = pending.popleft()
        action()
        ahead -= held

    def deflate(pool: ThreadPoolExecutor, entry: _Entry) -> None:
        nonlocal ahead
        executable = entry.file.executable if entry.file is not None else False
        mode = _EXEC_MODE if executable else _FILE_MODE
        name, size = entry.arcname, entry.size
        sha = hashlib.sha256()
        crc = 0
        first = True
        for dictionary, block, final in _blocks(entry):
            sha.update(block)
            crc = zlib.crc32(block, crc)
            job = pool.submit(_deflate_block, dictionary, block, final)
            row = (name, f"sha256={record_digest(sha.digest())}", str(size))
            if first and final:  # one block: the header is written whole
                add = partial(_add_whole, zf, rows, name, job, crc, size, mode, row)
                pending.append((len(block), add))
            else:
                if first:
                    pending.append((0, partial(zf.start, name, zipfile.ZIP_DEFLATED, mode)))
                pending.append((len(block), partial(_write_job, zf, job)))
                if final:
                    pending.append((0, partial(_end_streamed, zf, rows, crc, size, row)))
            first = False
            ahead += len(block)
            while ahead > _AHEAD:
                write_next()

    try:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            for entry in entries:
                stored = entry.file.stored if entry.file is not None else None
                if stored is None:
                    deflate(pool, entry)
                    continue
                executable = entry.file is not None and entry.file.executable
                mode = _EXEC_MODE if executable else _FILE_MODE
                copy = partial(_add_stored, zf, rows, sources, entry.arcname, stored, mode)
                pending.append((0, copy))
            while pending:
                write_next()
            rows.append((record, "", ""))
            data = _record_bytes(rows)
            deflate(pool, _Entry(record, None, data, len(data)))
            while pending:
                write_next()
    finally:
        sources.close()
    zf.close()


def _fits_raw(entries: list[_Entry]) -> bool:
    """Whether the wheel can be written without ZIP64: fewer than 65000 members, each
    under ``_RAW_LIMIT``, and the archive too (stored members count their compressed
    size, the others their size: deflate grows nothing by more than a few bytes a block)."""
    total = 0
    for e in entries:
        if e.size >= _RAW_LIMIT:
            return False
        stored = e.file.stored if e.file is not None else None
        total += stored.compress_size if stored is not None else e.size + e.size // 256
        total += 2 * len(e.arcname.encode()) + 128
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

    A member given as ``WheelFile(stored=...)`` (a member of another wheel that
    :func:`~nativelib.wheelfile.read.read_wheel` verified) is copied compressed, byte for
    byte, without being inflated or deflated again; its RECORD row is the one it had. The
    default check verifies such a member by its stored bytes (their CRC-32 is the one
    verified when it was read; its sizes, CRC and RECORD row are the input's) instead of
    inflating it again; every other member is inflated and hashed.
    """
    out_dir = Path(out_dir)
    final = out_dir / filename
    try:
        date_time = zip_date_time(source_date_epoch)
    except WheelError as e:
        raise WheelError(str(final), f"{e.path}: {e.reason}") from e
    entries = [_Entry(f.arcname, f, f.data, f.size()) for f in files]
    # (the ZIP64 path inflates stored members and deflates them again: they are checked
    # like the others)
    copied = {e.arcname: e.file.stored for e in entries if e.file and e.file.stored}
    if not _fits_raw(entries):
        copied = {}
    return _write_archive(
        out_dir, filename, entries, record, date_time,
        check or (lambda tmp: _check_wheel(tmp, filename, copied=copied)),
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
