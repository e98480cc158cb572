"""The exceptions raised by nativelib.

Every error raised on purpose is a :class:`NativeLibError`. The narrow subclasses are each
about one named thing (a file, a URL, a recipe, a runtime): ``str(e)`` is
``"<that thing>: <reason>"``, and both parts are attributes, so callers never parse
messages. They pickle (errors cross process boundaries in the doctor and in tests).
"""

from __future__ import annotations

import io
import sys

__all__ = [
    "AutoloadError",
    "BuildError",
    "CatalogError",
    "ElfError",
    "FileReadError",
    "HttpError",
    "ManifestError",
    "NativeLibError",
    "NotElfError",
    "RepairError",
    "ResolutionError",
    "RuntimeConflict",
    "RuntimeNotFound",
    "SourceError",
    "UnsafeArchiveError",
    "UnsafeRuntimePath",
    "UsageError",
    "WheelError",
    "report_error",
]


class NativeLibError(Exception):
    """Root of every error nativelib raises on purpose.

    ``message`` states the problem; ``hint``, when there is one, says what to do about it.
    ``str(e)`` is the message, followed by ``"\nhint: <hint>"`` on a line of its own when
    there is a hint, so a traceback raised inside someone else's import still shows it.
    The command line prints them as ``error: <message>`` and ``hint: <hint>``.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\nhint: {self.hint}" if self.hint else self.message


class UsageError(NativeLibError):
    """The command line was used wrongly (a missing file, a bad option value)."""


class _AboutError(NativeLibError):
    """An error about one named thing: ``subject`` (a path, a URL, a name) and ``reason``."""

    def __init__(self, subject: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"{subject}: {reason}", hint=hint)
        self.subject = subject
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.subject, self.reason), self.__dict__)


class ElfError(_AboutError, ValueError):
    """A file could not be read as an ELF object.

    ``path`` names the file (for a wheel member: ``WHEEL!member``) and ``reason`` says
    what is wrong with it, e.g. ``"truncated: program header table at 0x40 (56 bytes x 9)
    ends past the end of the file (100 bytes)"``.
    """

    def __init__(
        self,
        path: str,
        reason: str,
        *,
        hint: str | None = None,
        unreadable: bool = False,
        changed: bool = False,
    ) -> None:
        super().__init__(path, reason, hint=hint)
        #: ``stat`` or ``open`` failed, or it is not a regular file: nothing was parsed.
        self.unreadable = unreadable
        #: The file became shorter while it was being read: a second read may succeed.
        self.changed = changed

    @property
    def path(self) -> str:
        return self.subject


class NotElfError(ElfError):
    """The file is readable but is not an ELF object at all.

    A linker script such as ``libc.so``, a text file or an empty file. Kept distinct from
    a malformed ELF file, which is an :class:`ElfError` but not a ``NotElfError``.
    """


class FileReadError(_AboutError):
    """A file that must be a regular file of bounded size is not (a FIFO, a device, a
    symlink where none belongs, too large), or cannot be read; ``path`` names it.
    Raised by :mod:`nativelib.files`."""

    @property
    def path(self) -> str:
        return self.subject


class SourceError(_AboutError):
    """An upstream package could not be obtained or read.

    ``source`` names what was being fetched or read (a URL, a file path, a package name).
    """

    @property
    def source(self) -> str:
        return self.subject


class HttpError(SourceError):
    """A server answered with an HTTP status that is an error (and was not retried, or
    outlived every retry); ``status`` is that number, e.g. 404, so callers branch on it."""

    def __init__(self, url: str, reason: str, status: int, *, hint: str | None = None) -> None:
        super().__init__(url, reason, hint=hint)
        self.status = status

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.subject, self.reason, self.status), self.__dict__)


class UnsafeArchiveError(SourceError):
    """An archive holds a member that must never be extracted.

    A path that escapes the destination (``../x``, ``/abs``), a symlink or hardlink whose
    target escapes, a device, FIFO or socket, a setuid/setgid file, or a limit exceeded.
    The whole archive is rejected and nothing is left in the destination.
    """

    def __init__(self, archive: str, member: str, reason: str) -> None:
        NativeLibError.__init__(self, f"{archive}: unsafe member {member!r}: {reason}")
        self.subject = archive
        self.member = member
        self.reason = reason

    @property
    def archive(self) -> str:
        return self.subject

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.subject, self.member, self.reason), self.__dict__)


class CatalogError(_AboutError):
    """The runtime catalog (recipes) is inconsistent; ``where`` names the recipe or file."""

    @property
    def where(self) -> str:
        return self.subject


class ManifestError(_AboutError):
    """A runtime manifest is malformed; ``where`` names the file."""

    @property
    def where(self) -> str:
        return self.subject


class WheelError(_AboutError):
    """A wheel could not be written, or a wheel that was read is invalid.

    ``path`` names the wheel (or the file inside it, as ``WHEEL!member``).
    """

    @property
    def path(self) -> str:
        return self.subject


class BuildError(_AboutError):
    """A runtime wheel cannot be built from these inputs; ``runtime`` names it."""

    @property
    def runtime(self) -> str:
        return self.subject


class RuntimeConflict(NativeLibError):
    """The process already holds a copy of a runtime library that does not provide what
    is needed, and loading a second copy would give two in one process.

    ``soname``, ``loaded`` (the path of the copy in the process), ``wanted`` (the path
    nativelib would have loaded), ``missing`` (version nodes the loaded copy lacks) and
    ``hint`` are attributes.
    """

    def __init__(
        self, soname: str, loaded: str, wanted: str, missing: tuple[str, ...], hint: str
    ) -> None:
        super().__init__(
            f"{soname}: the process already holds {loaded!r}, which lacks "
            f"{', '.join(missing)} (provided by {wanted!r}); loading that one as well would "
            f"put two copies of {soname} in one process",
            hint=hint,
        )
        self.soname = soname
        self.loaded = loaded
        self.wanted = wanted
        self.missing = missing
        self.hint = hint

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.soname, self.loaded, self.wanted, self.missing, self.hint))


class RuntimeNotFound(_AboutError):
    """A runtime distribution is not installed in any site directory on ``sys.path``."""

    @property
    def runtime(self) -> str:
        return self.subject


class UnsafeRuntimePath(_AboutError):
    """A runtime library path that must not be loaded (writable by others, foreign owner,
    outside its prefix); ``path`` names it."""

    @property
    def path(self) -> str:
        return self.subject


class AutoloadError(_AboutError):
    """``nativelib autoload`` cannot write or remove its ``.pth`` file; ``path`` names the
    site directory or the file."""

    @property
    def path(self) -> str:
        return self.subject


class ResolutionError(NativeLibError):
    """No set of runtime distributions satisfies the needs on the target host.

    ``explanation`` holds one sentence per problem, in plain words.
    """

    def __init__(self, explanation: tuple[str, ...], *, hint: str | None = None) -> None:
        super().__init__("; ".join(explanation) if explanation else "no resolution", hint=hint)
        self.explanation = explanation

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.explanation,), self.__dict__)


class RepairError(_AboutError):
    """A wheel cannot be repaired, or an edit failed its check.

    ``subject`` names the wheel, or the member inside it (``x.whl!pkg/_ext.so``). Nothing
    is written when this is raised.
    """


def report_error(error: NativeLibError, stream: io.TextIOBase | None = None) -> None:
    """Write ``error: <message>`` and, when there is a hint, ``hint: <hint>`` on its own
    line (to stderr by default): the one way every command reports an error."""
    out = stream if stream is not None else sys.stderr
    out.write(f"error: {error.message}\n")
    if error.hint:
        out.write(f"hint: {error.hint}\n")
