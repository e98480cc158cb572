"""Find and read the ELF files under the paths a user names: files, directories, wheels.

Standard library only. A wheel is read in place from its zip archive; nothing is
extracted to disk. Non-ELF files met while walking a directory are skipped; a path
named explicitly is always reported, as "not an ELF file" when it is not one.

``nativelib inspect`` imports this module, so it keeps that path short: no
``dataclasses`` (which pulls in ``inspect``), and ``zipfile`` only when a wheel is read.
"""

from __future__ import annotations

import os
import re
import stat

from nativelib._frozen import Frozen, setfield
from nativelib.elf import ELF_MAGIC, ElfInfo, has_elf_magic, parse_elf_stream, read_elf
from nativelib.errors import ElfError, NotElfError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 ms
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = ["ScanResult", "scan_paths", "scan_wheel"]


def _archive_errors() -> tuple[type[BaseException], ...]:
    """Errors the zip and decompression layers raise on a corrupt archive or member."""
    import zipfile  # noqa: PLC0415 (only a wheel needs it)
    import zlib  # noqa: PLC0415

    return (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError)


#: What a :class:`ScanResult` is, for callers that branch on it (never on ``error``'s text).
ELF = "elf"  # read: ``info`` is set
UNREADABLE = "unreadable"  # could not be opened, or not a regular file (ElfError.unreadable)
NOT_ELF = "not-elf"  # readable, but not an ELF object (NotElfError)
MALFORMED = "malformed"  # an ELF object the reader rejects (any other ElfError)
CHANGED = "changed"  # became shorter while it was being read (ElfError.changed)
DIRECTORY = "directory"  # a directory that could not be listed
ARCHIVE = "archive"  # a wheel, or a member of one, that the zip layer could not read


class ScanResult(Frozen):
    """One ELF file read (``info``), or one that could not be read (``error``, a reason
    for people, and ``kind``, one of the constants above, for code)."""

    __slots__ = ("path", "info", "error", "kind")
    path: str
    info: ElfInfo | None
    error: str | None
    kind: str

    def __init__(
        self, path: str, info: ElfInfo | None, error: str | None, kind: str | None = None
    ) -> None:
        setfield(self, "path", path)
        setfield(self, "info", info)
        setfield(self, "error", error)
        setfield(self, "kind", kind or (ELF if info is not None else MALFORMED))

    @property
    def ok(self) -> bool:
        return self.error is None


def _from_error(e: ElfError) -> ScanResult:
    if e.unreadable:
        kind = UNREADABLE
    elif isinstance(e, NotElfError):
        kind = NOT_ELF
    elif e.changed:
        kind = CHANGED
    else:
        kind = MALFORMED
    return ScanResult(e.path, None, e.reason, kind)


def _skipped(path: str, why: str) -> None:
    """A file the walk passes over for a reason worth knowing (``-v`` shows it)."""
    import logging  # noqa: PLC0415 (rare: kept off inspect's import path)

    logging.getLogger(__name__).info("skipped %s: %s", path, why)


def _read(path: str) -> ScanResult:
    try:
        info = read_elf(path)
    except ElfError as e:
        return _from_error(e)
    return ScanResult(info.path, info, None)


def scan_wheel(path: str) -> Iterator[ScanResult]:
    """Every ELF member of a wheel (a zip), read from the archive, in name order."""
    # (kept off the import path of inspect and the doctor: it imports zipfile)
    from nativelib.safezip import SafeZipFile, ZipMemberError  # noqa: PLC0415

    archive_errors = _archive_errors()
    shown = os.path.realpath(path)
    try:
        zf = SafeZipFile(path)  # members stored or deflated, read with bounded memory
    except archive_errors as e:
        yield ScanResult(shown, None, f"cannot read as a wheel (zip archive): {e}", ARCHIVE)
        return
    with zf:
        for member in sorted(zf.infolist(), key=lambda m: m.filename):
            if member.is_dir() or stat.S_ISLNK(member.external_attr >> 16):
                continue
            name = f"{shown}!{member.filename}"
            try:
                if member.file_size < 4:
                    continue
                with zf.open(member) as f:
                    if f.read(4) != ELF_MAGIC:
                        continue
                with zf.open(member) as f:
                    yield ScanResult(name, parse_elf_stream(f, member.file_size, name), None)
            except ElfError as e:
                yield _from_error(e)
            except ZipMemberError as e:
                yield ScanResult(
                    name, None, f"cannot read member from the archive: {e.reason}", ARCHIVE
                )
            except archive_errors as e:
                yield ScanResult(name, None, f"cannot read member from the archive: {e}", ARCHIVE)


def _is_wheel(path: str) -> bool:
    return path.endswith(".whl")


#: Files with these suffixes are source, text or bytecode, never something the dynamic
#: loader or ctypes is pointed at; a directory walk does not open them. (torch alone
#: ships ~9,000 headers and ~11,000 .py/.pyc files next to ~140 ELF files.)
SKIPPED_SUFFIXES = frozenset(
    {
        ".py", ".pyc", ".pyi", ".pyx", ".pxd", ".pxi", ".h", ".hh", ".hpp", ".hxx",
        ".cuh", ".inl", ".c", ".cc", ".cpp", ".cxx", ".cu", ".txt", ".md", ".rst",
        ".json", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".html", ".css", ".js",
        ".typed", ".cmake", ".pc", ".csv",
    }
)  # fmt: skip


#: File names of shared objects and extension modules (``x.so``, ``libx.so.1.2``).
_SHARED_NAME = re.compile(r"\.so(?:\.[0-9]+)*$")


def _walk(root: str, seen: set[str]) -> Iterator[ScanResult]:
    """Depth first, entries in name order (as ``os.walk`` top-down with sorted names).

    File types come from the directory listing (no ``stat`` per file); symlinked
    directories are not followed; a symlinked file is reported under its real path.
    """
    stack = [os.path.realpath(root)]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            yield ScanResult(
                directory, None, f"cannot read directory: {e.strerror or e}", DIRECTORY
            )
            continue
        subdirs: list[str] = []
        for entry in entries:
            name = entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.path)
                    continue
                if os.path.splitext(name)[1] in SKIPPED_SUFFIXES:
                    continue
                if entry.is_symlink():
                    if not entry.is_file():  # dangling, or not a regular file
                        _skipped(entry.path, "a symlink to no regular file")
                        continue
                    real = os.path.realpath(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    real = entry.path
                else:
                    _skipped(entry.path, "not a regular file")  # FIFO, socket, device
                    continue
            except OSError as e:
                _skipped(entry.path, e.strerror or str(e))
                continue
            if real in seen:
                continue
            if name.endswith(".whl"):
                seen.add(real)
                yield from scan_wheel(real)
            elif has_elf_magic(real):
                seen.add(real)
                yield _read(real)
            elif _SHARED_NAME.search(name) and not os.access(real, os.R_OK, effective_ids=True):
                # Named like a shared object but unreadable: say so rather than skip it.
                seen.add(real)
                yield _read(real)
        stack.extend(reversed(subdirs))


def scan_paths(paths: Iterable[str]) -> Iterator[ScanResult]:
    """Read every ELF file under ``paths``, each real file once.

    A directory is walked (symlinked directories are not followed; symlinked files are
    reported under their real path); a ``.whl`` is read from the archive; any other path
    is read as one ELF file.
    """
    seen: set[str] = set()
    for path in paths:
        if os.path.isdir(path):
            yield from _walk(path, seen)
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        if _is_wheel(path) and os.path.isfile(path):
            yield from scan_wheel(path)
        else:
            yield _read(path)
