"""RECORD: the one reader of a wheel's (or an installed distribution's) RECORD file.

Used by the validator (:mod:`.validate`), repair's reader (:mod:`.read`) and the doctor,
so it imports the standard library only, and little of it (no ``packaging``, no
``zipfile``: the doctor must stay light).

The rules, the strictest each earlier copy had:

- every row has exactly three fields (a blank line is a row with none) and a non-empty
  path; no path is listed twice;
- a hash is ``<algorithm>=<urlsafe base64 digest>`` with a strong algorithm (sha256 or
  stronger: md5 and sha1 are refused), and a row with a hash has a size, in ASCII digits;
- in a wheel (:func:`check_listing`): every file is listed, RECORD itself without a hash
  or a size, a signature of RECORD (``RECORD.jws``, ``RECORD.p7s`` in ``.dist-info``) not
  at all, every other file with both; nothing is listed that is not in the archive;
- the content of each file matches its hash and size (:func:`verify_members`).

Problems are :class:`~nativelib.errors.WheelError` naming the wheel (or RECORD file) and
the line.
"""

from __future__ import annotations

import csv
import os
import posixpath
import re
from typing import NamedTuple

from nativelib.errors import WheelError
from nativelib.prefix import record_digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    import zipfile
    from collections.abc import Callable, Container, Iterable, Iterator, Mapping
    from contextlib import AbstractContextManager
    from typing import BinaryIO

__all__ = [
    "HASHES",
    "SIGNATURES",
    "RecordRow",
    "check_listing",
    "is_signature",
    "parse_record",
    "record_lists",
    "record_path_set",
    "record_paths",
    "record_top_runs",
    "record_well_formed",
    "verify_members",
]

#: The hash algorithms RECORD may use: sha256 or stronger (hashlib names).
HASHES = ("sha256", "sha384", "sha512", "blake2b", "sha3_256", "sha3_384", "sha3_512")
#: Signatures of RECORD: in the .dist-info directory, never listed in RECORD.
SIGNATURES = ("RECORD.jws", "RECORD.p7s")
_CHUNK = 1 << 20


class RecordRow(NamedTuple):
    """One RECORD row: ``algorithm`` and ``digest`` are None when the row has no hash."""

    path: str
    algorithm: str | None
    digest: str | None  # urlsafe base64, no padding, as RECORD spells it
    size: int | None
    line: int


#: csv's own field limit: a longer field is an error (through the csv path below).
_CSV_FIELD_LIMIT = 131072


def _rows(text: str, where: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each line. Lines without quotes, NULs or over-long fields
    (every line pip writes for ordinary paths) are split on commas, as csv would split
    them, at a fraction of its cost; any other text goes through :mod:`csv` whole."""
    lines = text.splitlines()
    if '"' not in text and "\x00" not in text and all(len(x) <= _CSV_FIELD_LIMIT for x in lines):
        yield from enumerate((line.split(",") if line else [] for line in lines), start=1)
        return
    reader = csv.reader(lines)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:  # a field over csv's limit (128 KiB), a NUL byte, ...
            raise WheelError(where, f"RECORD line {reader.line_num}: cannot parse: {e}") from e
        yield reader.line_num, row


def record_paths(text: str, where: str) -> list[str]:
    """The paths a RECORD lists, split as :func:`parse_record` splits them, without
    checking the hashes and sizes: for finding which distribution owns a file (the
    doctor asks this of torch's ~15,000 rows). A row that has no path is left out."""
    return [row[0] for _n, row in _rows(text, where) if row and row[0]]


def record_path_set(raw: bytes, where: str) -> set[bytes]:
    """The paths a RECORD lists, as UTF-8 bytes, for the doctor's map of who owns each file
    of a site directory (every RECORD of torch's environment: ~30,000 rows): one split per
    line, on bytes, where :func:`_rows` would split on commas (no quotes, no NULs: every
    RECORD pip writes for ordinary paths); paths spelled another way (``./x``, ``a//x``)
    normalized. Raises :class:`UnicodeDecodeError` or
    :class:`~nativelib.errors.WheelError` where the rows had to be parsed."""
    if b'"' in raw or b"\x00" in raw:
        return {p.encode("utf-8") for p in record_paths(raw.decode("utf-8"), where)}
    paths = {line.partition(b",")[0].rstrip(b"\r") for line in raw.split(b"\n")}
    paths.discard(b"")
    if b"/./" in raw or b"//" in raw or raw.startswith(b"./") or b"\n./" in raw:
        odd = {p for p in paths if b"./" in p or b"//" in p}
        paths = (paths - odd) | {posixpath.normpath(p) for p in odd}
    return paths


def record_top_runs(raw: bytes) -> dict[bytes, tuple[int, int]] | None:
    """The top-level names a RECORD's paths start with (``torch/``, ``six.py,``, ``../``),
    each with the byte range of ``raw`` holding all its lines, found by bisection (pip
    writes RECORD sorted) and checked with two counts per range, so that only the lines
    under a name another RECORD has too are split (with :func:`record_path_set`): torch's
    RECORD has ~15,000 lines and 5 names. None where that cannot be done: the lines of one
    name not together, a quoted path, or one starting ``./`` or ``/`` (then split the
    whole RECORD)."""
    out: dict[bytes, tuple[int, int]] = {}
    pos, size = 0, len(raw)
    while pos < size:
        eol = raw.find(b"\n", pos)
        line_end = size if eol < 0 else eol
        slash, comma = raw.find(b"/", pos, line_end), raw.find(b",", pos, line_end)
        cut = min(c for c in (slash, comma, line_end) if c >= 0)
        top = raw[pos : cut + 1]
        if top in out or top in (b"/", b"./") or top.startswith(b'"'):
            return None  # the name's lines in two runs; a path spelled another way
        # Bisect for the last byte whose line starts with the name.
        low, high = pos, size
        while high - low > 1:
            mid = (low + high) // 2
            if raw.startswith(top, raw.rfind(b"\n", pos, mid) + 1 or pos):
                low = mid
            else:
                high = mid
        end = raw.find(b"\n", low)
        end = size if end < 0 else end
        lines = raw.count(b"\n", pos, end)
        if lines and raw.count(b"\n" + top, pos, end) != lines:
            return None  # another name's lines in between: not sorted
        out[top] = (pos, end)
        pos = end + 1
    return out


def record_lists(raw: bytes, path: str) -> bool | None:
    """Whether the RECORD bytes ``raw`` list ``path`` (as written) in a row of their own,
    decided without parsing every row when :func:`_rows` would split them on commas (no
    quotes, no NULs: every RECORD pip writes for ordinary paths); None when it cannot be
    decided that way (then parse)."""
    if b'"' in raw or b"\x00" in raw:
        return None
    needle = path.encode("utf-8") + b","
    return raw.startswith(needle) or any((sep + needle) in raw for sep in _LINE_BREAKS)


#: What ends a line for ``str.splitlines()``, as UTF-8 bytes.
_LINE_BREAKS = tuple(c.encode("utf-8") for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def _row_pattern() -> re.Pattern[str]:
    """A row :func:`parse_record` accepts, once split on commas: a path, then a hash
    (``algorithm=digest``, a listed algorithm) with a size in ASCII digits, or no hash
    and an optional size."""
    algorithms = "|".join(HASHES)
    return re.compile(f"[^,]+,(?:(?:{algorithms})=[^,]+,[0-9]+|,[0-9]*)")


_ROW = _row_pattern()


def record_well_formed(text: str) -> bool | None:
    """Whether :func:`parse_record` would accept ``text``, decided by one pattern per
    line (several times cheaper than building the rows) when :func:`_rows` would split
    it on commas; None when it cannot be decided that way (then parse)."""
    lines = text.splitlines()
    if '"' in text or "\x00" in text or any(len(x) > _CSV_FIELD_LIMIT for x in lines):
        return None
    match = _ROW.fullmatch
    if not all(map(match, lines)):
        return False
    return len({line.partition(",")[0] for line in lines}) == len(lines)


def parse_record(text: str, where: str) -> dict[str, RecordRow]:
    """RECORD rows by path, in file order; :class:`~nativelib.errors.WheelError` on the
    first malformed row (``where`` names the wheel or the file)."""
    rows: dict[str, RecordRow] = {}
    new = tuple.__new__  # RecordRow's own __new__ is Python code: 4x the cost per row
    hashes = frozenset(HASHES)
    for n, row in _rows(text, where):
        if len(row) != 3:
            raise WheelError(where, f"RECORD line {n}: expected 3 fields, found {len(row)}")
        path, hashed, size_text = row
        if not path or path in rows:
            what = "the path is empty" if not path else f"{path!r} is listed twice"
            raise WheelError(where, f"RECORD line {n}: {what}")
        if not hashed and not size_text:
            rows[path] = new(RecordRow, (path, None, None, None, n))
            continue
        algorithm = digest = None
        if hashed:
            algorithm, sep, digest = hashed.partition("=")
            if not sep or not digest or not algorithm:
                raise WheelError(
                    where, f"RECORD line {n}: hash {hashed!r} of {path!r} is not 'sha256=...'"
                )
            if algorithm not in hashes:
                raise WheelError(
                    where,
                    f"RECORD line {n}: hash algorithm {algorithm!r} of {path!r} is not allowed "
                    f"(one of {', '.join(HASHES)})",
                )
        if not (size_text.isascii() and size_text.isdigit()):
            raise WheelError(
                where, f"RECORD line {n}: size {size_text!r} of {path!r} is not a number"
            )
        rows[path] = new(RecordRow, (path, algorithm, digest, int(size_text), n))
    return rows


def is_signature(name: str, dist_info: str) -> bool:
    """Whether an archive member is a signature of RECORD (never listed in it)."""
    return posixpath.dirname(name) == dist_info and posixpath.basename(name) in SIGNATURES


def check_listing(
    rows: Mapping[str, RecordRow], files: Iterable[str], dist_info: str, where: str
) -> None:
    """The wheel's files (no directories) against its RECORD rows, before any hashing."""
    files = list(files)
    present = set(files)
    for listed in rows:
        if listed not in present:
            raise WheelError(where, f"RECORD lists {listed!r}, which is not in the wheel")
    record_name = f"{dist_info}/RECORD"
    for name in files:
        row = rows.get(name)
        if is_signature(name, dist_info):
            if row is not None:
                raise WheelError(
                    where, f"RECORD lists {name!r}, a signature of RECORD itself, which it must not"
                )
            continue
        if row is None:
            raise WheelError(
                where,
                f"{name} is not mentioned in RECORD: a member that is not listed in RECORD "
                "cannot be verified",
            )
        if name == record_name:
            if row.algorithm is not None or row.size is not None:
                raise WheelError(
                    where, f"RECORD line {row.line}: RECORD's own row has a hash or a size"
                )
        elif row.algorithm is None or row.size is None:
            raise WheelError(where, f"RECORD line {row.line}: no hash or no size for {name!r}")


#: Members are verified on this many threads when there is this much to inflate (zlib
#: and hashlib release the GIL): the largest members first, each thread in archive order.
_THREADS = 4
_PARALLEL_BYTES = 64 << 20


def verify_members(
    zf: zipfile.ZipFile,
    rows: Mapping[str, RecordRow],
    where: str,
    open_out: Callable[[zipfile.ZipInfo, bytes], BinaryIO | None] | None = None,
    *,
    skip: Container[str] = (),
) -> list[tuple[zipfile.ZipInfo, int, int | None]]:
    """Hash every file RECORD gives a hash for (after :func:`check_listing`), but those in
    ``skip``, each streamed once; ``open_out(info, first_chunk)`` is asked once the first
    chunk is read, and the member is copied into the file it returns (if any). Returns
    ``(info, size, stored_crc)`` of each in archive order (RECORD and its signatures left
    out; ``stored_crc``: the CRC-32 of its stored bytes when ``zf`` is a
    :class:`~nativelib.safezip.SafeZipFile`, else None). Reading errors of the zip
    (``BadZipFile``, ``zlib.error``, ``EOFError``, ``OSError``) are the caller's.

    Large archives are verified on a few threads (the members split by size, each thread
    in archive order); the error raised is the one of the first bad member in archive
    order, as one thread would have found it."""
    todo = []
    for info in zf.infolist():
        row = rows.get(info.filename)
        if info.is_dir() or row is None or row.algorithm is None or info.filename in skip:
            continue
        todo.append((info, row))
    threads = min(_THREADS, os.cpu_count() or 1)
    if threads < 2 or sum(i.file_size for i, _ in todo) < _PARALLEL_BYTES:
        return [_verify_one(zf, info, row, where, open_out) for info, row in todo]
    import threading  # noqa: PLC0415
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    # zipfile's reads are locked, but its count of open members is not: opening and
    # closing are serialised here.
    lock = threading.Lock()

    groups: list[list[int]] = [[] for _ in range(threads)]
    loads = [0] * threads
    for index in sorted(range(len(todo)), key=lambda k: -todo[k][0].file_size):
        least = loads.index(min(loads))
        groups[least].append(index)
        loads[least] += todo[index][0].file_size
    results: dict[int, tuple[zipfile.ZipInfo, int, int | None]] = {}
    failures: dict[int, BaseException] = {}

    def run(group: list[int]) -> None:
        for index in sorted(group):
            with lock:
                if failures and min(failures) < index:
                    return  # an earlier member failed: this one's result cannot matter
            info, row = todo[index]
            try:
                results[index] = _verify_one(zf, info, row, where, open_out, lock)
            except BaseException as e:  # (re-raised below, in archive order)
                with lock:
                    failures[index] = e
                return

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for job in [pool.submit(run, g) for g in groups if g]:
            job.result()
    if failures:
        raise failures[min(failures)]
    return [results[k] for k in range(len(todo))]


def _verify_one(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    row: RecordRow,
    where: str,
    open_out: Callable[[zipfile.ZipInfo, bytes], BinaryIO | None] | None,
    lock: AbstractContextManager[object] | None = None,
) -> tuple[zipfile.ZipInfo, int, int | None]:
    import contextlib  # noqa: PLC0415 (not at import time: the doctor's start-up)
    import hashlib  # noqa: PLC0415

    assert row.algorithm is not None
    guard = lock if lock is not None else contextlib.nullcontext()
    h = hashlib.new(row.algorithm)
    done = 0
    out = None
    with guard:
        stream = zf.open(info)
    try:
        chunk = stream.read(_CHUNK)
        out = open_out(info, chunk) if open_out is not None else None
        while chunk:
            h.update(chunk)
            done += len(chunk)
            if out is not None:
                out.write(chunk)
            chunk = stream.read(_CHUNK)
        # safezip's stream knows the CRC-32 of the stored bytes it read
        stored = getattr(getattr(stream, "raw", None), "stored_crc", None)
    finally:
        try:
            if out is not None:
                out.close()
        finally:
            with guard:
                stream.close()
    name = info.filename
    if record_digest(h.digest()) != row.digest:
        raise WheelError(
            where,
            f"hash / size of {name} didn't match RECORD: its {row.algorithm} does not match "
            "RECORD's",
        )
    if done != row.size:
        raise WheelError(
            where,
            f"hash / size of {name} didn't match RECORD: it has {done} bytes, RECORD says "
            f"{row.size}",
        )
    return info, done, stored if isinstance(stored, int) else None
