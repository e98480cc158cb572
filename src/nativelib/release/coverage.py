"""The installability check: for each runtime, the newest version pip installs on each
target platform, resolved by pip itself against the release's index.

For each platform (``manylinux_2_28`` means a host with glibc 2.28: pip is given every
tag such a host accepts, :func:`pip_platform_args`, since pip's ``--platform`` expands
only the legacy ``manylinux2014``/``manylinux2010`` spellings) pip is asked for
every runtime at once (``pip install --dry-run --report - --ignore-installed
--only-binary=:all: --no-deps --platform ... --index-url ...``); when that fails (one
runtime has no wheel there), once per runtime, with the runtimes it depends on. Its JSON
report says which version it would install. The index is the release's static index
(``DIR/simple/``) when it has one, else the directory itself (``--find-links``).
``--no-deps`` leaves ``pynativelib``'s own dependencies (packaging, resolvelib: PyPI's)
out, so the check needs nothing but the index; a runtime's dependencies on other
runtimes are asked for with it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nativelib.catalog import Catalog
from nativelib.errors import NativeLibError

__all__ = ["Coverage", "CoverageError", "check_platforms", "normalize_platform"]

_PLATFORM = re.compile(r"^(manylinux_[0-9]+_[0-9]+|manylinux2014|manylinux2010|manylinux1)(_\w+)?$")
_ALIASES = {"manylinux2014": "manylinux_2_17", "manylinux2010": "manylinux_2_12",
            "manylinux1": "manylinux_2_5"}  # fmt: skip


class CoverageError(NativeLibError):
    """The installability check could not run (a bad platform, pip failing)."""


@dataclass(frozen=True)
class Coverage:
    platforms: tuple[str, ...]  # as given, normalized (manylinux_2_17)
    #: runtime -> platform -> the version pip picks, or None (nothing installable)
    matrix: Mapping[str, Mapping[str, str | None]]

    def to_json(self) -> dict[str, object]:
        return {
            "platforms": list(self.platforms),
            "runtimes": {name: dict(row) for name, row in self.matrix.items()},
        }

    def text(self) -> str:
        width = max(len(n) for n in self.matrix) if self.matrix else 7
        cols = [max(len(p), 7) for p in self.platforms]
        head = "runtime".ljust(width) + "".join(
            "  " + p.ljust(c) for p, c in zip(self.platforms, cols, strict=True)
        )
        lines = [head.rstrip()]
        for name, row in self.matrix.items():
            cells = "".join(
                "  " + (row[p] or "-").ljust(c) for p, c in zip(self.platforms, cols, strict=True)
            )
            lines.append((name.ljust(width) + cells).rstrip())
        return "\n".join(lines)


def normalize_platform(text: str) -> str:
    """``manylinux_2_17`` (or ``manylinux2014``, with or without ``_x86_64``) ->
    ``manylinux_2_17``; a CoverageError for anything else."""
    m = _PLATFORM.match(text.strip())
    if m is None:
        raise CoverageError(
            f"--check-platforms: {text!r} is not a manylinux platform",
            hint="e.g. --check-platforms manylinux_2_17 manylinux_2_28 manylinux_2_31",
        )
    base = m.group(1)
    return _ALIASES.get(base, base)


def pip_platform_args(platform: str, arch: str) -> list[str]:
    """The ``--platform`` options that make pip accept every wheel a host of
    ``platform`` runs: pip expands only the legacy ``manylinux2014``/``manylinux2010``
    aliases to the older tags, so ``manylinux_2_28`` is spelled out as every
    ``manylinux_2_N`` up to 2_28 and the legacy aliases it covers."""
    minor = int(normalize_platform(platform).rsplit("_", 1)[1])
    tags = [f"manylinux_2_{n}_{arch}" for n in range(minor, 4, -1)]
    for alias, floor in (("manylinux2014", 17), ("manylinux2010", 12), ("manylinux1", 5)):
        if minor >= floor:
            tags.append(f"{alias}_{arch}")
    return [arg for tag in tags for arg in ("--platform", tag)]


def _pip(
    requirements: Sequence[str], platform: str, arch: str, where: Sequence[str], python: str
) -> dict[str, str] | None:
    """What pip would install for ``requirements`` on ``platform`` (name -> version), or
    None when pip finds no resolution."""
    cmd = [
        sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-",
        "--ignore-installed", "--only-binary=:all:", "--no-deps",
        *pip_platform_args(platform, arch), "--python-version", python,
        *where, "--disable-pip-version-check", "--no-cache-dir",
        "--isolated", *requirements,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        if "No matching distribution" in proc.stderr or "ResolutionImpossible" in proc.stderr:
            return None
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise CoverageError(f"pip install --dry-run failed (exit {proc.returncode}):\n{tail}")
    report = json.loads(proc.stdout)
    return {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in report.get("install", [])
    }


def check_platforms(
    runtimes: Sequence[str],
    platforms: Sequence[str],
    where: Sequence[str],
    catalog: Catalog,
    *,
    arch: str = "x86_64",
    python: str = "3.10",
) -> Coverage:
    """The coverage matrix of ``runtimes`` (distribution names) on ``platforms``;
    ``where`` is what pip is told to look in (``--index-url URL``, or ``--no-index
    --find-links DIR``)."""
    normal = tuple(dict.fromkeys(normalize_platform(p) for p in platforms))
    matrix: dict[str, dict[str, str | None]] = {name: {} for name in runtimes}
    for platform in normal:
        together = _pip(list(runtimes), platform, arch, where, python)
        for name in runtimes:
            if together is not None:
                matrix[name][platform] = together.get(name)
                continue
            wanted = [r.name for r in catalog.in_dependency_order([name])]
            alone = _pip(wanted, platform, arch, where, python)
            matrix[name][platform] = None if alone is None else alone.get(name)
    return Coverage(normal, matrix)
