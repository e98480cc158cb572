"""The exceptions raised by nativelib.

Every error raised on purpose is a :class:`NativeLibError`; each narrow subclass keeps
the values it is about as attributes, so callers never have to parse messages.
"""

from __future__ import annotations

__all__ = [
    "CatalogError",
    "ElfError",
    "NativeLibError",
    "NotElfError",
    "SourceError",
    "UnsafeArchiveError",
    "WheelError",
]


class NativeLibError(Exception):
    """Root of every error nativelib raises on purpose."""


class ElfError(NativeLibError, ValueError):
    """A file could not be read as an ELF object.

    ``path`` names the file (for a wheel member: ``WHEEL!member``) and ``reason`` says
    what is wrong with it, e.g. ``"truncated: program header table at 0x40 (56 bytes x 9)
    ends past the end of the file (100 bytes)"``.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.path, self.reason))


class NotElfError(ElfError):
    """The file is readable but is not an ELF object at all.

    A linker script such as ``libc.so``, a text file or an empty file. Kept distinct from
    a malformed ELF file, which is an :class:`ElfError` but not a ``NotElfError``.
    """


class SourceError(NativeLibError):
    """An upstream package could not be obtained or read.

    ``source`` names what was being fetched or read (a URL, a file path, a package name).
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.source, self.reason))


class UnsafeArchiveError(SourceError):
    """An archive holds a member that must never be extracted.

    A path that escapes the destination (``../x``, ``/abs``), a symlink or hardlink whose
    target escapes, a device, FIFO or socket, a setuid/setgid file, or a limit exceeded.
    The whole archive is rejected and nothing is left in the destination.
    """

    def __init__(self, archive: str, member: str, reason: str) -> None:
        NativeLibError.__init__(self, f"{archive}: unsafe member {member!r}: {reason}")
        self.source = archive
        self.archive = archive
        self.member = member
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.archive, self.member, self.reason))


class CatalogError(NativeLibError):
    """The runtime catalog (recipes) is inconsistent; ``where`` names the recipe or file."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.where, self.reason))


class WheelError(NativeLibError):
    """A wheel could not be written, or a wheel that was read is invalid.

    ``path`` names the wheel (or the file inside it, as ``WHEEL!member``).
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.path, self.reason))
