"""pynativelib's one top-level module: what must run without importing the ``nativelib``
package, whose ``__init__.py`` may not be ours (PyPI's unrelated project ``nativelib``
installs its own over it, and that one imports pandas).

- :func:`start`: what the autoload ``.pth`` line (``nativelib autoload enable``) runs at
  every interpreter start. The line holds the plan ``enable`` resolved (the runtime
  libraries in load order, and a stamp of every file and directory the discovery read);
  when the stamp still holds, it checks what the loader checks (:func:`unsafe`, on the
  prefix's directories and on each library as opened) and dlopens the libraries through
  their directory's descriptor, without importing ``nativelib``. Anything else (the stamp
  does not hold: a runtime upgraded, removed or added, a prefix made unsafe; a copy
  already in the process) takes the full path, ``nativelib.startup``: the loader's own
  discovery and checks, slower, as correct. It never raises and never writes a file;
  ``NATIVELIB_AUTOLOAD_DEBUG=1`` writes one line to stderr.
- :func:`main`: the ``nativelib`` console script. It checks that the ``nativelib``
  package on ``sys.path`` is pynativelib's (reading its ``__init__.py``, never running it)
  before ``nativelib.cli`` is imported.
- :func:`unsafe`, :func:`chain`: the loader's rule for the files and directories it loads
  from; :mod:`nativelib.loader` takes them from here, so that both paths check the same.

Standard library only (``os``, ``stat``, ``sys``: imported by the interpreter before
``site`` runs) and no ``from __future__`` import (~0.3 ms at start-up).
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
    "PRELOADED",
    "chain",
    "foreign_package",
    "format_plan",
    "main",
    "manifest_dirs",
    "parse_plan",
    "stale",
    "stamp",
    "start",
    "unsafe",
]

DEBUG_VARIABLE = "NATIVELIB_AUTOLOAD_DEBUG"
#: The layout of the plan (see :func:`start`); a plan of another layout takes the full path.
PLAN_FORMAT = 1
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
#: What the start-up preload loaded, by soname: (path in the prefix, the name it was
#: dlopened by, distribution). The loader takes them as its own loads.
PRELOADED: "dict[str, tuple[str, str, str]]" = {}
#: The marker line of pynativelib's ``nativelib/__init__.py``.
_MARKER = b'\nDISTRIBUTION = "pynativelib"\n'
_HINT = "pip uninstall nativelib && pip install --force-reinstall pynativelib"


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

# A plan (made by nativelib.autoload.make_plan) is text, held by the .pth line as one
# string constant (a literal of nested tuples costs ~10x more to compile, at every start):
#   nativelib-autoload-plan <TAB> PLAN_FORMAT <TAB> suffix
#   M <TAB> manifest directory <TAB> device <TAB> inode <TAB> mtime   (manifest_dirs())
#   I <TAB> loader index <TAB> size <TAB> mtime <TAB> inode          (each index read)
#   L <TAB> prefix <TAB> soname <TAB> size <TAB> mtime <TAB> inode <TAB> distribution
# suffix is "nativelib.prefix/share/nativelib/runtimes" (relative to a site directory);
# the L lines are the libraries to load, in load order. parse_plan() makes it
# (PLAN_FORMAT, suffix, manifests, indexes, prefixes), prefixes as
# [(prefix, [(soname, size, mtime, inode, distribution), ...]), ...].
_PLAN_HEAD = "nativelib-autoload-plan"


def format_plan(
    suffix: str,
    manifests: "Sequence[tuple[str, int, int, int]]",
    indexes: "Sequence[tuple[str, int, int, int]]",
    libraries: "Sequence[tuple[str, str, int, int, int, str]]",
) -> "str | None":
    """The plan's text (None where a path holds a tab or a line break)."""
    records = [
        (_PLAN_HEAD, PLAN_FORMAT, suffix),
        *(("M", *m) for m in manifests),
        *(("I", *i) for i in indexes),
        *(("L", *lib) for lib in libraries),
    ]
    fields = [[str(v) for v in record] for record in records]
    if any("\t" in v or "\n" in v for record in fields for v in record):
        return None
    return "\n".join("\t".join(record) for record in fields)


def parse_plan(text: object) -> "tuple[Any, ...] | None":
    """The plan in ``text`` (see above), or None when it is not one of this format."""
    if not isinstance(text, str):
        return None
    lines = text.split("\n")
    head = lines[0].split("\t")
    if len(head) != 3 or head[0] != _PLAN_HEAD or head[1] != str(PLAN_FORMAT):
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


def stale(text: object, path: "Sequence[str] | None" = None) -> "str | None":
    """Why the plan in ``text`` no longer says what the full discovery would do on
    ``path`` (default ``sys.path``), or None when it still does (by stat alone: the
    libraries are not opened). What ``nativelib autoload status`` and the doctor report."""
    plan = parse_plan(text)
    try:
        why = _stale_dirs(plan, sys.path if path is None else path)
        if why is not None or plan is None:
            return why
        for prefix, libs in plan[4]:
            for soname, *want in libs:
                file = f"{prefix}/lib/{soname}"
                try:
                    st = os.stat(file)
                except OSError as e:
                    return f"{file}: {e.strerror}"
                if list(stamp(st)) != want[:3]:
                    return f"{file} changed"
    except (TypeError, ValueError, IndexError):
        return "the stored plan cannot be read"
    return None


def _stale_dirs(plan: object, path: "Sequence[str]") -> "str | None":
    """The part of :func:`stale` the start-up path runs before opening anything."""
    if not isinstance(plan, tuple):
        return "the stored plan was written by another version of pynativelib"
    found = [tuple(d) for d in manifest_dirs(path, plan[1])]
    if found != [tuple(d) for d in plan[2]]:
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
    why = _stale_dirs(plan, sys.path)
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
    foreign = foreign_package()
    if foreign is not None:
        notes.append(f"not run: {foreign[0]}")
        return
    try:
        import nativelib.startup as full  # noqa: PLC0415
    except Exception as e:
        # A failed import leaves no namespace package 'nativelib' behind (the runtime
        # wheels' nativelib/pkgconfig/ folder makes one once pynativelib is gone).
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


# ----------------------------------------------------------------------------- the CLI


def foreign_package() -> "tuple[str, str] | None":
    """(error, hint) when the ``nativelib`` package that ``import nativelib`` would run
    is not pynativelib's: its ``__init__.py`` lacks our marker line. Found as the import
    system finds it (``sys.meta_path``: an editable install's finder too), read, never
    run. The site directory's RECORDs are read only to name the other distribution."""
    init = None
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        spec = find("nativelib", None) if find is not None else None
        if spec is not None:
            init = spec.origin if spec.has_location else None
            break
    if init is None or not init.endswith(".py"):
        return None  # no package (or a namespace one): the import says what is wrong
    try:
        with open(init, "rb") as f:
            if _MARKER in f.read(1 << 20):
                return None
    except OSError:
        return None
    package = os.path.dirname(init)
    site = os.path.dirname(package)
    who = []
    try:
        names = sorted(n for n in os.listdir(site) if n.endswith(".dist-info"))
    except OSError:
        names = []
    for name in names:
        stem = name[: -len(".dist-info")]
        if stem.partition("-")[0].lower() == "pynativelib":
            continue
        try:
            with open(os.path.join(site, name, "RECORD"), "rb") as f:
                record = f.read(64 << 20)
        except OSError:
            continue
        if record.startswith(b"nativelib/__init__.py,") or b"\nnativelib/__init__.py," in record:
            who.append(stem.replace("-", " ", 1))
    by = f" ({', '.join(who)})" if who else ""
    return (
        f"{init}: this nativelib package is not pynativelib's: another distribution{by} "
        "installed its own nativelib/__init__.py over it",
        _HINT,
    )


def main() -> int:
    """The ``nativelib`` console script: :func:`foreign_package` first (exit 2), then
    ``nativelib.cli.main``."""
    foreign = foreign_package()
    if foreign is not None:
        sys.stderr.write(f"error: {foreign[0]}\nhint: {foreign[1]}\n")
        return 2
    from nativelib.cli import main as cli_main  # noqa: PLC0415

    return cli_main()
