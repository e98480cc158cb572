from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from releaseset import PLATFORMS, RELEASE_TOML, ReleaseSet, nativelib


@pytest.fixture(scope="session")
def release_set(tmp_path_factory: pytest.TempPathFactory, runtime_wheelhouse: Path) -> ReleaseSet:
    """``nativelib release`` of :data:`RELEASE_TOML`, once per session (network). The
    runtime wheelhouse's wheels are copied in first: they are the same builds, so the
    release keeps them (verified) and only builds pynativelib and the index; then pip
    resolves the coverage matrix of :data:`PLATFORMS` from that index. Read-only."""
    root = tmp_path_factory.mktemp("release")
    release_file = root / "release.toml"
    release_file.write_text(RELEASE_TOML, encoding="utf-8")
    out = root / "dist"
    out.mkdir()
    for wheel in runtime_wheelhouse.glob("*.whl"):
        shutil.copyfile(wheel, out / wheel.name)
    proc = nativelib(
        "release", str(release_file), "-o", str(out), "--json", "--check-platforms", *PLATFORMS
    )
    assert proc.stderr == "", proc.stderr  # no progress line without a terminal
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
