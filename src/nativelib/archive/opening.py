"""Opening a package by kind or file-name suffix, through the source-kind table
(:mod:`nativelib.sources.base`): each kind names its suffixes and its reader."""

from __future__ import annotations

import os
import stat

from nativelib.archive.members import Archive
from nativelib.errors import SourceError

# -- opening --------------------------------------------------------------------------


def open_archive(path: str | os.PathLike[str], kind: str | None = None) -> Archive:
    """Open an upstream package; ``kind`` comes from the file name unless given.

    Kinds are the registered source kinds and their aliases: ``"deb"``, ``"rpm"``,
    ``"wheel"`` (or ``"whl"``), ``"conda"`` (``.conda``, or ``.tar.bz2`` by its name) and
    ``"tar.bz2"`` (a conda ``.tar.bz2`` whatever its name). Raises
    :class:`~nativelib.errors.SourceError` for an unknown kind or a path that is not a
    readable regular file. Nothing is read until ``info()`` or ``members()``.
    """
    from nativelib.sources import base  # noqa: PLC0415 -- the table; its kinds import us

    text = os.fspath(path)
    if kind is None:
        found = base.kind_for_filename(text)
        if found is None:
            suffixes = base.all_suffixes()
            raise SourceError(
                text,
                "unknown package kind: expected a name ending in "
                f"{', '.join(suffixes[:-1])} or {suffixes[-1]}, or an explicit kind",
            )
        spelled = found.name
    else:
        found = base.get_kind(kind, aliases=True)
        if found is None:
            known = list(base.all_names())
            raise SourceError(text, f"unknown package kind {kind!r}; known: {known}")
        spelled = kind
    try:
        st = os.stat(text)
    except OSError as e:
        raise SourceError(text, f"cannot open: {e.strerror or e}") from e
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(text, "not a regular file")
    return found.open(text, spelled)
