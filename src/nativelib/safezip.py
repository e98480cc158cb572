"""Reading zip archives from outside with bounded memory: wheels, and the outer zip of
``.conda`` packages. Standard library only (``nativelib.scan`` reads wheels with it).

CPython's :mod:`zipfile` expands a whole input chunk of a bzip2 or LZMA member at once (a
few KiB of zeros become GiB), and reads a deflate member whole, whatever its header
declares, when asked for all of it. So the one rule for every zip nativelib reads lives
here, in :class:`SafeZipFile`:

- when it opens, every member must use a compression method the kind of archive allows
  (:data:`WHEEL_METHODS`: stored or deflated, what pip, PyPI and every wheel builder
  write; :data:`CONDA_METHODS`: stored, what conda-package-handling and
  conda-package-streaming write) and must not be encrypted;
- a member is read through a decompressor bounded by the bytes it produces: at most one
  chunk at a time, and never more than the size its header declares. A member that
  inflates to more stops there, with an error, as does one that holds less or whose
  CRC-32 differs;
- :meth:`SafeZipFile.read` (a whole member in memory) refuses a member that declares more
  than :data:`MAX_READ` bytes.

A stream from :meth:`SafeZipFile.open` also reports the CRC-32 of the member's stored
(compressed) bytes once it has been read to the end (:func:`stored_crc`): a writer that
copies those bytes as they are (``nativelib.wheelfile``'s raw copy) checks with it that
it copies exactly what was verified.

Every problem is a :class:`ZipMemberError`, a :class:`zipfile.BadZipFile`, so the readers'
existing handling of a damaged zip covers it; each names the member and the reason.
"""

from __future__ import annotations

import copy
import io
import zipfile
import zlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import IO, Any

    from _typeshed import WriteableBuffer

__all__ = [
    "CONDA_METHODS",
    "MAX_READ",
    "WHEEL_METHODS",
    "SafeZipFile",
    "ZipMemberError",
    "check_members",
    "open_stored",
    "stored_crc",
]

#: Methods a wheel's members may use (PEP 427 practice).
WHEEL_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
#: Methods the outer zip of a ``.conda`` may use (its components are zstd already).
CONDA_METHODS = frozenset({zipfile.ZIP_STORED})
#: The most :meth:`SafeZipFile.read` returns: far above any RECORD, METADATA or manifest.
MAX_READ = 64 << 20

_ALLOWED_NAMES = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_METHOD_NAMES = {
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
    9: "deflate64",
    93: "zstd",
}
_CHUNK = 1 << 16  # compressed bytes read at once
_MAX_OUT = 1 << 20  # the most one read produces
_ENCRYPTED = 0x1 | 0x40  # traditional PKWARE and strong encryption
_PATCHED = 0x20  # compressed patched data (zipfile cannot read it either)


class ZipMemberError(zipfile.BadZipFile):
    """A member this module refuses to read, or whose data is not what its header says.

    ``reason`` reads after the member's name: ``"is encrypted"``, ``"inflates to ..."``.
    """

    def __init__(self, member: str, reason: str) -> None:
        super().__init__(f"member {member!r} {reason}")
        self.member = member
        self.reason = reason


def _method_name(method: int) -> str:
    name = _METHOD_NAMES.get(method)
    return f"{name} (zip method {method})" if name else f"zip method {method}"


def _problem(info: zipfile.ZipInfo, methods: frozenset[int], kind: str) -> str | None:
    """Why ``info`` is refused in an archive of ``kind`` allowing ``methods``, or None."""
    if info.flag_bits & _ENCRYPTED:
        return "is encrypted"
    if info.flag_bits & _PATCHED:
        return "holds compressed patched data"
    if info.compress_type not in methods:
        allowed = " or ".join(_ALLOWED_NAMES[m] for m in sorted(methods))
        return f"is compressed with {_method_name(info.compress_type)}: {kind} must be {allowed}"
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        return f"is stored with {info.compress_size} bytes of data but declares {info.file_size}"
    return None


def check_members(infos: Iterable[zipfile.ZipInfo], methods: frozenset[int], kind: str) -> None:
    """Raise :class:`ZipMemberError` for the first member that may not be read."""
    for info in infos:
        problem = _problem(info, methods, kind)
        if problem is not None:
            raise ZipMemberError(info.filename, problem)


class _MemberReader(io.RawIOBase):
    """A stored or deflated member's bytes, bounded by its declared size and checked
    against it and its CRC-32 at the end (as soon as the declared size is reached)."""

    def __init__(self, raw: IO[bytes], info: zipfile.ZipInfo) -> None:
        self._raw = raw  # the member's stored (compressed) bytes
        self._name = info.filename
        self._size = info.file_size
        self._crc_expected = info.CRC
        self._crc = 0
        self._stored_crc = 0  # of the stored bytes read so far
        self._done = 0
        self._ended = False
        self._checked = False
        self._inflate = (
            zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
        )

    def readable(self) -> bool:
        return True

    def _error(self, reason: str) -> ZipMemberError:
        return ZipMemberError(self._name, reason)

    def _stored(self, n: int) -> bytes:
        data = self._raw.read(n)
        self._stored_crc = zlib.crc32(data, self._stored_crc)
        return data

    @property
    def stored_crc(self) -> int | None:
        """The CRC-32 of all the member's stored bytes, once it was read to the end and
        checked; None before."""
        return self._stored_crc if self._checked else None

    def _produce(self, n: int) -> bytes:
        """Up to ``n`` more bytes of the member (``b""`` only when the input ends)."""
        if self._inflate is None:
            return self._stored(n)
        d = self._inflate
        while not d.eof:
            src = d.unconsumed_tail or self._stored(_CHUNK)
            if not src:
                return b""
            try:
                out = d.decompress(src, n)
            except zlib.error as e:
                raise self._error(f"has corrupt deflate data: {e}") from e
            if out:
                return out
        return b""

    def _end(self) -> None:
        """The declared size is reached: nothing may follow, and the CRC-32 must match."""
        self._ended = True
        if self._produce(1):
            raise self._error(f"inflates to more than the {self._size} bytes its header declares")
        if self._inflate is not None and not self._inflate.eof:
            raise self._error("is truncated: its compressed data ends inside the deflate stream")
        if self._crc != self._crc_expected:
            raise self._error("is damaged: Bad CRC-32 (its data does not match its header)")
        while self._stored(_CHUNK):  # bytes after the deflate stream: copied all the same
            pass
        self._checked = True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        if self._ended or not len(view):
            return 0
        left = self._size - self._done
        if left <= 0:
            self._end()
            return 0
        data = self._produce(min(len(view), left, _MAX_OUT))
        if not data:
            raise self._error(
                f"is truncated: it holds {self._done} bytes, its header declares {self._size}"
            )
        n = len(data)
        view[:n] = data
        self._done += n
        self._crc = zlib.crc32(data, self._crc)
        if self._done == self._size:
            self._end()
        return n

    def readall(self) -> bytes:
        parts = []
        while chunk := self.read(_CHUNK):
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def stored_crc(stream: IO[bytes]) -> int | None:
    """The CRC-32 of the stored bytes of the member ``stream`` (from
    :meth:`SafeZipFile.open`) was read from, once it has been read to its end and checked;
    None before, or for a stream of another kind."""
    raw = getattr(stream, "raw", None)
    return raw.stored_crc if isinstance(raw, _MemberReader) else None


def open_stored(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> IO[bytes]:
    """A member's stored (compressed) bytes as they are in the archive: its
    ``compress_size`` bytes after its local header (which zipfile checks against the
    directory entry). Nothing is inflated or checked: for comparing stored bytes."""
    raw_info = copy.copy(info)
    raw_info.compress_type = zipfile.ZIP_STORED
    raw_info.file_size = info.compress_size
    del raw_info.CRC  # no CRC-32 of the stored bytes is known to zipfile
    return zipfile.ZipFile.open(zf, raw_info)


class SafeZipFile(zipfile.ZipFile):
    """A zip archive opened for reading under this module's rule.

    ``methods`` are the compression methods allowed (:data:`WHEEL_METHODS` by default),
    ``kind`` names them in the refusal (``"a wheel's members"``). Opening raises
    :class:`ZipMemberError` for a member that uses any other method, or is encrypted.
    """

    def __init__(
        self,
        file: Any,
        *,
        methods: frozenset[int] = WHEEL_METHODS,
        kind: str = "a wheel's members",
    ) -> None:
        super().__init__(file)
        try:
            check_members(self.infolist(), methods, kind)
        except BaseException:
            self.close()
            raise

    def open(
        self,
        name: str | zipfile.ZipInfo,
        mode: str = "r",
        pwd: bytes | None = None,
        *,
        force_zip64: bool = False,
    ) -> IO[bytes]:
        """A member's bytes, read through a bounded decompressor (mode ``"r"`` only)."""
        if mode != "r":
            raise ValueError(f"SafeZipFile reads only, not mode {mode!r}")
        info = name if isinstance(name, zipfile.ZipInfo) else self.getinfo(name)
        # zipfile reads the local header (and checks it against the directory); its
        # bytes come out as stored, and _MemberReader decompresses and checks them.
        raw = open_stored(self, info)
        return io.BufferedReader(_MemberReader(raw, info), _CHUNK)

    def read(self, name: str | zipfile.ZipInfo, pwd: bytes | None = None) -> bytes:
        """A whole member, which must declare at most :data:`MAX_READ` bytes."""
        info = name if isinstance(name, zipfile.ZipInfo) else self.getinfo(name)
        if info.file_size > MAX_READ:
            raise ZipMemberError(
                info.filename,
                f"declares {info.file_size} bytes, more than the {MAX_READ} read whole",
            )
        with self.open(info) as f:
            return f.read()
