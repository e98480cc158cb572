"""Opening a wheel's zip archive, for the validator and for repair's reader, each of which
reports with its own error class."""

from __future__ import annotations

import zipfile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from nativelib.errors import NativeLibError

__all__ = ["open_zip"]


def open_zip(
    path: Path, where: str, error: Callable[[str, str], NativeLibError]
) -> zipfile.ZipFile:
    """The wheel at ``path`` as a zip archive; ``error(where, reason)`` when it is none."""
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise error(where, f"not a zip file: {e}") from e
    except OSError as e:
        raise error(where, f"cannot open: {e.strerror or e}") from e
