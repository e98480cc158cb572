"""A reproducible writer and a strict validator of runtime wheels.

Plan, then apply. A :class:`WheelPlan` is a checked value: building one rejects a bad
name, version, tag, requirement or licence expression, unsafe or duplicate archive
names and anything that would collide with the ``.dist-info`` directory, so a plan that
exists can be printed (:meth:`WheelPlan.describe`, for ``--plan``) and written.
:func:`write_wheel` then checks that every source file is a regular file, writes the
wheel into a temporary sibling of its final name, validates the result with
:func:`validate_wheel` and only then renames it into place; on any error the temporary
file is deleted and nothing is left in the output directory.

Runtime wheels install into platlib (``Root-Is-Purelib: false``): they hold shared
libraries. The archive is reproducible: entries are sorted (``.dist-info`` last, RECORD
very last), every entry has the same timestamp (``SOURCE_DATE_EPOCH``, clamped into the
DOS date range, else 1980-01-01 00:00:00), fixed Unix modes (0644, or 0755 for
executables), ``create_system`` 3 and deflate at level 6. Nothing depends on the umask,
the time zone, the current time, source file mtimes or the order files were given in.

:func:`validate_wheel` is also meant for wheels built by others (repair, inspection): it
checks the file name, the zip structure, the one ``.dist-info`` directory, the WHEEL file,
RECORD against every member's contents (with ``installer``) and METADATA (with
``packaging.metadata``), and reports the first problem as a
:class:`~nativelib.errors.WheelError` with a precise reason.
"""

from __future__ import annotations

import calendar
import contextlib
import csv
import email.parser
import hashlib
import io
import os
import re
import secrets
import stat
import struct
import time
import unicodedata
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression
from packaging.metadata import ExceptionGroup, InvalidMetadata, Metadata
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, parse_tag
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

import nativelib
from nativelib.errors import WheelError
from nativelib.prefix import record_digest

__all__ = [
    "COMPRESSLEVEL",
    "DEFAULT_DATE_TIME",
    "DateTime",
    "WheelFile",
    "WheelPlan",
    "validate_wheel",
    "write_members",
    "write_wheel",
    "zip_date_time",
]

#: A zip entry's timestamp: (year, month, day, hour, minute, second).
DateTime = tuple[int, int, int, int, int, int]

#: Deflate level of every entry, zlib's own default. Measured on libstdc++.so.6 (2.2 MB)
#: and libLLVM-15.so (117 MB): level 9 is 0.2-0.3 points smaller (34.2 % vs 34.4 %,
#: 29.4 % vs 29.6 %) for 3.6-4x the time; level 1 is 4 points bigger.
COMPRESSLEVEL = 6
#: The timestamp of every entry when neither ``source_date_epoch`` nor
#: ``$SOURCE_DATE_EPOCH`` is given: the earliest a zip file can store.
DEFAULT_DATE_TIME: DateTime = (1980, 1, 1, 0, 0, 0)
#: The range a DOS date can hold, as Unix times (UTC). Seconds are stored halved, so the
#: last representable second is :58.
_MIN_EPOCH = calendar.timegm((1980, 1, 1, 0, 0, 0))
_MAX_EPOCH = calendar.timegm((2107, 12, 31, 23, 59, 58))

_FILE_MODE = 0o100644
_EXEC_MODE = 0o100755
_CREATE_SYSTEM_UNIX = 3
_CHUNK = 1 << 20

# PEP 508 / core metadata: a distribution name.
_NAME_RE = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
# One member of a compressed tag set component, as the filenames of wheels spell them.
_TAG_PART_RE = re.compile(r"^[a-z0-9_]+$")
_WHEEL_VERSION_RE = re.compile(r"^\s*(\d+)\.(\d+)\s*$")
_CONTENT_TYPES = ("text/plain", "text/x-rst", "text/markdown")
# Characters that end a line for str.splitlines() (and so for RECORD and METADATA readers).
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


# --------------------------------------------------------------------------- values


def _arcname_problem(arcname: str) -> str | None:
    """Why ``arcname`` cannot name a file inside a wheel, or None if it can."""
    if not isinstance(arcname, str) or not arcname:
        return "an archive name must be a non-empty string"
    if "\\" in arcname:
        return "an archive name must use '/' and contain no backslash"
    if arcname.startswith("/"):
        return "an archive name must be relative, not absolute"
    if any(ord(c) < 0x20 or c == "\x7f" or c in _LINE_BREAKS for c in arcname):
        return "an archive name must not contain control characters or line breaks"
    try:
        arcname.encode("utf-8")
    except UnicodeEncodeError:
        return "an archive name must be valid Unicode (no lone surrogates)"
    parts = arcname.split("/")
    if "" in parts:
        return "an archive name must not have empty components ('//' or a trailing '/')"
    if ".." in parts:
        return "an archive name must not contain '..' components"
    if "." in parts:
        return "an archive name must not contain '.' components"
    return None


@dataclass(frozen=True)
class WheelFile:
    """One file of a wheel: its archive name and where its bytes come from.

    ``arcname`` is a relative POSIX path (for a licence file: the path below
    ``.dist-info/licenses/``). Exactly one of ``data`` (the bytes) and ``source`` (a
    regular file, read when the wheel is written) is given. ``executable`` selects mode
    0755 instead of 0644.
    """

    arcname: str
    data: bytes | None = None
    source: Path | None = None
    executable: bool = False

    def __post_init__(self) -> None:
        problem = _arcname_problem(self.arcname)
        if problem is not None:
            raise WheelError(repr(self.arcname), problem)
        if (self.data is None) == (self.source is None):
            raise WheelError(repr(self.arcname), "exactly one of data and source must be given")
        if self.data is not None and not isinstance(self.data, bytes):
            object.__setattr__(self, "data", bytes(self.data))
        if self.source is not None and not isinstance(self.source, Path):
            object.__setattr__(self, "source", Path(self.source))

    def size(self) -> int:
        """Size in bytes (for a source file: as it is now)."""
        if self.data is not None:
            return len(self.data)
        fd, size = _open_source(self)
        os.close(fd)
        return size


def _single_line(label: str, what: str, value: str) -> None:
    if not isinstance(value, str):
        raise WheelError(label, f"{what} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise WheelError(label, f"{what} must not be empty")
    if any(c in _LINE_BREAKS for c in value):
        raise WheelError(label, f"{what} must be a single line: {value!r}")


def _check_unique_paths(label: str, names: Iterable[str], duplicate: str, shadow: str) -> None:
    """Archive names must be unique after NFC normalisation, and no name may also be the
    directory of another; the messages are ``duplicate``/``shadow`` formatted with
    ``name``, ``other`` and ``parent``."""
    seen: dict[str, str] = {}
    for name in names:
        key = unicodedata.normalize("NFC", name)
        if key in seen:
            raise WheelError(label, duplicate.format(name=name, other=seen[key]))
        seen[key] = name
    for key, name in seen.items():
        parts = key.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in seen:
                raise WheelError(label, shadow.format(parent=seen[parent], name=name))


@dataclass(frozen=True)
class WheelPlan:
    """Everything a wheel will hold, checked; build it, print it, then write it.

    Construction validates and normalizes: ``version`` becomes its normalized form,
    ``requires_dist`` the normalized requirement strings, ``license_expression`` its
    canonical form, and ``files`` / ``license_files`` are sorted by archive name so the
    order they were given in never matters. Any problem raises
    :class:`~nativelib.errors.WheelError` naming the plan.

    ``files`` install below site-packages (platlib). ``license_files`` go to
    ``<dist-info>/licenses/<arcname>`` and are listed as ``License-File: <arcname>``.
    ``tag`` is one tag or a compressed tag set (``py3-none-manylinux_2_17_x86_64.
    manylinux2014_x86_64``), written as given in the file name and expanded to one
    ``Tag:`` line per tag in WHEEL.
    """

    name: str
    version: str
    tag: str
    files: tuple[WheelFile, ...]
    summary: str
    requires_dist: tuple[str, ...] = ()
    license_files: tuple[WheelFile, ...] = ()
    license_expression: str | None = None
    requires_python: str | None = None
    project_urls: tuple[tuple[str, str], ...] = ()
    classifiers: tuple[str, ...] = ()
    description: str | None = None
    description_content_type: str | None = None
    tags: tuple[Tag, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        label = f"wheel plan {self.name!r} {self.version!r}"
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise WheelError(
                label,
                f"invalid distribution name {self.name!r}: letters, digits, '.', '-' and"
                " '_' only, starting and ending with a letter or digit",
            )
        try:
            version = str(Version(self.version))
        except (InvalidVersion, TypeError) as e:
            raise WheelError(label, f"invalid version {self.version!r}: {e}") from e
        object.__setattr__(self, "version", version)
        label = self._label

        object.__setattr__(self, "tags", _parse_tag(label, self.tag))
        _single_line(label, "summary", self.summary)

        requires = []
        for text in self.requires_dist:
            try:
                requires.append(str(Requirement(text)))
            except InvalidRequirement as e:
                raise WheelError(label, f"invalid requirement {text!r}: {e}") from e
        object.__setattr__(self, "requires_dist", tuple(requires))

        if self.requires_python is not None:
            _single_line(label, "Requires-Python", self.requires_python)
            try:
                SpecifierSet(self.requires_python)
            except InvalidSpecifier as e:
                raise WheelError(
                    label, f"invalid Requires-Python {self.requires_python!r}: {e}"
                ) from e

        if self.license_expression is not None:
            try:
                expression = str(canonicalize_license_expression(self.license_expression))
            except InvalidLicenseExpression as e:
                raise WheelError(
                    label, f"invalid license expression {self.license_expression!r}: {e}"
                ) from e
            object.__setattr__(self, "license_expression", expression)

        urls = tuple((str(k), str(v)) for k, v in self.project_urls)
        for key, url in urls:
            _single_line(label, "a Project-URL label", key)
            _single_line(label, "a Project-URL", url)
            if "," in key:
                raise WheelError(label, f"a Project-URL label must not contain ',': {key!r}")
        object.__setattr__(self, "project_urls", urls)
        object.__setattr__(self, "classifiers", tuple(self.classifiers))
        for classifier in self.classifiers:
            _single_line(label, "a classifier", classifier)
        if (
            self.description_content_type is not None
            and self.description_content_type.split(";")[0].strip() not in _CONTENT_TYPES
        ):
            raise WheelError(
                label,
                f"invalid Description-Content-Type {self.description_content_type!r}:"
                f" one of {', '.join(_CONTENT_TYPES)} (with parameters) expected",
            )
        if self.description_content_type is not None:
            _single_line(label, "Description-Content-Type", self.description_content_type)

        files = tuple(sorted(self.files, key=lambda f: f.arcname))
        licenses = tuple(sorted(self.license_files, key=lambda f: f.arcname))
        object.__setattr__(self, "files", files)
        object.__setattr__(self, "license_files", licenses)
        self._check_arcnames()

    # ------------------------------------------------------------------ names

    @property
    def _label(self) -> str:
        return f"wheel plan {self.name} {self.version}"

    @property
    def escaped_name(self) -> str:
        """The distribution name as file names spell it: ``nativelib_cxx14``."""
        return canonicalize_name(self.name).replace("-", "_")

    @property
    def dist_info(self) -> str:
        """The name of the ``.dist-info`` directory."""
        return f"{self.escaped_name}-{self.version}.dist-info"

    @property
    def filename(self) -> str:
        """``<name>-<version>-<tag>.whl``, the name escaped as PEP 427/491 say."""
        return f"{self.escaped_name}-{self.version}-{self.tag}.whl"

    def _check_arcnames(self) -> None:
        label = self._label
        for f in self.files:
            top = f.arcname.split("/", 1)[0]
            if top == self.dist_info:
                raise WheelError(
                    label,
                    f"{f.arcname!r} collides with the .dist-info directory {self.dist_info!r}"
                    " (licence files go in license_files)",
                )
            if top.lower().endswith(".dist-info"):
                raise WheelError(
                    label, f"{f.arcname!r} would make a second .dist-info directory {top!r}"
                )
            if top.lower().endswith(".data"):
                raise WheelError(
                    label,
                    f"{f.arcname!r} is inside a .data directory, which this writer does not"
                    " support (every file installs to platlib)",
                )
        _check_unique_paths(
            label,
            (f.arcname for f in self.files),
            "duplicate archive name {name!r} (also given as {other!r})",
            "{parent!r} is a file and also the directory of {name!r}",
        )
        _check_unique_paths(
            label,
            (f.arcname for f in self.license_files),
            "duplicate licence file {name!r} (also given as {other!r})",
            "licence file {parent!r} is also the directory of {name!r}",
        )

    # ------------------------------------------------------------------ contents

    @property
    def metadata_version(self) -> str:
        """2.4 when a licence expression or licence files are declared, else 2.1."""
        return "2.4" if self.license_expression or self.license_files else "2.1"

    def metadata_lines(self) -> list[str]:
        """The header lines of METADATA, in order (without the description body)."""
        lines = [
            f"Metadata-Version: {self.metadata_version}",
            f"Name: {self.name}",
            f"Version: {self.version}",
            f"Summary: {self.summary}",
        ]
        if self.license_expression is not None:
            lines.append(f"License-Expression: {self.license_expression}")
        lines += [f"License-File: {f.arcname}" for f in self.license_files]
        lines += [f"Project-URL: {key}, {url}" for key, url in self.project_urls]
        lines += [f"Classifier: {c}" for c in self.classifiers]
        if self.requires_python is not None:
            lines.append(f"Requires-Python: {self.requires_python}")
        lines += [f"Requires-Dist: {r}" for r in self.requires_dist]
        if self.description_content_type is not None:
            lines.append(f"Description-Content-Type: {self.description_content_type}")
        return lines

    def metadata_text(self) -> str:
        text = "\n".join(self.metadata_lines()) + "\n"
        if self.description is not None:
            text += "\n" + self.description
        return text

    def wheel_lines(self) -> list[str]:
        """The lines of the WHEEL file."""
        return [
            "Wheel-Version: 1.0",
            f"Generator: nativelib {nativelib.__version__}",
            "Root-Is-Purelib: false",
            *(f"Tag: {t}" for t in self.tags),
        ]

    def describe(self) -> str:
        """A human-readable account of the wheel, for ``--plan``.

        Every file with its size and mode, the licence files, the tags and the METADATA
        and WHEEL lines. Reads the size of each source file; a missing source file raises
        :class:`~nativelib.errors.WheelError` as :func:`write_wheel` would.
        """
        entries = [(f.arcname, f) for f in self.files]
        entries += [(f"{self.dist_info}/licenses/{f.arcname}", f) for f in self.license_files]
        sizes = [f.size() for _, f in entries]
        width = max([len(str(s)) for s in sizes] + [1])
        out = [
            f"wheel {self.filename}",
            f"  tag {self.tag}:",
            *(f"    {t}" for t in self.tags),
            f"  files ({len(entries)}, {sum(sizes)} bytes):",
        ]
        for (arcname, f), size in zip(entries, sizes, strict=True):
            mode = "0755" if f.executable else "0644"
            origin = "" if f.source is None else f"  <- {f.source}"
            out.append(f"    {size:>{width}}  {mode}  {arcname}{origin}")
        out.append(f"  {self.dist_info}/METADATA:")
        out += [f"    {line}" for line in self.metadata_lines()]
        if self.description is not None:
            n = len(self.description.splitlines())
            out.append(f"    (description: {n} line{'s' if n != 1 else ''})")
        out.append(f"  {self.dist_info}/WHEEL:")
        out += [f"    {line}" for line in self.wheel_lines()]
        return "\n".join(out) + "\n"


def _parse_tag(label: str, tag: str) -> tuple[Tag, ...]:
    """Check a tag or compressed tag set and expand it, in the order it is written."""
    if not isinstance(tag, str):
        raise WheelError(label, f"invalid tag {tag!r}: not a string")
    components = tag.split("-")
    if len(components) != 3:
        raise WheelError(label, f"invalid tag {tag!r}: expected interpreter-abi-platform (3 parts)")
    for component in components:
        for part in component.split("."):
            if not _TAG_PART_RE.match(part):
                raise WheelError(
                    label,
                    f"invalid tag {tag!r}: {part!r} is not made of lowercase letters,"
                    " digits and '_'",
                )
    for part in components[0].split("."):
        if not part[0].isalpha():
            raise WheelError(
                label, f"invalid tag {tag!r}: interpreter {part!r} must start with a letter"
            )
    try:
        parsed = parse_tag(tag)
    except ValueError as e:  # pragma: no cover - the checks above are stricter than packaging's
        raise WheelError(label, f"invalid tag {tag!r}: {e}") from e
    interpreters, abis, platforms = (c.split(".") for c in components)
    expanded: list[Tag] = []
    for interpreter in interpreters:
        for abi in abis:
            for platform in platforms:
                t = Tag(interpreter, abi, platform)
                if t not in expanded:
                    expanded.append(t)
    assert set(expanded) == parsed
    return tuple(expanded)


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


def _open_source(f: WheelFile) -> tuple[int, int]:
    """Open a source file for reading: (fd, size). Refuses anything but a regular file.

    O_NONBLOCK so that a FIFO cannot hang the writer; it is then refused like a directory.
    """
    assert f.source is not None
    where = f"source of {f.arcname!r}"
    try:
        fd = os.open(f.source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise WheelError(str(f.source), f"{where} does not exist") from None
    except OSError as e:
        raise WheelError(str(f.source), f"{where} cannot be opened: {e.strerror}") from e
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise WheelError(str(f.source), f"{where} is not a regular file ({_kind(st.st_mode)})")
    return fd, st.st_size


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    # A socket cannot be opened at all (ENXIO): "cannot be opened" says so earlier.
    return f"mode {mode:#o}"  # pragma: no cover - nothing else can be opened


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
    for name, text in (
        ("METADATA", plan.metadata_text()),
        ("WHEEL", "\n".join(plan.wheel_lines()) + "\n"),
    ):
        data = text.encode("utf-8")
        entries.append(_Entry(f"{plan.dist_info}/{name}", None, data, len(data)))
    return entries


def _create_temp(out_dir: Path, filename: str) -> tuple[int, Path]:
    """Create ``.<filename>.<random>.tmp`` in ``out_dir`` (mode 0666 less the umask)."""
    for _ in range(100):
        path = out_dir / f".{filename}.{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
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
    guarantees as :func:`write_wheel` (deterministic, written to a temporary file and
    renamed into place, removed on any error); ``check(temporary_path)`` validates the
    result before the rename.
    """
    out_dir = Path(out_dir)
    final = out_dir / filename
    try:
        date_time = zip_date_time(source_date_epoch)
    except WheelError as e:
        raise WheelError(str(final), f"{e.path}: {e.reason}") from e
    entries = [_Entry(f.arcname, f, f.data, f.size()) for f in files]
    return _write_archive(out_dir, filename, entries, record, date_time, check or (lambda _p: None))


def _write_archive(
    out_dir: Path,
    filename: str,
    entries: list[_Entry],
    record: str,
    date_time: DateTime,
    check: Callable[[Path], None],
) -> Path:
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
            if _fits_raw(entries):
                _write_raw(fh, entries, record, date_time)
            else:
                with zipfile.ZipFile(fh, "w", allowZip64=True) as zf:
                    rows = [_write_entry(zf, entry, date_time) for entry in entries]
                    rows.append((record, "", ""))
                    data = _record_bytes(rows)
                    _write_entry(zf, _Entry(record, None, data, len(data)), date_time)
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


# --------------------------------------------------------------------------- validating


def validate_wheel(path: Path) -> None:
    """Check a wheel file; raise :class:`~nativelib.errors.WheelError` on the first problem.

    In order: the file name parses (``packaging.utils.parse_wheel_filename``); the file is
    a zip whose member names are safe and unique; it has exactly one ``.dist-info``
    directory, matching the file name's name and version; WHEEL says Wheel-Version 1.x;
    RECORD lists every member with a matching sha256 and size (``installer``'s
    ``validate_record(validate_contents=True)``) and nothing that is not a member;
    METADATA is valid core metadata (``packaging.metadata``, validated) whose Name and
    Version match the file name.
    """
    path = Path(path)
    _check_wheel(path, path.name)


def _check_wheel(path: Path, filename: str) -> None:
    """validate_wheel for the file at ``path`` as if it were named ``filename``."""
    where = str(path.parent / filename)
    try:
        name, version, _build, _tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as e:
        raise WheelError(where, f"invalid wheel file name: {e}") from e
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise WheelError(where, f"not a zip file: {e}") from e
    except OSError as e:
        raise WheelError(where, f"cannot open: {e.strerror or e}") from e
    with zf:
        zf.filename = filename  # installer reads the name and version from it
        try:
            dist_info = _check_structure(zf, where, name, version)
            _check_record(zf, where, dist_info)
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


def _check_record(zf: zipfile.ZipFile, where: str, dist_info: str) -> None:
    record_text = _read_member(zf, where, f"{dist_info}/RECORD")
    # installer (the build extra) only here: repair writes wheels in a base install and
    # checks them with its own RECORD reader.
    from installer.sources import WheelFile as _InstallerWheelFile  # noqa: PLC0415

    source = _InstallerWheelFile(zf)
    try:
        source.validate_record(validate_contents=True)
    except _InstallerWheelFile.validation_error as e:
        prefix = f"In {zf.filename}, "
        issues = [str(i) for i in getattr(e, "issues", [e])]
        issues = [i[len(prefix) :] if i.startswith(prefix) else i for i in issues]
        raise WheelError(where, f"RECORD check failed: {'; '.join(issues)}") from e
    # installer does not report RECORD lines for files that are not in the archive.
    members = {m for m in zf.namelist() if not m.endswith("/")}
    for row in csv.reader(record_text.splitlines()):
        if row and row[0] not in members:
            raise WheelError(where, f"RECORD lists {row[0]!r}, which is not in the wheel")


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
