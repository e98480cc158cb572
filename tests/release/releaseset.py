"""Helpers of the release tests: the command line in a subprocess, the release set."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

#: The targets of the installability check (--check-platforms) the set is built with.
PLATFORMS = ("manylinux_2_17", "manylinux_2_24", "manylinux_2_31", "manylinux_2_36")

#: The release the network tests build: every runtime of the session's runtime wheelhouse
#: from Debian 11 and 12 (two versions each, at their own manylinux floors).
RELEASE_TOML = """\
[runtimes]
cxx14 = { debian-bullseye = "10.2.1", debian-bookworm = "12.2.0" }
gomp = { debian-bullseye = "10.2.1", debian-bookworm = "12.2.0" }
gfortran5 = { debian-bullseye = "10.2.1", debian-bookworm = "12.2.0" }
"""


def nativelib(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The real command line, in a subprocess (as a user runs it)."""
    proc = subprocess.run(
        [sys.executable, "-m", "nativelib", *argv], capture_output=True, text=True, check=False
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


class ReleaseSet:
    def __init__(self, directory: Path, release_file: Path, summary: dict[str, Any]) -> None:
        self.directory = directory
        self.release_file = release_file
        self.summary = summary

    @property
    def index_url(self) -> str:
        return (self.directory / "simple").as_uri() + "/"

    def digests(self) -> dict[str, str]:
        return {f["filename"]: f["sha256"] for f in self.summary["files"]}
