from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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


@pytest.fixture(scope="session")
def release_set(tmp_path_factory: pytest.TempPathFactory, runtime_wheelhouse: Path) -> ReleaseSet:
    """``nativelib release`` of :data:`RELEASE_TOML`, once per session (network). The
    runtime wheelhouse's wheels are copied in first: they are the same builds, so the
    release keeps them (verified) and only builds pynativelib and the index. Read-only."""
    root = tmp_path_factory.mktemp("release")
    release_file = root / "release.toml"
    release_file.write_text(RELEASE_TOML, encoding="utf-8")
    out = root / "dist"
    out.mkdir()
    for wheel in runtime_wheelhouse.glob("*.whl"):
        shutil.copyfile(wheel, out / wheel.name)
    proc = nativelib("release", str(release_file), "-o", str(out), "--json")
    return ReleaseSet(out, release_file, json.loads(proc.stdout))


@pytest.fixture(scope="session")
def pynativelib_dependencies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheels of pynativelib's own dependencies (PyPI's, not the release's), for
    --find-links: installs from the release's index then need nothing else."""
    out = tmp_path_factory.mktemp("pynativelib-deps")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--dest", str(out),
         "packaging>=24", "resolvelib>=1.0"],
        check=True,
    )  # fmt: skip
    return out
