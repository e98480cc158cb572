"""The member model, and the one member check that every package format passes.

Names, links, member kinds, modes and sizes: see the package docstring.
"""

from __future__ import annotations

import enum
import io
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Protocol

from nativelib.errors import SourceError, UnsafeArchiveError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


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


class FileArchive:
    """What every kind shares: the package's path (what errors name)."""

    def __init__(self, path: str):
        self._path = path

    @property
    def path(self) -> str:
        return self._path


@dataclass(frozen=True)
class Limits:
    """Bounds on what one archive may hold.

    Sizes are those the headers claim, counted for every file member whether it is
    extracted or skipped; no member's stream gives more than its claim.
    """

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


#: Characters no member name may hold: C0 controls, DEL, and what str.splitlines() breaks
#: lines at (a name must fit on one line of a RECORD or a listing).
_FORBIDDEN_CHARS = frozenset([chr(c) for c in range(0x20)] + ["\x7f", "\x85", "\u2028", "\u2029"])


def _byte_length(text: str) -> int:
    try:
        return len(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return len(text.encode("utf-8", "surrogatepass"))


def name_problem(name: str, *, canonical: bool = False) -> str | None:
    """Why ``name`` can never name a member of a package or a wheel, or None.

    The one member-name rule (archives, the wheel writer and validator, repair's wheel
    reader, the download cache's file names): not empty, no NUL or other control
    character or line break, no backslash, relative, no ``..`` component, at most 4095
    bytes and 255 bytes per component. ``canonical`` (names written into or read from a
    wheel) also rejects empty and ``.`` components (``//``, a trailing ``/``, ``./``)
    and lone surrogates, which archives tolerate and normalize.
    """
    if not isinstance(name, str) or not name:
        return "empty name (a name must be a non-empty string)"
    if "\0" in name:
        return "NUL byte in name (no control characters)"
    if not _FORBIDDEN_CHARS.isdisjoint(name):
        return "name holds control characters or line breaks"
    if "\\" in name:
        return "backslash in name (names use '/' and contain no backslash)"
    if name.startswith("/"):
        return "absolute path (a name must be relative, not absolute)"
    parts = name.split("/")
    if ".." in parts:
        return "'..' component in name ('..' components are not allowed)"
    if canonical:
        if "" in parts:
            return "name has empty components ('//' or a trailing '/')"
        if "." in parts:
            return "name has '.' components"
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            return "name is not valid Unicode (lone surrogates)"
    if _byte_length(name) > _MAX_PATH:
        return f"name longer than {_MAX_PATH} bytes"
    if any(_byte_length(p) > _MAX_COMPONENT for p in parts):
        return f"name component longer than {_MAX_COMPONENT} bytes"
    return None


def _name_parts(name: str) -> list[str]:
    """The components of a name that passed :func:`name_problem` (``.`` and ``//`` dropped)."""
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
    problem = name_problem(member.name)
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
        problem = name_problem(target)
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
        # Every file counts, extracted or not: the readers decompress a skipped member
        # to reach the next one, and no member's stream gives more than its claim.
        state.total_size += size
        if state.total_size > limits.max_total_size:
            raise fail(
                "the files up to this one, extracted or skipped, exceed the limit of"
                f" {limits.max_total_size} bytes (max_total_size): {state.total_size} bytes"
            )
    state.kinds[name] = kind
    if kind is MemberKind.DIR:
        state.dirs.add(name)
    for i in range(1, len(parts)):
        state.dirs.add("/".join(parts[:i]))
    return Member(name, kind, member.mode & 0o7777, size, linkname)


class _Counted(io.RawIOBase):
    """A member's stream that holds it to the size its header claims.

    :func:`check_member` already held the claim to ``max_member_size`` and counted it
    against ``max_total_size``: together they bound every member and the archive,
    whether the member is read or skipped.
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
        name = self._member.name
        if self._count > self._member.size:
            raise UnsafeArchiveError(
                self._archive,
                name,
                f"holds more data than its header says ({self._member.size} bytes)",
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

    Every member goes through :func:`check_member` before it is yielded, which counts
    each file against ``limits`` whether the caller reads it or not; a file's stream
    gives no more than its header claims. The root directory entry is skipped.
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
