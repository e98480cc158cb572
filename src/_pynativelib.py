"""pynativelib's start-up module: what the autoload ``.pth`` line runs at every interpreter
start (:func:`start`), without importing the ``nativelib`` package, whose ``__init__.py``
may not be ours (PyPI's unrelated project ``nativelib`` installs its own over it, and that
one imports pandas); and the loader's safety rule (:func:`unsafe`, :func:`chain`), which
:mod:`nativelib.loader` takes from here so that both paths check the same.

The line holds the plan ``nativelib autoload enable`` resolved (:func:`parse_plan`). While
its stamp holds, :func:`start` checks what the loader checks, with the loader's rule, on
the prefix's directories and on each library as opened, and dlopens the libraries
through their directory's descriptor. Anything else (a runtime upgraded, removed or
added; a prefix moved or made unsafe; a copy already in the process) takes the full path,
``nativelib.startup``: the loader's own discovery and checks, as correct, slower. It never
raises and never writes a file; ``NATIVELIB_AUTOLOAD_DEBUG=1`` writes one line to stderr.

Kept small (its bytecode is read at every start): the launcher of the ``nativelib``
command is ``_pynativelib_main``; the plan's writer is ``nativelib.autoload``. Standard
library only (``os``, ``stat``, ``sys``: imported before ``site`` runs), and no
``from __future__`` import (~0.3 ms at start-up).
"""

import os
import stat
import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 ms
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any

__all__ = [
    "DEBUG_VARIABLE",
    "DIR_FLAGS",
    "FILE_FLAGS",
    "PLAN_FORMAT",
    "PLAN_HEAD",
    "PRELOADED",
    "chain",
    "manifest_dirs",
    "parse_plan",
    "stale_dirs",
    "stamp",
    "start",
    "unsafe",
]

DEBUG_VARIABLE = "NATIVELIB_AUTOLOAD_DEBUG"
#: The layout of the plan; a plan of another layout takes the full path.
PLAN_FORMAT = 1
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
#: What the start-up preload loaded, by soname: (path in the prefix, the name it was
#: dlopened by, distribution). The loader takes them as its own loads.
PRELOADED: "dict[str, tuple[str, str, str]]" = {}


# ----------------------------------------------------------------------------- the rule


def unsafe(st: "os.stat_result", what: str) -> "str | None":
    """Why a file or directory with this status is unsafe to load from, or None: owned by
    someone other than root or us, or writable by group or others (a directory may be,
    with the sticky bit)."""
    uid = os.getuid()
    if st.st_uid not in (0, uid):
        return f"{what} is owned by uid {st.st_uid}, not root or {uid}"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (
        stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
    ):
        return f"{what} is writable by group or others"
    return None


def chain(path: str, stop: str) -> "Iterator[str]":
    """``path`` and every directory above it up to ``stop`` (or the root): what the loader
    checks with :func:`unsafe` above a prefix's manifest directory and the prefix."""
    here = path
    while True:
        yield here
        if here == stop or here == os.path.dirname(here):
            return
        here = os.path.dirname(here)


def stamp(st: "os.stat_result") -> "tuple[int, int, int]":
    """What says a file is the one a plan was made from: size, mtime, inode."""
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def manifest_dirs(path: "Sequence[str]", suffix: str) -> "list[tuple[str, int, int, int]]":
    """Each ``<entry>/<suffix>`` directory (a prefix's manifest directory) on ``path``, in
    order, once by device and inode: (directory, device, inode, mtime)."""
    out: list[tuple[str, int, int, int]] = []
    seen: set[tuple[int, int]] = set()
    for entry in path:
        if not entry or entry[0] != "/":
            continue
        folder = f"{entry}/{suffix}"
        try:
            st = os.stat(folder)
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key not in seen and stat.S_ISDIR(st.st_mode):
            seen.add(key)
            out.append((folder, st.st_dev, st.st_ino, st.st_mtime_ns))
    return out


# ----------------------------------------------------------------------------- the plan

# A plan (made by nativelib.autoload.make_plan, written by format_plan there) is text,
# held by the .pth line as one string constant (a literal of nested tuples costs ~10x more
# to compile, at every start):
#   nativelib-autoload-plan <TAB> PLAN_FORMAT <TAB> suffix
#   M <TAB> manifest directory <TAB> device <TAB> inode <TAB> mtime   (manifest_dirs())
#   I <TAB> loader index <TAB> size <TAB> mtime <TAB> inode          (each index read)
#   L <TAB> prefix <TAB> soname <TAB> size <TAB> mtime <TAB> inode <TAB> distribution
# suffix is "nativelib.prefix/share/nativelib/runtimes" (relative to a site directory);
# the L lines are the libraries to load, in load order. parse_plan() makes it
# (PLAN_FORMAT, suffix, manifests, indexes, prefixes), prefixes as
# [(prefix, [(soname, size, mtime, inode, distribution), ...]), ...].
PLAN_HEAD = "nativelib-autoload-plan"


def parse_plan(text: object) -> "tuple[Any, ...] | None":
    """The plan in ``text`` (see above), or None when it is not one of this format."""
    if not isinstance(text, str):
        return None
    lines = text.split("\n")
    head = lines[0].split("\t")
    if len(head) != 3 or head[0] != PLAN_HEAD or head[1] != str(PLAN_FORMAT):
        return None
    manifests: list[tuple[str, int, int, int]] = []
    indexes: list[tuple[str, int, int, int]] = []
    prefixes: list[tuple[str, list[tuple[str, int, int, int, str]]]] = []
    try:
        for line in lines[1:]:
            f = line.split("\t")
            if f[0] == "M" and len(f) == 5:
                manifests.append((f[1], int(f[2]), int(f[3]), int(f[4])))
            elif f[0] == "I" and len(f) == 5:
                indexes.append((f[1], int(f[2]), int(f[3]), int(f[4])))
            elif f[0] == "L" and len(f) == 7:
                if not prefixes or prefixes[-1][0] != f[1]:
                    prefixes.append((f[1], []))
                prefixes[-1][1].append((f[2], int(f[3]), int(f[4]), int(f[5]), f[6]))
            else:
                return None
    except ValueError:
        return None
    return (PLAN_FORMAT, head[2], manifests, indexes, prefixes)


def stale_dirs(plan: object, path: "Sequence[str]") -> "str | None":
    """Why ``plan`` (:func:`parse_plan`) is stale, by what start-up checks before it
    opens anything (``nativelib.autoload.stale`` checks the libraries too), or None."""
    if not isinstance(plan, tuple):
        return "the stored plan was written by another version of pynativelib"
    found = [tuple(d) for d in manifest_dirs(path, plan[1])]
    stored = [tuple(d) for d in plan[2]]
    if found != stored:
        if [d[0] for d in found] == [d[0] for d in stored]:
            changed = next(d[0] for d, s in zip(found, stored, strict=True) if d != s)
            return f"{changed} changed: a runtime was installed, upgraded or removed"
        return "the runtime directories on sys.path changed"
    for file, *want in plan[3]:
        try:
            st = os.stat(file)
        except OSError as e:
            return f"{file}: {e.strerror}"
        if list(stamp(st)) != want:
            return f"{file} changed"
    return None


# ----------------------------------------------------------------------------- start-up

_started: "list[str] | None" = None


def _disabled() -> bool:
    """``NATIVELIB_DISABLE``, as ``nativelib.load()`` reads it."""
    return os.environ.get("NATIVELIB_DISABLE", "").strip() not in ("", "0")


def _already_mapped(plan: "tuple[Any, ...]") -> "str | None":
    """A library of one of the plan's sonames that the process holds already (an
    ``LD_PRELOAD``, an earlier ``.pth``), found in ``/proc/self/maps`` by file name:
    the full path decides what to do with it (reuse it, or refuse a conflict)."""
    if os.environ.get("LD_PRELOAD"):
        return "LD_PRELOAD is set"
    try:
        fd = os.open("/proc/self/maps", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return "no /proc/self/maps"
    try:
        maps = b""
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            maps += chunk
    finally:
        os.close(fd)
    for _prefix, libs in plan[4]:
        for lib in libs:
            stem = lib[0].partition(".so")[0]
            if f"/{stem}.so".encode() in maps:
                return f"a {stem} is in the process already"
    return None


def _fast(plan: "tuple[Any, ...]", loaded: "list[str]") -> "str | None":
    """Load what the plan says; None when done, else why the full path must run (before
    anything was loaded: every check runs first)."""
    why = stale_dirs(plan, sys.path)
    if why is not None:
        return f"the stored plan is stale ({why})"
    prefer = os.environ.get("NATIVELIB_PREFER", "").strip().lower()
    if prefer not in ("", "wheel"):
        return f"NATIVELIB_PREFER={prefer}"
    why = _already_mapped(plan)
    if why is not None:
        return why
    manifest = plan[1].partition("/")[2]  # share/nativelib/runtimes, in the prefix
    opened: list[int] = []
    todo: list[tuple[str, str, str, str]] = []
    try:
        for prefix, libs in plan[4]:
            # check_prefix's directories: the manifest directory up to the prefix, the
            # prefix and its site directory; lib/ itself, never through a link.
            site = os.path.dirname(prefix)
            for d in (*chain(f"{prefix}/{manifest}", prefix), site):
                why = unsafe(os.stat(d), repr(d))
                if why is not None:
                    return why
            lib_fd = os.open(f"{prefix}/lib", DIR_FLAGS)
            opened.append(lib_fd)
            why = unsafe(os.fstat(lib_fd), f"{prefix}/lib")
            if why is not None:
                return why
            via = f"/proc/self/fd/{lib_fd}"
            for soname, *want in libs:
                fd = os.open(soname, FILE_FLAGS, dir_fd=lib_fd)
                opened.append(fd)
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or list(stamp(st)) != want[:3]:
                    return f"the stored plan is stale ({prefix}/lib/{soname} changed)"
                why = unsafe(st, f"{prefix}/lib/{soname}")
                if why is not None:
                    return why
                todo.append((soname, f"{prefix}/lib/{soname}", f"{via}/{soname}", want[3]))
        from _ctypes import dlopen  # noqa: PLC0415 (CPython's; ctypes itself costs ~4 ms)

        for soname, path, via_name, dist in todo:
            dlopen(via_name, os.RTLD_LOCAL)
            PRELOADED[soname] = (path, via_name, dist)
            loaded.append(f"{soname} (loaded {path})")
    except OSError as e:
        return f"{e.filename or ''}: {e.strerror}" if e.strerror else str(e)
    finally:
        # The lib/ descriptors stay open once something was loaded through them (their
        # name is the one each library was opened by); the files' are closed.
        keep = {int(v[1].split("/")[4]) for v in PRELOADED.values()}
        for fd in opened:
            if fd not in keep:
                os.close(fd)
    return None


def _full(notes: "list[str]", loaded: "list[str]") -> None:
    """The full path: ``nativelib.startup`` (the loader's discovery and checks), unless
    the ``nativelib`` package on sys.path is not pynativelib's."""
    from _pynativelib_main import foreign_package  # noqa: PLC0415

    foreign = foreign_package()
    if foreign is not None:
        notes.append(f"not run: {foreign[0]}")
        return
    try:
        import nativelib.startup as full  # noqa: PLC0415
    except Exception as e:
        # A failed import leaves no namespace package 'nativelib' behind (a leftover
        # nativelib/ folder makes one once pynativelib is gone: earlier builds of the
        # runtime wheels put their .pc copies in nativelib/pkgconfig/).
        if getattr(sys.modules.get("nativelib"), "__file__", "") is None:
            del sys.modules["nativelib"]
        notes.append(f"not run: {e!r}")
        return
    for lib in full.run(None, notes):
        loaded.append(f"{lib.soname} ({lib.how} {lib.path})")


def start(plan: object = None) -> None:
    """What the ``.pth`` line runs, with the plan's text (:func:`parse_plan`): see the
    module's docstring. Once per process (a venv's lib64 -> lib symlink can make ``site``
    run its ``.pth`` files twice; the line itself skips a second run)."""
    global _started  # noqa: PLW0603
    if _started is not None:
        return
    loaded: list[str] = []
    _started = loaded
    notes: list[str] = []
    debug = os.environ.get(DEBUG_VARIABLE) == "1"
    if debug:
        import time  # noqa: PLC0415 (a built-in module)

        begin = time.perf_counter()
    try:
        if _disabled():
            notes.append("NATIVELIB_DISABLE is set")
        else:
            parsed = parse_plan(plan) if plan is not None else None
            why = "no stored plan" if parsed is None else _fast(parsed, loaded)
            if why is not None:
                notes.append(f"full discovery: {why}")
                _full(notes, loaded)
            else:
                notes.append("from the stored plan")
    except Exception as e:  # interpreter start must never break
        notes.append(f"failed: {type(e).__name__}: {e}")
    if debug and sys.stderr is not None:  # None under pythonw
        ms = (time.perf_counter() - begin) * 1000
        line = f"nativelib autoload: {', '.join(loaded) or 'nothing'} in {ms:.2f} ms"
        line += f"; {'; '.join(notes)}" if notes else ""
        sys.stderr.write(" ".join(line.split()) + "\n")  # one line, whatever the notes hold
