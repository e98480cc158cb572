"""The exceptions raised by nativelib.

Every error raised on purpose is a :class:`NativeLibError`; each narrow subclass keeps
the values it is about as attributes, so callers never have to parse messages.
"""

from __future__ import annotations

__all__ = ["ElfError", "NativeLibError", "NotElfError"]


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
