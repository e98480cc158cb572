"""pynativelib: shared native runtime libraries for Python wheels.

``import nativelib`` imports the standard library only: it runs inside other projects'
import time.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
