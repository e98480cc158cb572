"""Read upstream binary packages as one small protocol, and extract them safely.

Five kinds of package are read: Debian ``.deb`` (an ar archive holding ``data.tar.*``),
``.rpm`` (our own reader of the lead, the headers and the cpio "newc" payload), wheels
(``.whl``, zip), ``.conda`` (a zip holding ``pkg-*.tar.zst``) and conda ``.tar.bz2``. Each
is an :class:`Archive`: ``info()`` gives the package's metadata as a :class:`PackageInfo`
and ``members()`` yields the payload's members, in archive order, as ``(Member, stream)``
pairs. Tar members are read by our own small reader, not :mod:`tarfile`: it bounds the
size of every extended header it keeps in memory and reports a damaged header instead of
silently ending the archive there.

Every member, whatever the format, passes the same checks (:func:`check_member`) before
anything is written for it; the whole archive is rejected with an
:class:`~nativelib.errors.UnsafeArchiveError` naming the archive and the member when one
fails:

- its name is empty, holds a NUL byte or a backslash, is absolute, has a ``..``
  component (even one that would not escape: real packages never need one), a component
  longer than 255 bytes, or repeats an earlier member's name;
- a parent component is an earlier symlink (the member would be written through it) or
  an earlier file;
- it is a link named ``.`` (the destination root itself);
- it is a symlink with an empty or absolute target, or one whose target, resolved
  lexically from the link's directory, leaves the root, or goes up (``..``) from
  anything but a directory already extracted (so that no later symlink can turn an
  innocent-looking target into one that escapes);
- it is a hard link to anything but an earlier regular file;
- it is a device, FIFO, socket or an unknown member type, or has setuid, setgid or
  sticky bits;
- the archive has more than :attr:`Limits.max_members` members, or a file is larger
  than :attr:`Limits.max_member_size`, or the files together exceed
  :attr:`Limits.max_total_size`. Sizes are counted on the bytes actually read, so a
  header that under-states a member's size changes nothing.

A corrupt, truncated or unsupported archive raises :class:`~nativelib.errors.SourceError`
naming it. :func:`extract` writes into a fresh temporary sibling of the destination and
renames it into place only when every member was written; on any error the temporary
directory is removed and the destination is left as it was.
"""

from __future__ import annotations

import bz2
import contextlib
import enum
import errno
import gzip
import io
import json
import lzma
import os
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from typing import IO, TYPE_CHECKING, Protocol

import zstandard

from nativelib.errors import SourceError, UnsafeArchiveError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "DEFAULT_LIMITS",
    "Archive",
    "CheckState",
    "CondaArchive",
    "CondaTarBz2Archive",
    "DebArchive",
    "Limits",
    "Member",
    "MemberKind",
    "PackageInfo",
    "PackagePath",
    "RpmArchive",
    "WheelArchive",
    "check_member",
    "extract",
    "info_files",
    "iter_members",
    "open_archive",
]

# -- the model ------------------------------------------------------------------------


class MemberKind(enum.Enum):
    """What a member is. Only the first four are ever extracted."""

    FILE = "file"
    DIR = "directory"
    SYMLINK = "symlink"
    HARDLINK = "hard link"
    CHARDEV = "character device"
    BLOCKDEV = "block device"
    FIFO = "FIFO"
    SOCKET = "socket"
    UNKNOWN = "member of an unsupported type"


_SPECIAL_KINDS = frozenset(
    {MemberKind.CHARDEV, MemberKind.BLOCKDEV, MemberKind.FIFO, MemberKind.SOCKET}
)


@dataclass(frozen=True)
class Member:
    """One member of an archive's payload.

    From :meth:`Archive.members`, ``name`` and ``linkname`` are as stored in the archive
    (``./usr/lib/libfoo.so.1``). From :func:`check_member`, :func:`iter_members` and
    :func:`extract` they are normalized: a relative POSIX path without ``./`` or a
    trailing ``/``, and for a hard link ``linkname`` is the normalized name of the
    regular file it links to. ``mode`` holds the permission bits (``0o7777``); ``size``
    is the size the header claims, for files only (0 otherwise); ``linkname`` is the
    target of a symlink as stored, or the file a hard link links to, and None otherwise.
    """

    name: str
    kind: MemberKind
    mode: int
    size: int = 0
    linkname: str | None = None


@dataclass(frozen=True)
class PackagePath:
    """One entry of a conda package's ``info/paths.json``."""

    path: str
    path_type: str
    sha256: str | None
    size: int | None


@dataclass(frozen=True)
class PackageInfo:
    """What a package says about itself.

    ``kind`` is ``"deb"``, ``"rpm"``, ``"wheel"`` or ``"conda"`` (``.conda`` and
    ``.tar.bz2`` alike); ``arch`` is the Debian architecture, the RPM arch, the conda
    subdir or the wheel's platform tags joined with ``.``. ``license`` is the declared
    licence where the format has one (Debian ships its licence as
    ``usr/share/doc/<package>/copyright`` inside the payload). ``extra`` holds the
    other metadata fields, e.g. the RPM release, the conda build string or the deb's
    ``Source`` and ``Multi-Arch``; ``paths`` is a conda package's ``info/paths.json``.
    """

    kind: str
    name: str
    version: str
    license: str | None
    arch: str | None
    extra: Mapping[str, str] = field(default_factory=dict, hash=False)
    paths: tuple[PackagePath, ...] = ()


class Archive(Protocol):
    """An upstream package read as a sequence of members.

    ``members()`` yields the payload (the deb's ``data.tar``, the RPM's cpio, the conda
    ``pkg`` component, all of a wheel) in archive order, names as stored and unchecked:
    use :func:`iter_members` or :func:`extract`, which check every member. The stream is
    given for files only and is valid until the next item is asked for. Both methods
    raise :class:`~nativelib.errors.SourceError` for a corrupt or truncated archive.
    """

    @property
    def path(self) -> str: ...

    def info(self) -> PackageInfo: ...

    def members(self) -> Iterator[tuple[Member, IO[bytes] | None]]: ...


@dataclass(frozen=True)
class Limits:
    """Bounds on what one archive may hold; sizes count the bytes actually read."""

    max_members: int = 100_000
    max_member_size: int = 4 << 30
    max_total_size: int = 16 << 30


DEFAULT_LIMITS = Limits()

# -- checking members -----------------------------------------------------------------

_MAX_COMPONENT = 255  # NAME_MAX
_MAX_PATH = 4095  # PATH_MAX - 1


@dataclass
class CheckState:
    """What :func:`check_member` has accepted so far in one archive.

    ``kinds`` maps each accepted (normalized) name to its kind, ``dirs`` holds every
    directory that exists once those members are written (explicit ones and the
    parents of every member), ``links`` maps hard links to the file they link to.
    """

    limits: Limits = DEFAULT_LIMITS
    members: int = 0
    total_size: int = 0
    kinds: dict[str, MemberKind] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    links: dict[str, str] = field(default_factory=dict)


def _name_problem(name: str) -> str | None:
    """Why ``name`` can never be a member name, or None."""
    if not name:
        return "empty name"
    if "\0" in name:
        return "NUL byte in name"
    if "\\" in name:
        return "backslash in name"
    if name.startswith("/"):
        return "absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "'..' component in name"
    if len(name.encode("utf-8", "surrogateescape")) > _MAX_PATH:
        return f"name longer than {_MAX_PATH} bytes"
    if any(len(p.encode("utf-8", "surrogateescape")) > _MAX_COMPONENT for p in parts):
        return f"name component longer than {_MAX_COMPONENT} bytes"
    return None


def _name_parts(name: str) -> list[str]:
    """The components of a name that passed :func:`_name_problem` (``.`` and ``//`` dropped)."""
    return [p for p in name.split("/") if p not in ("", ".")]


def _symlink_problem(dir_parts: list[str], target: str | None, state: CheckState) -> str | None:
    """Why a symlink in ``dir_parts`` pointing at ``target`` is unsafe, or None.

    The target is resolved lexically from the link's directory. Going up is allowed only
    from directories that are known to be real: the link's own parents (members are
    never written through symlinks) and directories already accepted (they can never be
    replaced). A ``..`` after anything else could be turned into an escape by a symlink
    that a later member puts there, so it is rejected.
    """
    if not target:
        return "empty symlink target"
    if "\0" in target:
        return "NUL byte in symlink target"
    if target.startswith("/"):
        return f"absolute symlink target {target!r}"
    if len(target.encode("utf-8", "surrogateescape")) > _MAX_PATH:
        return f"symlink target longer than {_MAX_PATH} bytes"
    here = list(dir_parts)
    real = [True] * len(here)
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not here:
                return f"symlink target {target!r} points outside the destination"
            if not real[-1]:
                return (
                    f"symlink target {target!r} goes up from {'/'.join(here)!r}, which is not "
                    "a directory extracted before it"
                )
            here.pop()
            real.pop()
        else:
            here.append(part)
            real.append("/".join(here) in state.dirs)
    return None


def check_member(archive_path: str, member: Member, state: CheckState) -> Member | None:
    """Check one member against everything accepted before it; record it in ``state``.

    Returns the member with its name (and a hard link's target) normalized, or None for
    an entry naming the root directory itself (``./`` in a deb's data.tar), which has
    nothing to extract. Raises :class:`~nativelib.errors.UnsafeArchiveError` naming
    ``archive_path`` and the member's stored name. The module docstring lists the rules.
    """
    limits = state.limits

    def fail(reason: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(archive_path, member.name, reason)

    state.members += 1
    if state.members > limits.max_members:
        raise fail(f"the archive has more than {limits.max_members} members (max_members)")
    problem = _name_problem(member.name)
    if problem:
        raise fail(problem)
    parts = _name_parts(member.name)
    if not parts:
        if member.kind is MemberKind.DIR:
            return None
        raise fail(f"a {member.kind.value} naming the destination root itself")
    kind = member.kind
    if kind in _SPECIAL_KINDS or kind is MemberKind.UNKNOWN:
        raise fail(f"is a {kind.value}")
    if kind is not MemberKind.SYMLINK and member.mode & 0o7000:
        raise fail(f"setuid, setgid or sticky bit set (mode {member.mode & 0o7777:#o})")
    name = "/".join(parts)
    for i in range(1, len(parts)):
        parent = "/".join(parts[:i])
        parent_kind = state.kinds.get(parent)
        if parent_kind is MemberKind.SYMLINK:
            raise fail(f"would be written through the symlink {parent!r}")
        if parent_kind is MemberKind.FILE or parent_kind is MemberKind.HARDLINK:
            raise fail(f"its parent {parent!r} is a file, not a directory")
    if name in state.kinds:
        raise fail(f"duplicate member name {name!r}")
    if name in state.dirs and kind is not MemberKind.DIR:
        raise fail(f"{name!r} is already a directory")
    linkname: str | None = None
    size = 0
    if kind is MemberKind.SYMLINK:
        problem = _symlink_problem(parts[:-1], member.linkname, state)
        if problem:
            raise fail(problem)
        linkname = member.linkname
    elif kind is MemberKind.HARDLINK:
        target = member.linkname or ""
        problem = _name_problem(target)
        if problem:
            raise fail(f"hard link target {target!r}: {problem}")
        target_name = "/".join(_name_parts(target))
        target_kind = state.kinds.get(target_name)
        if target_kind is not MemberKind.FILE and target_kind is not MemberKind.HARDLINK:
            raise fail(f"hard link to {target!r}, which is not an earlier regular file")
        linkname = state.links.get(target_name, target_name)
        state.links[name] = linkname
    elif kind is MemberKind.FILE:
        if member.size > limits.max_member_size:
            raise fail(
                f"{member.size} bytes, more than the limit of {limits.max_member_size}"
                " (max_member_size)"
            )
        size = member.size
    state.kinds[name] = kind
    if kind is MemberKind.DIR:
        state.dirs.add(name)
    for i in range(1, len(parts)):
        state.dirs.add("/".join(parts[:i]))
    return Member(name, kind, member.mode & 0o7777, size, linkname)


class _Counted(io.RawIOBase):
    """A member's stream that enforces the size limits on the bytes actually read.

    No file yields more bytes than its header claims, and :func:`check_member` already
    held the claim to ``max_member_size``: together they bound each member. The total
    is counted here across members.
    """

    def __init__(self, inner: IO[bytes], archive: str, member: Member, state: CheckState):
        self._inner = inner
        self._archive = archive
        self._member = member
        self._state = state
        self._count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        data = self._inner.read(len(view))
        n = len(data)
        view[:n] = data
        self._count += n
        self._state.total_size += n
        limits = self._state.limits
        name = self._member.name
        if self._count > self._member.size:
            raise UnsafeArchiveError(
                self._archive,
                name,
                f"holds more data than its header says ({self._member.size} bytes)",
            )
        if self._state.total_size > limits.max_total_size:
            raise UnsafeArchiveError(
                self._archive,
                name,
                f"the files extracted so far exceed the limit of {limits.max_total_size} bytes"
                " (max_total_size)",
            )
        if n == 0 and len(view) and self._count < self._member.size:
            raise SourceError(
                self._archive,
                f"member {name!r} ends after {self._count} of its {self._member.size} bytes",
            )
        return n


def iter_members(
    archive: Archive, *, limits: Limits = DEFAULT_LIMITS
) -> Generator[tuple[Member, IO[bytes] | None], None, None]:
    """Yield the checked, normalized members of ``archive`` with their streams.

    Every member goes through :func:`check_member` before it is yielded; file streams
    enforce ``limits`` on the bytes actually read. The root directory entry is skipped.
    For builders that read members straight from the stream, without extracting.
    """
    state = CheckState(limits)
    items = archive.members()
    try:
        for raw, stream in items:
            member = check_member(archive.path, raw, state)
            if member is None:
                continue
            if member.kind is MemberKind.FILE and stream is not None:
                counted = _Counted(stream, archive.path, raw, state)
                yield member, io.BufferedReader(counted, 1 << 16)
            else:
                yield member, None
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


# -- extraction -----------------------------------------------------------------------

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_dir(root_fd: int, parts: list[str]) -> int:
    """A new descriptor of the directory ``parts`` below ``root_fd``, made as needed.

    Each component is opened with O_NOFOLLOW, so a symlink on the way is an error
    rather than followed.
    """
    fd = os.dup(root_fd)
    try:
        for part in parts:
            try:
                sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=fd)
                sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.fchmod(sub, 0o755)
            os.close(fd)
            fd = sub
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_member(
    archive: str,
    root_fd: int,
    member: Member,
    stream: IO[bytes] | None,
    written: set[str],
) -> None:
    parts = member.name.split("/")
    parent_fd = _open_dir(root_fd, parts[:-1])
    base = parts[-1]
    try:
        if member.kind is MemberKind.FILE:
            fd = os.open(base, _FILE_FLAGS, 0o600, dir_fd=parent_fd)
            with open(fd, "wb") as out:
                if stream is not None:
                    while chunk := stream.read(1 << 20):
                        out.write(chunk)
                os.fchmod(out.fileno(), 0o755 if member.mode & 0o111 else 0o644)
            written.add(member.name)
        elif member.kind is MemberKind.DIR:
            # It may exist already, made as the parent of an earlier member.
            with contextlib.suppress(FileExistsError):
                os.mkdir(base, 0o755, dir_fd=parent_fd)
            fd = os.open(base, _DIR_FLAGS, dir_fd=parent_fd)
            try:
                os.fchmod(fd, 0o755)
            finally:
                os.close(fd)
        elif member.kind is MemberKind.SYMLINK:
            assert member.linkname is not None
            os.symlink(member.linkname, base, dir_fd=parent_fd)
        elif member.kind is MemberKind.HARDLINK:
            assert member.linkname is not None
            if member.linkname not in written:
                raise SourceError(
                    archive,
                    f"member {member.name!r} is a hard link to {member.linkname!r},"
                    " which select() left out",
                )
            os.link(
                member.linkname,
                base,
                src_dir_fd=root_fd,
                dst_dir_fd=parent_fd,
                follow_symlinks=False,
            )
            written.add(member.name)
    finally:
        os.close(parent_fd)


def _check_destination(dest: str) -> None:
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode) and not os.listdir(dest):
        return
    raise FileExistsError(errno.EEXIST, "destination exists and is not an empty directory", dest)


def extract(
    archive: Archive | str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    limits: Limits = DEFAULT_LIMITS,
    select: Callable[[Member], bool] | None = None,
) -> list[Member]:
    """Extract the payload of ``archive`` to the new directory ``dest``; return what was written.

    ``dest`` must not exist, or be an empty directory (not a symlink to one), else
    :class:`FileExistsError`. Members are written into a temporary directory next to
    ``dest`` and that directory is renamed to ``dest`` at the end, so ``dest`` never
    holds a partial extraction. Files get mode 0o644, or 0o755 when the archive gives
    them any execute bit; directories 0o755; symlinks are made as symlinks. ``select``,
    given a checked member, says whether to write it; every member is checked either way.

    Raises :class:`~nativelib.errors.UnsafeArchiveError` for a member that fails a check
    and :class:`~nativelib.errors.SourceError` for a corrupt archive; either way the
    temporary directory is removed and ``dest`` is as it was. A process killed meanwhile
    leaves only the temporary directory, ``.<dest name>.*.partial``, never a partial
    ``dest``.
    """
    arc = open_archive(archive) if isinstance(archive, (str, os.PathLike)) else archive
    dest_path = os.path.abspath(os.fspath(dest))
    _check_destination(dest_path)
    parent, base = os.path.split(dest_path)
    tmp = tempfile.mkdtemp(prefix=f".{base}.", suffix=".partial", dir=parent)
    done: list[Member] = []
    try:
        root_fd = os.open(tmp, _DIR_FLAGS)
        try:
            written: set[str] = set()
            items = iter_members(arc, limits=limits)
            try:
                for member, stream in items:
                    if select is not None and not select(member):
                        continue
                    _write_member(arc.path, root_fd, member, stream, written)
                    done.append(member)
            finally:
                items.close()
        finally:
            os.close(root_fd)
        os.chmod(tmp, 0o755)
        os.replace(tmp, dest_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return done


# -- shared reading helpers -----------------------------------------------------------


class _Source(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Corrupt(Exception):
    """Raised by the parsers; turned into a SourceError naming the archive."""


#: What the decompressors and parsers raise on damaged input.
_CORRUPT_ERRORS: tuple[type[BaseException], ...] = (
    _Corrupt,
    OSError,
    EOFError,
    ValueError,
    struct.error,
    zlib.error,
    lzma.LZMAError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,
    zstandard.ZstdError,
)

_MAX_LINK_DATA = _MAX_PATH
_MAX_TRAILER = 1 << 20
_CHUNK = 1 << 16


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, _Corrupt):
        return text
    return f"corrupt or truncated: {text or type(exc).__name__}"


def _read_exact(src: _Source, n: int, what: str) -> bytes:
    parts: list[bytes] = []
    left = n
    while left:
        chunk = src.read(min(left, _CHUNK))
        if not chunk:
            got = n - left
            raise _Corrupt(f"truncated: {what} ends after {got} of {n} bytes")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _skip(src: _Source, n: int, what: str) -> None:
    left = n
    while left:
        chunk = src.read(min(left, _CHUNK))
        if not chunk:
            raise _Corrupt(f"truncated: {what} ends {left} bytes early")
        left -= len(chunk)


def _drain_zeros(src: _Source, what: str) -> None:
    """Read ``src`` to its end (so decompressors check their trailers); allow only zeros."""
    seen = 0
    while chunk := src.read(_CHUNK):
        seen += len(chunk)
        if chunk.count(0) != len(chunk):
            raise _Corrupt(f"unexpected data after the end of the {what}")
        if seen > _MAX_TRAILER:
            raise _Corrupt(f"more than {_MAX_TRAILER} bytes of padding after the {what}")


class _Span(io.RawIOBase):
    """Exactly ``size`` bytes of ``src``; ending early is an error."""

    def __init__(self, src: _Source, size: int, what: str):
        self._src = src
        self.left = size
        self._what = what

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self.left)
        if n <= 0:
            return 0
        data = self._src.read(n)
        if not data:
            raise _Corrupt(f"truncated: {self._what} ends {self.left} bytes early")
        view[: len(data)] = data
        self.left -= len(data)
        return len(data)


class _MemberData(io.RawIOBase):
    """A file member's bytes, handed out by ``members()`` and valid until the next item.

    Read errors (a truncated or damaged archive) become a SourceError naming the
    archive and the member.
    """

    def __init__(self, src: _Source, size: int, archive: str, name: str):
        self._span = _Span(src, size, f"member {name!r}")
        self._archive = archive
        self._name = name
        self._expired = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        if self._expired:
            raise ValueError(f"the stream of member {self._name!r} was read after the next item")
        try:
            return self._span.readinto(buffer)
        except _CORRUPT_ERRORS as e:
            raise SourceError(self._archive, f"member {self._name!r}: {_describe(e)}") from e

    def finish(self, skip: bool = True) -> None:
        """Expire the stream; skip what the consumer did not read."""
        self._expired = True
        if skip:
            while self._span.left:  # _Span raises when the data ends early
                self._span.read(min(self._span.left, _CHUNK))


def _open_file(path: str) -> IO[bytes]:
    try:
        return open(path, "rb")
    except OSError as e:
        raise SourceError(path, f"cannot open: {e.strerror or e}") from e


class _ZstdReader(io.RawIOBase):
    """A zstd stream that, unlike ``zstandard``'s stream reader, notices truncation.

    Input goes in 1 KiB at a time, which bounds what one step can expand to (tens of
    MiB at zstd's highest ratio); concatenated frames are read one after another.
    """

    _STEP = 1024

    def __init__(self, src: _Source):
        self._src = src
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._in_frame = False
        self._buf = b""
        self._pos = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def _feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        while data:
            self._in_frame = True
            out.append(self._obj.decompress(data))
            if not self._obj.eof:
                break
            data = self._obj.unused_data
            self._obj = self._dctx.decompressobj()
            self._in_frame = False
        return b"".join(out)

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        while self._pos >= len(self._buf):
            if self._done:
                return 0
            data = self._src.read(self._STEP)
            if not data:
                if self._in_frame:
                    raise EOFError("zstd stream ends in the middle of a frame")
                self._done = True
                return 0
            self._buf = self._feed(data)
            self._pos = 0
        n = min(len(view), len(self._buf) - self._pos)
        view[:n] = self._buf[self._pos : self._pos + n]
        self._pos += n
        return n


def _decompressed(src: IO[bytes], method: str) -> _Source:
    """``src`` decompressed; ``method`` is one the callers' tables map to, else "none"."""
    if method == "gzip":
        return gzip.GzipFile(fileobj=src, mode="rb")
    if method in ("xz", "lzma"):
        return lzma.LZMAFile(src)
    if method == "bzip2":
        return bz2.BZ2File(src)
    if method == "zstd":
        return io.BufferedReader(_ZstdReader(src), _CHUNK)
    return src


# -- tar ------------------------------------------------------------------------------

_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)
_MAX_TAR_META = 1 << 20  # one pax header or GNU long name
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
    there silently). Extended headers are bounded by ``_MAX_TAR_META``.
    """
    global_pax: dict[str, str] = {}
    pax: dict[str, str] = {}
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
            data = _read_exact(src, size, f"extended header at {where}")
            _skip(src, padded - size, f"extended header at {where}")
            offset += padded
            if typeflag == b"x":
                pax.update(_pax_records(data, where))
            elif typeflag == b"g":
                global_pax.update(_pax_records(data, where))
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
        fields = {**global_pax, **pax}
        name = fields.get("path", name)
        linkname = fields.get("linkpath", linkname)
        if "size" in fields:
            text = fields["size"]
            if not text.isdigit():
                raise _Corrupt(f"bad pax size {text!r} at {where}")
            size = int(text)
            padded = size + (-size) % _BLOCK
        pax = {}
        long_name = long_link = None
        mode = _tar_number(block[100:108], "mode", where) & 0o7777
        kind = _TAR_KINDS.get(typeflag, MemberKind.UNKNOWN)
        if typeflag == b"\0" and name.endswith("/"):
            kind = MemberKind.DIR
        if any(key.startswith("GNU.sparse.") for key in fields):
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


# -- .deb -----------------------------------------------------------------------------

_AR_MAGIC = b"!<arch>\n"
_DEB_COMPRESSION = {
    "": "none",
    ".gz": "gzip",
    ".xz": "xz",
    ".lzma": "lzma",
    ".zst": "zstd",
    ".bz2": "bzip2",
}


@dataclass(frozen=True)
class _ArMember:
    name: str
    offset: int
    size: int


def _deb_parts(f: IO[bytes]) -> tuple[_ArMember, _ArMember]:
    """The control and data members of a deb, checked for the layout dpkg requires."""
    if f.read(len(_AR_MAGIC)) != _AR_MAGIC:
        raise _Corrupt("not a Debian package: no ar archive magic")
    end = os.fstat(f.fileno()).st_size
    pos = len(_AR_MAGIC)
    found: list[_ArMember] = []
    control: _ArMember | None = None
    data: _ArMember | None = None
    while pos < end:
        f.seek(pos)
        header = f.read(60)
        if len(header) < 60:
            raise _Corrupt(f"truncated: ar header at offset {pos}")
        if header[58:60] != b"`\n":
            raise _Corrupt(f"bad ar header at offset {pos}")
        name = header[:16].rstrip(b" ").decode("ascii", "replace")
        if name.endswith("/") and name not in ("/", "//"):
            name = name[:-1]
        size_text = header[48:58].strip()
        if not size_text.isdigit():
            raise _Corrupt(f"bad ar member size {size_text!r} at offset {pos}")
        member = _ArMember(name, pos + 60, int(size_text))
        if member.offset + member.size > end:
            raise _Corrupt(
                f"truncated: ar member {name!r} ({member.size} bytes) ends past the end of the file"
            )
        pos = member.offset + member.size + (member.size & 1)
        if not found:
            if name != "debian-binary":
                raise _Corrupt(f"the first ar member is {name!r}, not 'debian-binary'")
            f.seek(member.offset)
            if not f.read(min(member.size, 16)).startswith(b"2."):
                raise _Corrupt("unsupported deb format version in 'debian-binary'")
        elif name.startswith("_"):
            pass  # dpkg ignores members named _*
        elif name.startswith("control.tar") and name[11:] in _DEB_COMPRESSION:
            if control is not None or data is not None:
                raise _Corrupt(f"unexpected ar member {name!r}")
            control = member
        elif name.startswith("data.tar") and name[8:] in _DEB_COMPRESSION:
            if control is None or data is not None:
                raise _Corrupt(f"unexpected ar member {name!r}")
            data = member
        else:
            raise _Corrupt(f"unexpected ar member {name!r}")
        found.append(member)
    if control is None or data is None:
        missing = "control.tar" if control is None else "data.tar"
        raise _Corrupt(f"no {missing} member")
    return control, data


def _ar_tar(
    f: IO[bytes], member: _ArMember, archive: str
) -> Iterator[tuple[Member, IO[bytes] | None]]:
    f.seek(member.offset)
    span = io.BufferedReader(_Span(f, member.size, f"ar member {member.name!r}"), _CHUNK)
    ext = member.name[member.name.index(".tar") + 4 :]
    return _tar_members(_decompressed(span, _DEB_COMPRESSION[ext]), archive, member.name)


def _parse_control(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        if line[0] in " \t":
            if current is None:
                raise _Corrupt("control file starts with a continuation line")
            fields[current] += "\n" + line[1:]
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            raise _Corrupt(f"bad line in control file: {line!r}")
        current = key.strip()
        fields[current] = value.strip()
    return fields


class _FileArchive:
    """What every kind shares: the package's path (what errors name)."""

    def __init__(self, path: str):
        self._path = path

    @property
    def path(self) -> str:
        return self._path


class DebArchive(_FileArchive):
    """A Debian binary package; the payload is ``data.tar.*``."""

    def info(self) -> PackageInfo:
        try:
            with _open_file(self._path) as f:
                control, _ = _deb_parts(f)
                text: bytes | None = None
                items = _ar_tar(f, control, self._path)
                for member, stream in _metadata_members(items, control.name):
                    if member.kind is MemberKind.FILE and _normalized(member.name) == "control":
                        text = _read_small(stream, member, 1 << 20)
                        break
            if text is None:
                raise _Corrupt(f"no 'control' file in {control.name}")
            fields = _parse_control(text.decode("utf-8"))
        except _CORRUPT_ERRORS as e:
            raise SourceError(self._path, _describe(e)) from e
        for required in ("Package", "Version", "Architecture"):
            if not fields.get(required):
                raise SourceError(self._path, f"control file has no {required!r} field")
        extra = {k: v for k, v in fields.items() if k not in ("Package", "Version", "Architecture")}
        return PackageInfo(
            "deb", fields["Package"], fields["Version"], None, fields["Architecture"], extra
        )

    def members(self) -> Iterator[tuple[Member, IO[bytes] | None]]:
        try:
            with _open_file(self._path) as f:
                _, data = _deb_parts(f)
                yield from _ar_tar(f, data, self._path)
        except _CORRUPT_ERRORS as e:
            raise SourceError(self._path, _describe(e)) from e


# -- .rpm -----------------------------------------------------------------------------

_RPM_LEAD_MAGIC = b"\xed\xab\xee\xdb"
_RPM_HEADER_MAGIC = b"\x8e\xad\xe8\x01"
_RPM_LEAD_SIZE = 96
_RPM_MAX_TAGS = 0xFFFF
_RPM_MAX_DATA = 256 << 20
_RPM_STRING_TYPES = (6, 8, 9)  # STRING, STRING_ARRAY, I18NSTRING
_RPM_INT32 = 4
TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH = 1000, 1001, 1002, 1003
TAG_LICENSE, TAG_ARCH, TAG_SOURCERPM = 1014, 1022, 1044
TAG_PAYLOADFORMAT, TAG_PAYLOADCOMPRESSOR = 1124, 1125
_RPM_COMPRESSORS = {
    "gzip": "gzip",
    "xz": "xz",
    "lzma": "lzma",
    "zstd": "zstd",
    "bzip2": "bzip2",
    "none": "none",
}


@dataclass(frozen=True)
class _RpmHeader:
    entries: dict[int, tuple[int, int, int]]  # tag -> (type, offset, count)
    store: bytes

    def string(self, tag: int) -> str | None:
        entry = self.entries.get(tag)
        if entry is None:
            return None
        typ, offset, count = entry
        if typ not in _RPM_STRING_TYPES or count < 1:
            raise _Corrupt(f"RPM header tag {tag} is not a string (type {typ})")
        end = self.store.find(b"\0", offset)
        if not 0 <= offset < len(self.store) or end < 0:
            raise _Corrupt(f"RPM header tag {tag}: string at offset {offset} is out of bounds")
        return self.store[offset:end].decode("utf-8", "replace")

    def int32(self, tag: int) -> int | None:
        entry = self.entries.get(tag)
        if entry is None:
            return None
        typ, offset, count = entry
        if typ != _RPM_INT32 or count < 1 or not 0 <= offset <= len(self.store) - 4:
            raise _Corrupt(f"RPM header tag {tag} is not a valid INT32")
        value: int = struct.unpack_from(">I", self.store, offset)[0]
        return value


def _rpm_header(f: IO[bytes], what: str, end: int, *, pad: bool) -> _RpmHeader:
    intro = _read_exact(f, 16, what)
    if intro[:4] != _RPM_HEADER_MAGIC:
        raise _Corrupt(f"bad {what} magic")
    count, size = struct.unpack(">II", intro[8:16])
    if count > _RPM_MAX_TAGS or size > _RPM_MAX_DATA:
        raise _Corrupt(f"{what} too large ({count} tags, {size} bytes)")
    if f.tell() + 16 * count + size > end:
        raise _Corrupt(f"truncated: {what} ends past the end of the file")
    index = _read_exact(f, 16 * count, what)
    store = _read_exact(f, size, what)
    if pad:
        _skip(f, (-size) % 8, what)
    entries: dict[int, tuple[int, int, int]] = {}
    for tag, typ, offset, n in struct.iter_unpack(">iIiI", index):
        entries[tag] = (typ, offset, n)
    return _RpmHeader(entries, store)


def _rpm_open(f: IO[bytes]) -> tuple[_RpmHeader, str]:
    """Read the lead and both headers; leave ``f`` at the payload; return the compressor."""
    end = os.fstat(f.fileno()).st_size
    lead = _read_exact(f, _RPM_LEAD_SIZE, "RPM lead")
    if lead[:4] != _RPM_LEAD_MAGIC:
        raise _Corrupt("not an RPM package: bad lead magic")
    _rpm_header(f, "RPM signature header", end, pad=True)
    header = _rpm_header(f, "RPM header", end, pad=False)
    payload_format = header.string(TAG_PAYLOADFORMAT) or "cpio"
    if payload_format != "cpio":
        raise _Corrupt(f"unsupported RPM payload format {payload_format!r}")
    compressor = header.string(TAG_PAYLOADCOMPRESSOR) or "gzip"
    if compressor not in _RPM_COMPRESSORS:
        raise _Corrupt(f"unsupported RPM payload compressor {compressor!r}")
    return header, _RPM_COMPRESSORS[compressor]


_CPIO_KINDS = {
    stat.S_IFREG: MemberKind.FILE,
    stat.S_IFDIR: MemberKind.DIR,
    stat.S_IFLNK: MemberKind.SYMLINK,
    stat.S_IFCHR: MemberKind.CHARDEV,
    stat.S_IFBLK: MemberKind.BLOCKDEV,
    stat.S_IFIFO: MemberKind.FIFO,
    stat.S_IFSOCK: MemberKind.SOCKET,
}


def _cpio_members(src: _Source, archive: str) -> Iterator[tuple[Member, IO[bytes] | None]]:
    """The members of a cpio "newc" stream (070701, or 070702 with checksums).

    Hard links: newc gives every name of a hard-linked inode its own entry and puts the
    data in the last one. That entry is yielded as the file, then the others as hard
    links to it (entries after it, if any, as hard links too).
    """
    waiting: dict[tuple[int, int, int], list[Member]] = {}
    carriers: dict[tuple[int, int, int], str] = {}
    index = 0
    while True:
        where = f"cpio entry {index}"
        header = _read_exact(src, 110, f"{where} header")
        magic = header[:6]
        if magic == b"07070X":
            raise _Corrupt("unsupported RPM payload: large-file cpio ('07070X')")
        if magic not in (b"070701", b"070702"):
            raise _Corrupt(f"bad cpio magic {magic!r} at {where}")
        try:
            values = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        except ValueError:
            raise _Corrupt(f"bad cpio header at {where}") from None
        ino, mode, _uid, _gid, nlink, _mtime, size, dev_major, dev_minor = values[:9]
        name_size = values[11]
        if not 1 <= name_size <= _MAX_PATH + 2:
            raise _Corrupt(f"bad cpio name size {name_size} at {where}")
        raw_name = _read_exact(src, name_size, f"{where} name")
        if raw_name[-1] != 0:
            raise _Corrupt(f"cpio name not NUL-terminated at {where}")
        name = raw_name[:-1].decode("utf-8", "surrogateescape")
        _skip(src, (-(110 + name_size)) % 4, f"{where} name")
        if name == "TRAILER!!!":
            break
        index += 1
        pad = (-size) % 4
        kind = _CPIO_KINDS.get(stat.S_IFMT(mode), MemberKind.UNKNOWN)
        perm = mode & 0o7777
        if kind is MemberKind.SYMLINK:
            if not 0 < size <= _MAX_LINK_DATA:
                raise _Corrupt(f"cpio symlink {name!r} has a target of {size} bytes")
            target = _read_exact(src, size, f"symlink {name!r}")
            _skip(src, pad, f"symlink {name!r}")
            yield Member(name, kind, perm, 0, target.decode("utf-8", "surrogateescape")), None
            continue
        if kind is not MemberKind.FILE:
            if size and kind is not MemberKind.UNKNOWN:
                raise _Corrupt(f"the {kind.value} {name!r} claims {size} bytes of data")
            yield Member(name, kind, perm), None
            _skip(src, size + pad, f"member {name!r}")
            continue
        key = (dev_major, dev_minor, ino)
        if nlink > 1:
            if key in carriers:
                if size:
                    raise _Corrupt(f"hard link {name!r} repeats the data of {carriers[key]!r}")
                _skip(src, pad, f"member {name!r}")
                yield Member(name, MemberKind.HARDLINK, perm, 0, carriers[key]), None
                continue
            others = waiting.setdefault(key, [])
            if size == 0 and len(others) + 1 < nlink:
                others.append(Member(name, MemberKind.HARDLINK, perm))
                _skip(src, pad, f"member {name!r}")
                continue
            carriers[key] = name
        data = _MemberData(src, size, archive, name)
        yield Member(name, kind, perm, size), io.BufferedReader(data, _CHUNK)
        data.finish()
        _skip(src, pad, f"member {name!r}")
        for link in waiting.pop(key, []):
            yield Member(link.name, link.kind, link.mode, 0, name), None
    if waiting:
        names = sorted(m.name for group in waiting.values() for m in group)
        raise _Corrupt(f"hard-linked cpio entries {names!r} have no entry holding their data")
    _drain_zeros(src, "cpio archive")


class RpmArchive(_FileArchive):
    """An RPM package; the payload is the (compressed) cpio archive."""

    def info(self) -> PackageInfo:
        try:
            with _open_file(self._path) as f:
                header, compressor = _rpm_open(f)
            name = header.string(TAG_NAME)
            version = header.string(TAG_VERSION)
            if not name or not version:
                raise _Corrupt("RPM header has no NAME or VERSION")
            extra = {"payload_compressor": compressor}
            for key, tag in (("release", TAG_RELEASE), ("sourcerpm", TAG_SOURCERPM)):
                value = header.string(tag)
                if value is not None:
                    extra[key] = value
            epoch = header.int32(TAG_EPOCH)
            if epoch is not None:
                extra["epoch"] = str(epoch)
            return PackageInfo(
                "rpm", name, version, header.string(TAG_LICENSE), header.string(TAG_ARCH), extra
            )
        except _CORRUPT_ERRORS as e:
            raise SourceError(self._path, _describe(e)) from e

    def members(self) -> Iterator[tuple[Member, IO[bytes] | None]]:
        try:
            with _open_file(self._path) as f:
                _, compressor = _rpm_open(f)
                yield from _cpio_members(_decompressed(f, compressor), self._path)
        except _CORRUPT_ERRORS as e:
            raise SourceError(self._path, _describe(e)) from e


# -- zip: wheels and the outer layer of .conda ---------------------------------------


def _open_zip(path: str) -> zipfile.ZipFile:
    """Open a zip; an encrypted member anywhere is an error (zipfile would raise RuntimeError)."""
    f = _open_file(path)
    try:
        zf = zipfile.ZipFile(f)
        for info in zf.infolist():
            if info.flag_bits & 0x1:
                zf.close()
                raise _Corrupt(f"zip member {info.filename!r} is encrypted")
        return zf
    except BaseException:
        f.close()
        raise


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
            data = _MemberData(raw, info.file_size, archive, info.filename)
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


class WheelArchive(_FileArchive):
    """A wheel (zip); the payload is every member."""

    def info(self) -> PackageInfo:
        try:
            with _open_zip(self._path) as zf:
                names = [
                    n
                    for n in zf.namelist()
                    if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
                ]
                if len(names) != 1:
                    raise _Corrupt(f"expected one *.dist-info/METADATA, found {len(names)}")
                dist_info = names[0].split("/")[0]
                metadata = BytesHeaderParser().parsebytes(_zip_read_small(zf, names[0]))
                wheel = BytesHeaderParser().parsebytes(_zip_read_small(zf, f"{dist_info}/WHEEL"))
        except _CORRUPT_ERRORS as e:
            raise SourceError(self._path, _describe(e)) from e
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
        try:
            with _open_zip(self._path) as zf:
                yield from _zip_members(zf, self._path)
        except _CORRUPT_ERRORS as e:
            raise SourceError(self._path, _describe(e)) from e


# -- conda ----------------------------------------------------------------------------

_MAX_CONDA_JSON = 64 << 20
#: The outer zip of a .conda is never extracted; its names are still checked.
_OUTER_LIMITS = Limits(max_members=1000, max_member_size=1 << 62, max_total_size=1 << 62)


def _conda_info(members: Iterator[tuple[Member, IO[bytes] | None]]) -> PackageInfo:
    """PackageInfo from the members of an info/ tree (index.json, paths.json)."""
    found: dict[str, bytes] = {}
    for member, stream in _metadata_members(members, "the info/ tree"):
        key = _normalized(member.name)
        if member.kind is MemberKind.FILE and key in ("info/index.json", "info/paths.json"):
            found[key] = _read_small(stream, member, _MAX_CONDA_JSON)
            if len(found) == 2:
                break
    if "info/index.json" not in found:
        raise _Corrupt("no info/index.json")
    try:
        index = json.loads(found["info/index.json"])
        paths_doc = json.loads(found.get("info/paths.json", b'{"paths": []}'))
    except ValueError as e:
        raise _Corrupt(f"bad JSON in info/: {e}") from None
    if not isinstance(index, dict) or not isinstance(paths_doc, dict):
        raise _Corrupt("info/index.json or info/paths.json is not a JSON object")
    name, version = index.get("name"), index.get("version")
    if not isinstance(name, str) or not isinstance(version, str):
        raise _Corrupt("info/index.json has no string 'name' and 'version'")
    paths: list[PackagePath] = []
    for entry in paths_doc.get("paths", []):
        if not isinstance(entry, dict) or not isinstance(entry.get("_path"), str):
            raise _Corrupt("bad entry in info/paths.json")
        sha = entry.get("sha256")
        size = entry.get("size_in_bytes")
        paths.append(
            PackagePath(
                entry["_path"],
                str(entry.get("path_type", "hardlink")),
                sha if isinstance(sha, str) else None,
                size if isinstance(size, int) else None,
            )
        )
    license = index.get("license")
    subdir = index.get("subdir")
    extra = {
        k: str(v)
        for k, v in index.items()
        if k not in ("name", "version", "license", "subdir")
        and isinstance(v, (str, int, float))
        and not isinstance(v, bool)
    }
    return PackageInfo(
        "conda",
        name,
        version,
        license if isinstance(license, str) else None,
        subdir if isinstance(subdir, str) else None,
        extra,
        tuple(paths),
    )


class CondaArchive(_FileArchive):
    """A ``.conda`` package: a zip holding ``info-*.tar.zst`` and ``pkg-*.tar.zst``.

    The payload is the ``pkg`` component. The outer zip's names pass the same name
    checks as members (an unsafe one is an UnsafeArchiveError naming it) and must hold
    exactly one component of each kind.
    """

    def _component(self, zf: zipfile.ZipFile, which: str) -> zipfile.ZipInfo:
        state = CheckState(_OUTER_LIMITS)
        found: list[zipfile.ZipInfo] = []
        for info in zf.infolist():
            check_member(self._path, Member(info.filename, MemberKind.FILE, 0o644), state)
            if info.filename.startswith(f"{which}-") and info.filename.endswith(".tar.zst"):
                found.append(info)
        if len(found) != 1:
            raise _Corrupt(f"expected one {which}-*.tar.zst component, found {len(found)}")
        return found[0]

    def _tar(self, zf: zipfile.ZipFile, which: str) -> Iterator[tuple[Member, IO[bytes] | None]]:
        component = self._component(zf, which)
        raw = zf.open(component)
        stream = io.BufferedReader(_ZstdReader(raw), _CHUNK)
        return _tar_members(stream, self._path, component.filename)

    def info(self) -> PackageInfo:
        try:
            with _open_zip(self._path) as zf:
                return _conda_info(self._tar(zf, "info"))
        except _CORRUPT_ERRORS as e:
            raise SourceError(self._path, _describe(e)) from e

    def members(self) -> Iterator[tuple[Member, IO[bytes] | None]]:
        try:
            with _open_zip(self._path) as zf:
                yield from self._tar(zf, "pkg")
        except _CORRUPT_ERRORS as e:
            raise SourceError(self._path, _describe(e)) from e

    def info_members(self) -> Iterator[tuple[Member, IO[bytes] | None]]:
        """The members of the ``info`` component, unchecked (see :func:`info_files`)."""
        try:
            with _open_zip(self._path) as zf:
                yield from self._tar(zf, "info")
        except _CORRUPT_ERRORS as e:
            raise SourceError(self._path, _describe(e)) from e


class CondaTarBz2Archive(_FileArchive):
    """A conda ``.tar.bz2`` package; the payload is everything but ``info/``.

    The ``info/`` members are not yielded, but every member, ``info/`` included, is
    checked (with the default limits) so that no unsafe member is ever skipped silently.
    """

    def _tar(self, f: IO[bytes]) -> Iterator[tuple[Member, IO[bytes] | None]]:
        return _tar_members(_decompressed(f, "bzip2"), self._path, "tar.bz2")

    def info(self) -> PackageInfo:
        try:
            with _open_file(self._path) as f:
                return _conda_info(self._tar(f))
        except _CORRUPT_ERRORS as e:
            raise SourceError(self._path, _describe(e)) from e

    def members(self) -> Iterator[tuple[Member, IO[bytes] | None]]:
        state = CheckState()
        try:
            with _open_file(self._path) as f:
                for member, stream in self._tar(f):
                    checked = check_member(self._path, member, state)
                    if checked is None or checked.name.split("/")[0] == "info":
                        continue
                    yield member, stream
        except _CORRUPT_ERRORS as e:
            raise SourceError(self._path, _describe(e)) from e

    def info_members(self) -> Iterator[tuple[Member, IO[bytes] | None]]:
        """The ``info/`` members, unchecked (see :func:`info_files`)."""
        try:
            with _open_file(self._path) as f:
                for member, stream in self._tar(f):
                    if _normalized(member.name).split("/")[0] == "info":
                        yield member, stream
        except _CORRUPT_ERRORS as e:
            raise SourceError(self._path, _describe(e)) from e


#: The most info_files reads from one package (licence texts are small).
_MAX_INFO_FILES_BYTES = 64 << 20


def info_files(archive: Archive, select: Callable[[str], bool]) -> dict[str, bytes]:
    """Regular files of a conda package's ``info/`` tree that ``select`` picks, by name.

    This is where conda packages keep their licences (``info/licenses/...``). Every
    member passes :func:`check_member`; links are not followed; at most 64 MiB in all.
    Packages of other kinds have no ``info/`` tree: ``{}``.
    """
    reader = getattr(archive, "info_members", None)
    if reader is None:
        return {}
    state = CheckState()
    out: dict[str, bytes] = {}
    total = 0
    for member, stream in _metadata_members(reader(), "the info/ tree"):
        checked = check_member(archive.path, member, state)
        if checked is None or checked.kind is not MemberKind.FILE or not select(checked.name):
            continue
        total += checked.size
        if total > _MAX_INFO_FILES_BYTES:
            raise SourceError(
                archive.path, f"info/ files selected exceed {_MAX_INFO_FILES_BYTES} bytes"
            )
        try:
            out[checked.name] = _read_small(stream, checked, _MAX_INFO_FILES_BYTES)
        except _CORRUPT_ERRORS as e:
            raise SourceError(archive.path, _describe(e)) from e
    return out


# -- opening --------------------------------------------------------------------------

_KINDS: dict[str, Callable[[str], Archive]] = {
    "deb": DebArchive,
    "rpm": RpmArchive,
    "wheel": WheelArchive,
    "whl": WheelArchive,
    "conda": CondaArchive,
    "tar.bz2": CondaTarBz2Archive,
}
_SUFFIXES = (
    (".deb", "deb"),
    (".udeb", "deb"),
    (".rpm", "rpm"),
    (".whl", "wheel"),
    (".conda", "conda"),
    (".tar.bz2", "tar.bz2"),
)


def open_archive(path: str | os.PathLike[str], kind: str | None = None) -> Archive:
    """Open an upstream package; ``kind`` comes from the file name unless given.

    Kinds: ``"deb"``, ``"rpm"``, ``"wheel"`` (or ``"whl"``), ``"conda"`` (``.conda``)
    and ``"tar.bz2"`` (a conda ``.tar.bz2``). Raises
    :class:`~nativelib.errors.SourceError` for an unknown kind or a path that is not a
    readable regular file. Nothing is read until ``info()`` or ``members()``.
    """
    text = os.fspath(path)
    if kind is None:
        lower = text.lower()
        kind = next((k for suffix, k in _SUFFIXES if lower.endswith(suffix)), None)
        if kind is None:
            raise SourceError(
                text,
                "unknown package kind: expected a name ending in .deb, .rpm, .whl, .conda"
                " or .tar.bz2, or an explicit kind",
            )
    factory = _KINDS.get(kind)
    if factory is None:
        raise SourceError(text, f"unknown package kind {kind!r}; known: {sorted(_KINDS)}")
    try:
        st = os.stat(text)
    except OSError as e:
        raise SourceError(text, f"cannot open: {e.strerror or e}") from e
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(text, "not a regular file")
    return factory(text)
