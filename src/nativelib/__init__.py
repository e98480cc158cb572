"""pynativelib: shared native runtime libraries for Python wheels.

``import nativelib`` imports the standard library only, and little of it: it runs inside
other projects' import time. :func:`load` and :func:`load_for` import the loader on
first use; the error classes exported here come from :mod:`nativelib.errors` on first
use too (17 classes: ~0.7 ms that a load which raises nothing does not pay).
"""

# No `from __future__ import annotations` here: importing `__future__` costs ~0.3 ms at
# interpreter start (the autoload's .pth runs this module); annotations that name what
# only a type checker imports are strings.

import sys

# Not typing.TYPE_CHECKING: importing typing alone costs several ms of import time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    from nativelib.errors import NativeLibError, RuntimeConflict, RuntimeNotFound
    from nativelib.loader import LoadedLibrary

__version__ = "0.1.0.dev0"
#: The distribution this ``__init__.py`` belongs to. The CLI checks it at start-up: PyPI's
#: unrelated project ``nativelib`` installs an ``__init__.py`` of its own over this one
#: (pip says nothing), and our other modules, still there, would run under it.
DISTRIBUTION = "pynativelib"

_ERRORS = ("NativeLibError", "RuntimeConflict", "RuntimeNotFound")

__all__ = [
    "NativeLibError",
    "RuntimeConflict",
    "RuntimeNotFound",
    "__version__",
    "load",
    "load_for",
]


def load(*runtimes: str, **options: "Any") -> "list[LoadedLibrary]":
    """Load runtimes (``"cxx14"``, ``"nativelib-gomp"``...) and their dependencies.

    See :func:`nativelib.loader.load`.
    """
    from nativelib import loader  # noqa: PLC0415 (keeps import nativelib light)

    return loader.load(*runtimes, **options)


def load_for(target: "str | ModuleType", **options: "Any") -> "list[LoadedLibrary]":
    """Load the installed runtimes an extension file (or module) needs.

    See :func:`nativelib.loader.load_for`.
    """
    from nativelib import loader  # noqa: PLC0415 (keeps import nativelib light)

    return loader.load_for(target, **options)


def __getattr__(name: str) -> object:
    """PEP 562: ``nativelib.errors`` and the error classes exported here are imported on
    first use. The loader's modules reach every error class as ``nativelib.errors.X``, so
    that only a load that raises (or catches) an error imports them."""
    if name == "errors" or name in _ERRORS:
        __import__("nativelib.errors")  # binds nativelib.errors (no fromlist: no recursion)
        errors = sys.modules["nativelib.errors"]
        value = errors if name == "errors" else getattr(errors, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nativelib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_ERRORS, "errors"})
