"""Opening a wheel's zip archive, for the validator and for repair's reader, each of which
reports with its own error class. The archive is a :class:`~nativelib.safezip.SafeZipFile`:
members stored or deflated only, read with bounded memory."""

from __future__ import annotations

import zipfile

from nativelib.errors import FileReadError
from nativelib.files import open_regular_file
from nativelib.safezip import SafeZipFile, ZipMemberError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from nativelib.errors import NativeLibError

__all__ = ["open_zip"]


def open_zip(
    path: Path, where: str, error: Callable[[str, str], NativeLibError]
) -> zipfile.ZipFile:
    """The wheel at ``path`` as a zip archive; ``error(where, reason)`` when it is none
    (a FIFO or a device is refused before zipfile opens it: it would block, or never end),
    or when a member may not be read (compressed other than stored or deflated, encrypted)."""
    try:
        open_regular_file(path, follow_symlinks=True).close()
    except FileReadError as e:
        raise error(where, e.reason) from e
    try:
        return SafeZipFile(path)
    except ZipMemberError as e:
        raise error(where, str(e)) from e
    except zipfile.BadZipFile as e:
        raise error(where, f"not a zip file: {e}") from e
    except OSError as e:
        raise error(where, f"cannot open: {e.strerror or e}") from e
