"""The oldest runtime wheel version that can define a version node, for hints.

A runtime wheel's version is the upstream version of what it ships (GCC 12.2.0 for
``nativelib-cxx14 12.2.0``), so "needs GLIBCXX_3.4.32" becomes
``pip install "nativelib-cxx14>=13.2"``. The release that first defined each node is the
one table the bound rule reads (``data/runtime-node-releases.json`` through
:mod:`nativelib.resolver.bounds`: libstdc++'s ABI history, libgcc_s, libgomp,
libgfortran, libquadmath). A node from before GCC 5 (older than any runtime wheel) needs
no bound; a node the table does not know gives no bound: the hint then asks for an
upgrade without one, never for a version that might not have it. This is only for
hints: whether a runtime satisfies a need is decided by its version definitions, exact
names.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["first_release", "pip_install", "requirement"]

_OLDEST = "0"  # older than any runtime wheel: no bound needed
_NO_BOUND_BELOW = (5,)  # every runtime wheel ships GCC 5 or newer


def first_release(node: str) -> str | None:
    """The upstream release that first defined ``node``; ``"0"`` for one older than any
    runtime wheel; None when not known."""
    from nativelib.resolver.bounds import first_release as release_of  # noqa: PLC0415

    found = release_of(node)
    if found is None:
        return None
    return _OLDEST if found.release < _NO_BOUND_BELOW else str(found)


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
