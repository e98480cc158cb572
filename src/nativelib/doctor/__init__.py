"""``nativelib doctor``: what is wrong with an environment, or a live process, and the
command that fixes it.

:func:`diagnose` checks the host (libc, platform tags, the host's libstdc++ and libgomp,
the NVIDIA driver), the runtimes installed in the common prefix (RECORD hashes,
manifests, files claimed twice), every ELF file of the environment (vendored runtime
copies, needs nothing satisfies, sonames found nowhere, OpenMP families, RPATH entries,
CUDA majors the driver cannot run) and, with ``imports``, a child process that imports
modules in order (which runtime copies it loads, and which one won). Each problem is a
:class:`Finding` with a stable code (:data:`CODES`), a severity, the files involved and a
hint. Nothing here is imported by ``import nativelib``.
"""

from __future__ import annotations

from nativelib.doctor.core import Options, diagnose, environment_site_dirs
from nativelib.doctor.model import CODES, JSON_VERSION, Finding, Report

__all__ = [
    "CODES",
    "JSON_VERSION",
    "Finding",
    "Options",
    "Report",
    "diagnose",
    "environment_site_dirs",
]
