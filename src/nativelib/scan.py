"""Find and read the ELF files under the paths a user names: files, directories, wheels.

Standard library only. A wheel is read in place from its zip archive; nothing is
extracted to disk. Non-ELF files met while walking a directory are skipped; a path
named explicitly is always reported, as "not an ELF file" when it is not one.
"""

from __future__ import annotations

import os
import stat
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from nativelib.elf import ELF_MAGIC, ElfInfo, is_elf_file, parse_elf_stream, read_elf
from nativelib.errors import ElfError

__all__ = ["ScanResult", "scan_paths", "scan_wheel"]

#: Errors the zip and decompression layers raise on a corrupt archive or member.
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError)


@dataclass(frozen=True)
class ScanResult:
    """One ELF file read (``info``), or one that could not be read (``error``)."""

    path: str
    info: ElfInfo | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def _from_error(e: ElfError) -> ScanResult:
    return ScanResult(e.path, None, e.reason)


def _read(path: str) -> ScanResult:
    try:
        return ScanResult(os.path.realpath(path), read_elf(path), None)
    except ElfError as e:
        return _from_error(e)


def scan_wheel(path: str) -> Iterator[ScanResult]:
    """Every ELF member of a wheel (a zip), read from the archive, in name order."""
    shown = os.path.realpath(path)
    try:
        zf = zipfile.ZipFile(path)
    except _ARCHIVE_ERRORS as e:
        yield ScanResult(shown, None, f"cannot read as a wheel (zip archive): {e}")
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
            except _ARCHIVE_ERRORS as e:
                yield ScanResult(name, None, f"cannot read member from the archive: {e}")


def _is_wheel(path: str) -> bool:
    return path.endswith(".whl")


def _walk(root: str, seen: set[str]) -> Iterator[ScanResult]:
    # Walk from the real root and never into symlinked directories, so every path met
    # is already real except for symlinked files.
    root = os.path.realpath(root)
    errors: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=errors.append):
        while errors:
            err = errors.pop(0)
            where = err.filename or root
            yield ScanResult(where, None, f"cannot read directory: {err.strerror or err}")
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)  # follows symlinks; dangling ones raise and are skipped
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            real = os.path.realpath(full) if os.path.islink(full) else full
            if real in seen:
                continue
            if _is_wheel(name):
                seen.add(real)
                yield from scan_wheel(real)
            elif is_elf_file(real, st):
                seen.add(real)
                yield _read(real)
    while errors:
        err = errors.pop(0)
        yield ScanResult(root, None, f"cannot read directory: {err.strerror or err}")


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
