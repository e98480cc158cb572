"""Opening a package by kind or file-name suffix."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from nativelib.archive.conda import CondaArchive, CondaTarBz2Archive
from nativelib.archive.deb import DebArchive
from nativelib.archive.members import Archive
from nativelib.archive.rpm import RpmArchive
from nativelib.archive.zip import WheelArchive
from nativelib.errors import SourceError

# -- opening --------------------------------------------------------------------------

_KINDS: dict[str, Callable[[str], Archive]] = {
    "deb": DebArchive,
    "rpm": RpmArchive,
    "wheel": WheelArchive,
    "whl": WheelArchive,
    "conda": CondaArchive,
    "tar.bz2": CondaTarBz2Archive,
}
_SUFFIXES = (
    (".deb", "deb"),
    (".udeb", "deb"),
    (".rpm", "rpm"),
    (".whl", "wheel"),
    (".conda", "conda"),
    (".tar.bz2", "tar.bz2"),
)


def open_archive(path: str | os.PathLike[str], kind: str | None = None) -> Archive:
    """Open an upstream package; ``kind`` comes from the file name unless given.

    Kinds: ``"deb"``, ``"rpm"``, ``"wheel"`` (or ``"whl"``), ``"conda"`` (``.conda``)
    and ``"tar.bz2"`` (a conda ``.tar.bz2``). Raises
    :class:`~nativelib.errors.SourceError` for an unknown kind or a path that is not a
    readable regular file. Nothing is read until ``info()`` or ``members()``.
    """
    text = os.fspath(path)
    if kind is None:
        lower = text.lower()
        kind = next((k for suffix, k in _SUFFIXES if lower.endswith(suffix)), None)
        if kind is None:
            raise SourceError(
                text,
                "unknown package kind: expected a name ending in .deb, .rpm, .whl, .conda"
                " or .tar.bz2, or an explicit kind",
            )
    factory = _KINDS.get(kind)
    if factory is None:
        raise SourceError(text, f"unknown package kind {kind!r}; known: {sorted(_KINDS)}")
    try:
        st = os.stat(text)
    except OSError as e:
        raise SourceError(text, f"cannot open: {e.strerror or e}") from e
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(text, "not a regular file")
    return factory(text)
