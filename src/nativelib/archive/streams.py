"""Shared reading helpers: exact reads, spans, decompressors, corruption reporting."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import zipfile
import zlib
from types import TracebackType
from typing import IO, TYPE_CHECKING, Protocol

import zstandard

from nativelib.archive.members import _MAX_PATH
from nativelib.errors import SourceError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

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


class reading_errors:
    """Context manager: what the decompressors and parsers raise on damaged input
    (:data:`_CORRUPT_ERRORS`) becomes a :class:`~nativelib.errors.SourceError` naming
    ``archive``, its reason prefixed with ``prefix`` (e.g. ``"member 'x': "``).

    A class rather than a generator so that it costs nothing on per-read paths.
    """

    __slots__ = ("_archive", "_prefix")

    def __init__(self, archive: str, prefix: str = "") -> None:
        self._archive = archive
        self._prefix = prefix

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and isinstance(exc, _CORRUPT_ERRORS):
            raise SourceError(self._archive, f"{self._prefix}{_describe(exc)}") from exc


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
        with reading_errors(self._archive, f"member {self._name!r}: "):
            return self._span.readinto(buffer)

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
