"""Read upstream binary packages as one small protocol, and extract them safely.

Five kinds of package are read: Debian ``.deb`` (an ar archive holding ``data.tar.*``),
``.rpm`` (our own reader of the lead, the headers and the cpio "newc" payload), wheels
(``.whl``, zip), ``.conda`` (a zip holding ``pkg-*.tar.zst``) and conda ``.tar.bz2``. Each
is an :class:`Archive`: ``info()`` gives the package's metadata as a :class:`PackageInfo`
and ``members()`` yields the payload's members, in archive order, as ``(Member, stream)``
pairs. Tar members are read by our own small reader, not :mod:`tarfile`: it bounds the
size of every extended header it keeps in memory and reports a damaged header instead of
silently ending the archive there.

Every member, whatever the format, passes the same checks (:func:`check_member`) before
anything is written for it; the whole archive is rejected with an
:class:`~nativelib.errors.UnsafeArchiveError` naming the archive and the member when one
fails:

- its name is empty, holds a NUL byte or a backslash, is absolute, has a ``..``
  component (even one that would not escape: real packages never need one), a component
  longer than 255 bytes, or repeats an earlier member's name;
- a parent component is an earlier symlink (the member would be written through it) or
  an earlier file;
- it is a link named ``.`` (the destination root itself);
- it is a symlink with an empty or absolute target, or one whose target, resolved
  lexically from the link's directory, leaves the root, or goes up (``..``) from
  anything but a directory already extracted (so that no later symlink can turn an
  innocent-looking target into one that escapes);
- it is a hard link to anything but an earlier regular file;
- it is a device, FIFO, socket or an unknown member type, or has setuid, setgid or
  sticky bits;
- the archive has more than :attr:`Limits.max_members` members, or a file is larger
  than :attr:`Limits.max_member_size`, or the files together exceed
  :attr:`Limits.max_total_size`. Every file counts, extracted or skipped (a skipped
  member is still decompressed to reach the next one), and no member's stream gives
  more bytes than its header claims, so a header that under-states a size changes
  nothing.

A corrupt, truncated or unsupported archive raises :class:`~nativelib.errors.SourceError`
naming it. :func:`extract` writes into a fresh temporary sibling of the destination and
renames it into place only when every member was written; on any error the temporary
directory is removed and the destination is left as it was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nativelib.archive.members import (
    DEFAULT_LIMITS,
    Archive,
    CheckState,
    Limits,
    Member,
    MemberKind,
    PackageInfo,
    PackagePath,
    check_member,
    iter_members,
    name_problem,
)
from nativelib.lazy import lazy_getattr

if TYPE_CHECKING:
    from nativelib.archive.conda import (
        CondaArchive,
        CondaTarBz2Archive,
        extract_with_info_files,
        info_files,
    )
    from nativelib.archive.deb import DebArchive
    from nativelib.archive.extraction import extract
    from nativelib.archive.opening import open_archive
    from nativelib.archive.rpm import RpmArchive
    from nativelib.archive.zip import WheelArchive

# The readers (and zstandard, which they need) are imported when first used: the member
# model and the one name rule are used by layers that run in a base install.
_LAZY = {
    "CondaArchive": "conda",
    "CondaTarBz2Archive": "conda",
    "info_files": "conda",
    "extract_with_info_files": "conda",
    "DebArchive": "deb",
    "extract": "extraction",
    "open_archive": "opening",
    "RpmArchive": "rpm",
    "WheelArchive": "zip",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "DEFAULT_LIMITS",
    "Archive",
    "CheckState",
    "CondaArchive",
    "CondaTarBz2Archive",
    "DebArchive",
    "Limits",
    "Member",
    "MemberKind",
    "PackageInfo",
    "PackagePath",
    "RpmArchive",
    "WheelArchive",
    "check_member",
    "extract",
    "extract_with_info_files",
    "info_files",
    "iter_members",
    "name_problem",
    "open_archive",
]
