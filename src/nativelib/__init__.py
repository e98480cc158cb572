"""pynativelib: shared native runtime libraries for Python wheels.

``import nativelib`` imports the standard library only, and little of it: it runs inside
other projects' import time. :func:`load` and :func:`load_for` import the loader on
first use.
"""

from __future__ import annotations

from nativelib.errors import NativeLibError, RuntimeConflict, RuntimeNotFound

# Not typing.TYPE_CHECKING: importing typing alone costs several ms of import time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    from nativelib.loader import LoadedLibrary

__version__ = "0.1.0.dev0"

__all__ = [
    "NativeLibError",
    "RuntimeConflict",
    "RuntimeNotFound",
    "__version__",
    "load",
    "load_for",
]


def load(*runtimes: str, **options: Any) -> list[LoadedLibrary]:
    """Load runtimes (``"cxx14"``, ``"nativelib-gomp"``...) and their dependencies.

    See :func:`nativelib.loader.load`.
    """
    from nativelib import loader  # noqa: PLC0415 (keeps import nativelib light)

    return loader.load(*runtimes, **options)


def load_for(target: str | ModuleType, **options: Any) -> list[LoadedLibrary]:
    """Load the installed runtimes an extension file (or module) needs.

    See :func:`nativelib.loader.load_for`.
    """
    from nativelib import loader  # noqa: PLC0415 (keeps import nativelib light)

    return loader.load_for(target, **options)
