"""Leftovers of killed runs: the one rule for temporary files and trees that a process
killed with ``kill -9`` never removed, and the names that let a later run judge them.

Every temporary name nativelib creates outside a ``with`` block it can always close (the
wheel writer's ``.<wheel>.<tag>.tmp`` in the output directory, the download cache's
``<file>.<tag>.partial``, the ``nativelib-build-<tag>`` and ``nativelib-repair-<tag>``
trees in ``TMPDIR``) carries an owner tag, ``<pid>-<host>-<random>``: the creating
process id, a token for this boot and pid namespace (so that a pid is only ever judged
where it means the same process) and 64 random bits.

A leftover is stale (:func:`is_stale`) when its owner tag is this machine's and its pid
is no longer running, or, when the tag is not this machine's or the name has none (an
older nativelib, another host sharing the directory), when it has not been modified for
``max_age`` seconds. :func:`remove_stale` applies the rule to one directory; only entries
owned by the current user are touched, a symlink is never followed, and errors are
logged and skipped (cleaning up never fails a run).

Standard library only.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "STALE_SECONDS",
    "TREE_STALE_SECONDS",
    "is_stale",
    "owner_tag",
    "remove_stale",
    "temporary_tree",
]

#: A leftover file whose owner cannot be judged is stale after this long unmodified (a live
#: writer keeps writing).
STALE_SECONDS = 3600.0
#: The same for a temporary tree: its top directory's time changes only when entries are
#: added or removed there, so a live build may leave it unchanged for long.
TREE_STALE_SECONDS = 86400.0

_log = logging.getLogger(__name__)
_TAG = re.compile(r"(?:^|[.-])(?P<pid>[0-9]{1,10})-(?P<host>[0-9a-f]{8})-[0-9a-f]{16}(?:[.-]|$)")
_host_token: str | None = None


def _host() -> str:
    """8 hex digits naming this boot and pid namespace ("00000000" when /proc cannot
    tell: then no pid is ever judged dead)."""
    global _host_token  # noqa: PLW0603 (computed once per process)
    if _host_token is None:
        import zlib  # noqa: PLC0415

        try:
            with open("/proc/sys/kernel/random/boot_id", "rb") as f:
                boot = f.read(64).strip()
            namespace = os.stat("/proc/self/ns/pid").st_ino
        except OSError:
            _host_token = "00000000"
        else:
            token = zlib.crc32(boot + b":" + str(namespace).encode()) or 1
            _host_token = f"{token:08x}"
    return _host_token


def owner_tag() -> str:
    """``<pid>-<host>-<16 random hex digits>``: the part of a temporary name that says
    which process made it."""
    return f"{os.getpid()}-{_host()}-{secrets.token_hex(8)}"


def _alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a process we can judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: someone else's process, running
    return True


def is_stale(name: str, mtime: float, max_age: float, now: float | None = None) -> bool:
    """Whether the leftover called ``name``, last modified at ``mtime``, belongs to a run
    that died (see the module docstring)."""
    m = _TAG.search(name)
    if m is not None and m.group("host") == _host() != "00000000":
        return not _alive(int(m.group("pid")))
    return (time.time() if now is None else now) - mtime > max_age


def remove_stale(
    directory: str | os.PathLike[str],
    pattern: str,
    max_age: float = STALE_SECONDS,
    *,
    trees: bool = False,
) -> int:
    """Remove the stale leftovers in ``directory`` whose whole name matches the regular
    expression ``pattern``: files (or symlinks), or whole directory trees when ``trees``;
    entries of the other kind are left alone. Returns how many were removed."""
    match = re.compile(pattern).fullmatch
    now = time.time()
    uid = os.getuid()
    try:
        with os.scandir(directory) as it:
            found = []
            for e in it:
                if not match(e.name):
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode) != trees or st.st_uid != uid:
                    continue
                if is_stale(e.name, st.st_mtime, max_age, now):
                    found.append(e.path)
    except OSError:
        return 0
    removed = 0
    for path in found:
        try:
            if trees:
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except FileNotFoundError:
            continue  # another run removed it first
        except OSError as e:
            _log.warning("cannot remove the leftover %s of a run that died: %s", path, e)
            continue
        removed += 1
        _log.info("removed %s, left by a run that died", path)
    return removed


@contextmanager
def temporary_tree(kind: str) -> Iterator[str]:
    """A new ``nativelib-<kind>-<owner tag>-...`` directory in ``TMPDIR``, removed on
    exit; the stale trees of that kind that killed runs left there are removed first."""
    prefix = f"nativelib-{kind}-"
    remove_stale(tempfile.gettempdir(), re.escape(prefix) + ".+", TREE_STALE_SECONDS, trees=True)
    with tempfile.TemporaryDirectory(prefix=f"{prefix}{owner_tag()}-") as tmp:
        yield tmp
