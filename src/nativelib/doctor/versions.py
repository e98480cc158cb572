"""The oldest runtime wheel version that can define a version node, for hints.

A runtime wheel's version is the upstream version of what it ships (GCC 12.2.0 for
``nativelib-cxx14 12.2.0``), so "needs GLIBCXX_3.4.32" becomes
``pip install "nativelib-cxx14>=13.2"``. The table is libstdc++'s ABI history
(``libstdc++-v3/doc/xml/manual/abi.xml``: the release that first shipped each node),
kept as data in ``data/gcc-node-releases.json``;
libgcc_s (``GCC_12.0.0``) and libgfortran (``GFORTRAN_10``) name the release in the node.
A node the table does not know gives no bound: the hint then asks for an upgrade without
one, never for a version that might not have it. This is only for hints: whether a
runtime satisfies a need is decided by its version definitions, exact names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

__all__ = ["first_release", "pip_install", "requirement"]


@lru_cache(maxsize=1)
def _tables() -> tuple[dict[int, str], dict[int, str]]:
    """GLIBCXX_3.4.<n> and CXXABI_1.3.<n> -> the GCC release that first defined it
    (``data/gcc-node-releases.json``)."""
    text = resources.files("nativelib").joinpath("data/gcc-node-releases.json").read_text("utf-8")
    doc = json.loads(text)
    return (
        {int(k): str(v) for k, v in doc["GLIBCXX_3.4"].items()},
        {int(k): str(v) for k, v in doc["CXXABI_1.3"].items()},
    )


_OLDEST = "0"  # older than any runtime wheel: no bound needed

_GLIBCXX_NODE = re.compile(r"^GLIBCXX_3\.4(?:\.(\d+))?$")
_CXXABI_NODE = re.compile(r"^CXXABI_1\.3(?:\.(\d+))?$")
_GCC_NODE = re.compile(r"^GCC_(\d+)\.(\d+)(?:\.\d+)?$")
_GFORTRAN_NODE = re.compile(r"^GFORTRAN_(\d+)$")


def _from_table(table: dict[int, str], minor: str | None) -> str | None:
    n = int(minor or 0)
    if n < min(table):
        return _OLDEST
    return table.get(n)


def first_release(node: str) -> str | None:
    """The upstream release that first defined ``node``; None when not known."""
    m = _GLIBCXX_NODE.match(node)
    if m:
        return _from_table(_tables()[0], m.group(1))
    m = _CXXABI_NODE.match(node)
    if m:
        return _from_table(_tables()[1], m.group(1))
    m = _GCC_NODE.match(node)
    if m:
        major = int(m.group(1))
        return _OLDEST if major < 5 else str(major)
    m = _GFORTRAN_NODE.match(node)
    if m:
        return m.group(1)
    return None


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def _short(version: str) -> str:
    """``13.2.0`` -> ``13.2``; ``12`` stays."""
    parts = version.split(".")
    while len(parts) > 2 and parts[-1] == "0":
        parts.pop()
    if len(parts) == 2 and parts[1] == "0":
        parts.pop()
    return ".".join(parts)


def requirement(distribution: str, nodes: Iterable[str], *, known_only: bool = False) -> str:
    """``nativelib-cxx14>=13.2`` when every node's first release is known, else the name.
    With ``known_only``, nodes the table does not know are left out of the bound (for a
    copy's whole set of definitions, whose other families come with the same release)."""
    best: str | None = None
    for node in nodes:
        release = first_release(node)
        if release is None:
            if known_only:
                continue
            return distribution
        if release != _OLDEST and (best is None or _key(release) > _key(best)):
            best = release
    return distribution if best is None else f"{distribution}>={_short(best)}"


def pip_install(requirement: str) -> str:
    """The pip command for one requirement, quoted when the shell needs it."""
    return f'pip install "{requirement}"' if ">" in requirement else f"pip install {requirement}"
