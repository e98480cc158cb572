"""Safe extraction.

Members are written under a temporary sibling, renamed into place when all are written.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from typing import IO

from nativelib.archive.members import (
    DEFAULT_LIMITS,
    Archive,
    Limits,
    Member,
    MemberKind,
    iter_members,
)
from nativelib.archive.opening import open_archive
from nativelib.errors import SourceError

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
