"""Opening files that may be anything: every reader of a file it did not write (a
RECORD, METADATA, a manifest, the loader's index, a wheel to repair) opens it here.

A FIFO, a device or a socket in place of a regular file must not hang or flood a reader:
the file is opened with ``O_NONBLOCK`` (opening a FIFO never blocks), checked with
``fstat`` on the descriptor actually opened (no window between check and use), and read
under a size bound. Where following a symlink is never legitimate (files pip installed
are regular files) ``O_NOFOLLOW`` refuses one too. Standard library only, and light: the
loader reads its index through here at other projects' import time.
"""

# No `from __future__ import annotations` here: importing `__future__` costs ~0.3 ms at
# interpreter start (the autoload's .pth runs this module); annotations that name what
# only a type checker imports are strings.

import os
import stat

import nativelib  # its errors submodule is imported when a file is refused: nativelib.errors

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: this module does not import typing
if TYPE_CHECKING:
    from typing import BinaryIO

    import nativelib.errors

__all__ = ["file_kind", "open_regular_file", "read_regular_file"]

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)


def file_kind(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words (``"a FIFO"``)."""
    if stat.S_ISREG(mode):
        return "a regular file"
    for test, name in _KINDS:
        if test(mode):
            return name
    return f"a special file (mode {mode:#o})"


#: errno.ELOOP, without importing errno (~0.1 ms) on the loader's path.
_ELOOP = 40


def _open_fd(path: str, follow_symlinks: bool) -> "tuple[int, os.stat_result]":
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError as e:
        # ELOOP (errno 40 on Linux) under O_NOFOLLOW: the last component is a symlink.
        if not follow_symlinks and e.errno == _ELOOP and os.path.islink(path):
            raise nativelib.errors.FileReadError(
                path, "not a regular file: it is a symbolic link"
            ) from e
        raise nativelib.errors.FileReadError(path, f"cannot open: {e.strerror or e}") from e
    try:
        st = os.fstat(fd)
    except OSError as e:
        os.close(fd)
        raise nativelib.errors.FileReadError(path, f"cannot stat: {e.strerror or e}") from e
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise nativelib.errors.FileReadError(
            path, f"not a regular file: it is {file_kind(st.st_mode)}"
        )
    return fd, st


def open_regular_file(
    path: "str | os.PathLike[str]", *, follow_symlinks: bool = False
) -> "BinaryIO":
    """``path`` open for binary reading, refused with
    :class:`~nativelib.errors.FileReadError` unless it is a regular file (and, unless
    ``follow_symlinks``, itself no symlink). For a reader that streams (hashing); one that
    keeps what it reads uses :func:`read_regular_file`."""
    fd, _st = _open_fd(os.fspath(path), follow_symlinks)
    return os.fdopen(fd, "rb")


def read_regular_file(
    path: "str | os.PathLike[str]", limit: int, *, follow_symlinks: bool = False
) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them:
    :class:`~nativelib.errors.FileReadError` says why not (not a regular file, a symlink where
    ``follow_symlinks`` is false, larger than ``limit``, an I/O error)."""
    where = os.fspath(path)
    fd, st = _open_fd(where, follow_symlinks)
    try:
        size = st.st_size
        if size > limit:
            raise nativelib.errors.FileReadError(
                where, f"too large: {size} bytes, more than the {limit} allowed"
            )
        chunks = []
        total = 0
        # One byte past the limit tells a file that grew since fstat from one that did not.
        # Each read asks for what fstat said is left (at least 64 KiB, never past the
        # limit): a small file does not get a buffer of ``limit`` bytes.
        want = min(size, limit) + 1
        while total <= limit:
            chunk = os.read(fd, min(max(want - total, 1 << 16), limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as e:
        raise nativelib.errors.FileReadError(where, f"cannot read: {e.strerror or e}") from e
    finally:
        os.close(fd)
    if total > limit:
        raise nativelib.errors.FileReadError(
            where, f"too large: more than the {limit} bytes allowed"
        )
    return b"".join(chunks)
