"""The autoload's full path at interpreter start: :func:`run`, the loader's own discovery
and checks.

The ``.pth`` line runs ``_pynativelib.start`` (pynativelib's top-level module), which
loads from the plan stored in the line without importing this package, and comes here
only when the plan is stale (or a copy is already in the process). :func:`preload` is
what ``.pth`` files written by earlier versions run. Kept apart from
:mod:`nativelib.autoload` (the commands' side: the file, its state, the plan) so that
this path imports only this module and the loader's. No ``from __future__ import
annotations`` here (importing the ``__future__`` module costs ~0.3 ms at start-up):
annotations that name what only a type checker imports are strings. One discovery
(:func:`nativelib.loader.discover_all`) feeds both the choice of distributions and the
load.
"""

import os
import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 ms
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from nativelib.loader import Installed, LoadedLibrary

__all__ = ["DEBUG_VARIABLE", "preload", "run", "selected"]

DEBUG_VARIABLE = "NATIVELIB_AUTOLOAD_DEBUG"


def selected(installed: "Mapping[str, Installed]") -> "list[str]":
    """The installed runtime distributions autoload preloads: those whose libraries are
    all backward-compatible GCC runtimes (cxx14, gomp, gfortran5; never MKL or CUDA,
    whose versions are not interchangeable), dependencies first."""
    from nativelib.loader import BACKWARD_COMPATIBLE  # noqa: PLC0415

    chosen = {
        name
        for name, dist in installed.items()
        if dist.index.to_preload
        and all(lib.soname in BACKWARD_COMPATIBLE for lib in dist.index.libraries)
    }
    out: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in chosen:
            return
        seen.add(name)
        for dep in installed[name].index.dependencies:
            visit(dep)
        out.append(name)

    for name in sorted(chosen):
        visit(name)
    return out


def disabled(environ: "Mapping[str, str]") -> bool:
    """``NATIVELIB_DISABLE``, as ``nativelib.load()`` reads it."""
    return environ.get("NATIVELIB_DISABLE", "").strip() not in ("", "0")


def run(path: "Sequence[str] | None", notes: "list[str]") -> "list[LoadedLibrary]":
    """Load the selected runtimes (:func:`selected`) from the prefix of the site
    directories on ``path`` (default ``sys.path``); each problem becomes a line of
    ``notes``. Raises nothing the loader raises for one distribution."""
    if disabled(os.environ):
        notes.append("NATIVELIB_DISABLE is set")
        return []
    import nativelib  # noqa: PLC0415
    from nativelib import loader  # noqa: PLC0415

    # One discovery: the distributions are chosen from it and loaded from it.
    found = loader.discover_all(path, warn=notes.append)
    names = selected(found[0])
    if not names:
        return []
    try:
        return loader.load(*names, path=path, warn=notes.append, discovered=found)
    except nativelib.errors.NativeLibError as e:
        notes.append(str(e))
    # One distribution failed (a dependency missing, a conflict): load the others.
    done: list[LoadedLibrary] = []
    for name in names:
        try:
            done += loader.load(name, path=path, warn=notes.append, discovered=found)
        except nativelib.errors.NativeLibError as e:
            notes.append(str(e))
    return list({lib.soname: lib for lib in done}.values())


_ran: "list[LoadedLibrary] | None" = None


def preload(path: "Sequence[str] | None" = None) -> "list[LoadedLibrary]":
    """What the ``.pth`` files of earlier versions run at interpreter start: load the
    selected runtimes (:func:`selected`) from the prefix of the site directories on
    ``path`` (default ``sys.path`` as it stands: the site directory being processed and
    those before it).
    Never raises; with ``NATIVELIB_AUTOLOAD_DEBUG=1`` writes one line to stderr."""
    global _ran  # noqa: PLW0603
    if _ran is not None:
        # A venv's lib64 -> lib symlink makes site run its .pth files twice (CPython
        # dedups site directories by path, not by inode): the second run does nothing.
        return _ran
    _ran = []
    notes: list[str] = []
    debug = os.environ.get(DEBUG_VARIABLE) == "1"
    if debug:
        import time  # noqa: PLC0415 (a built-in module)

        start = time.perf_counter()
    try:
        done = run(path, notes)
    except Exception as e:  # interpreter start must never break
        notes.append(f"failed: {type(e).__name__}: {e}")
        done = []
    _ran = done
    if debug:
        ms = (time.perf_counter() - start) * 1000
        loaded = ", ".join(f"{lib.soname} ({lib.how} {lib.path})" for lib in done) or "nothing"
        extra = f"; {'; '.join(notes)}" if notes else ""
        line = f"nativelib autoload: {loaded} in {ms:.2f} ms{extra}"
        if sys.stderr is not None:  # None under pythonw
            sys.stderr.write(" ".join(line.split()) + "\n")  # one line, whatever the notes hold
    return done
