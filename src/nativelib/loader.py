"""Preload runtime libraries from the common prefix: exactly one copy of each per process.

Standard library only; it runs inside other projects' import time.

How one soname is loaded (``load`` and ``load_for`` share it):

1. The process may already hold a library with that soname (another extension brought
   it, an ``LD_PRELOAD``, conda's libstdc++): found with ``dlopen(soname, RTLD_NOLOAD)``,
   its path with ``dlinfo``. If its version definitions cover what is needed it is
   reused ("reused"); if not, :class:`~nativelib.errors.RuntimeConflict` names both
   paths and the missing nodes. A second copy is never loaded.
2. Else the wheel's copy, unless ``NATIVELIB_PREFER`` says otherwise for the
   backward-compatible GCC runtimes (libstdc++, libgcc_s, libatomic, libgomp,
   libgfortran, libquadmath): ``newest`` takes the host's own copy (system library
   directories only) when it provides a strict superset of the wheel's version nodes,
   ``system`` takes it when it provides what is needed ("host"). The default, ``wheel``,
   is the same file on every host, chosen by the resolver, not by what the host has.
3. Else the wheel's copy is loaded ("loaded"), ``RTLD_LOCAL`` unless a loaded library
   needs it without a DT_NEEDED entry (MKL's threading layers on an OpenMP runtime:
   ``RTLD_GLOBAL`` for that one), and only from a prefix directory that nobody else can
   write: the soname is one file name, the file is opened once without following links
   in the prefix's own ``lib/`` (held open, and checked on every load), checked as opened
   (a regular file owned by root or us, writable by nobody else), and dlopened through
   that directory's descriptor (``/proc/self/fd/<lib>/<soname>``), so that no rename or
   symlink between the check and the dlopen can put another file there.

``NATIVELIB_DISABLE=1`` makes ``load`` and ``load_for`` do nothing.
"""

# No `from __future__ import annotations` here: importing `__future__` costs ~0.3 ms at
# interpreter start (the autoload's .pth runs this module); annotations that name what
# only a type checker imports are strings.

import _thread
import os
import stat
import sys

import nativelib  # its errors submodule is imported when one is raised: nativelib.errors

# The rule for what the loader loads from (a file or directory owned by root or us,
# writable by nobody else) lives in pynativelib's top-level module, which the autoload's
# start-up path runs without importing this package: one rule for both.
from _pynativelib import DIR_FLAGS as _DIR_FLAGS
from _pynativelib import FILE_FLAGS as _FILE_FLAGS
from _pynativelib import PRELOADED as _PRELOADED
from _pynativelib import chain as _chain
from _pynativelib import unsafe as _unsafe
from nativelib._frozen import Frozen, setfield
from nativelib._index import (
    LIB_DIR,
    MANIFEST_DIR,
    PREFIX_DIRNAME,
    LoaderIndex,
    read_loader_index,
    soname_problem,
)
from nativelib._openmp import FAMILIES as _OPENMP_FAMILIES

# Only what the standard library already loaded at start-up, _ctypes (the extension
# module under ctypes: dlopen and dlclose, without ctypes' own ~4 ms of import) and our
# own light modules: the budget is 2 ms over a bare dlopen. No ctypes (only to read the
# path of a copy already in the process), typing, dataclasses, re, json, threading,
# warnings or nativelib.errors (only to raise or catch one: the package imports it on
# first use of the attribute) at import time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from types import ModuleType

    import nativelib.errors
    from nativelib.elf import ElfInfo
    from nativelib.errors import NativeLibError

__all__ = [
    "BACKWARD_COMPATIBLE",
    "Installed",
    "LoadedLibrary",
    "check_library",
    "check_prefix",
    "discover",
    "discover_all",
    "is_openmp_provider",
    "load",
    "load_for",
    "loaded_path",
    "openmp_runtimes",
]

#: Runtimes whose newer versions are backward compatible: a newer host copy may win.
BACKWARD_COMPATIBLE = frozenset(
    {
        "libstdc++.so.6",
        "libgcc_s.so.1",
        "libatomic.so.1",
        "libgomp.so.1",
        "libgfortran.so.5",
        "libquadmath.so.0",
    }
)
#: OpenMP runtime families (from the catalog, through the generated ``_openmp`` table):
#: the sonames each is loaded under, the stems of their file names (auditwheel's renamed
#: copies, ``libgomp-a34b3233.so.1.0.0``, included), the runtime distributions that ship
#: one, and the distribution each MKL_THREADING_LAYER value picks.
_OPENMP_SONAMES = {label: sonames for label, _dist, _layer, sonames in _OPENMP_FAMILIES}
_OPENMP_STEMS = {
    label: tuple({s.partition(".so")[0]: None for s in sonames})
    for label, sonames in _OPENMP_SONAMES.items()
}
_OPENMP_PROVIDERS = frozenset(dist for _label, dist, _layer, _s in _OPENMP_FAMILIES if dist)
_MKL_LAYERS = {layer: dist for _label, dist, layer, _s in _OPENMP_FAMILIES if layer and dist}
#: MKL's own default threading layer.
_MKL_DEFAULT_LAYER = "INTEL"
_PREFER = ("wheel", "newest", "system")


class Installed(Frozen):
    """A runtime distribution found in a site directory."""

    __slots__ = ("index", "prefix")
    index: LoaderIndex
    prefix: str  # .../site-packages/nativelib.prefix

    def __init__(self, index: LoaderIndex, prefix: str) -> None:
        setfield(self, "index", index)
        setfield(self, "prefix", prefix)

    @property
    def name(self) -> str:
        return self.index.name

    def library_path(self, soname: str) -> str:
        return os.path.join(self.prefix, LIB_DIR, soname)


class LoadedLibrary(Frozen):
    """One library ``load`` dealt with: where it is, and what was done."""

    __slots__ = ("soname", "path", "how", "distribution")
    soname: str
    path: str
    how: str  # "loaded" (now, from the wheel) | "reused" (already there) | "host"
    distribution: str | None

    def __init__(self, soname: str, path: str, how: str, distribution: str | None) -> None:
        setfield(self, "soname", soname)
        setfield(self, "path", path)
        setfield(self, "how", how)
        setfield(self, "distribution", distribution)


def _warn(message: str) -> None:
    import warnings  # noqa: PLC0415 (only when there is something to say)

    warnings.warn(message, RuntimeWarning, stacklevel=4)


# ----------------------------------------------------------------------------- dl*


_RTLD_DI_LINKMAP = 2

# CPython's ctypes.CDLL opens a library with _ctypes.dlopen (mode | RTLD_NOW; an OSError
# with dlerror's message when it fails), and so does the loader, without importing ctypes.
try:
    from _ctypes import dlclose as _dlclose
    from _ctypes import dlopen as _dlopen
except ImportError:  # pragma: no cover - an interpreter without CPython's _ctypes

    def _dlopen(
        name: "str | bytes | os.PathLike[str] | os.PathLike[bytes]", flag: int = 0, /
    ) -> int:
        import ctypes  # noqa: PLC0415

        handle: int = ctypes.CDLL(os.fsdecode(name), mode=flag)._handle
        return handle

    def _dlclose(handle: int, /) -> None:
        return None  # a probe's extra reference only keeps a library that is loaded anyway


_link_name: "Callable[[int], str] | None" = None


def _path_of(handle: int) -> str:
    """The path of the object behind a dlopen handle (its ``l_name``, through dlinfo),
    then dlclose it. ctypes is imported here, when the process already holds a copy."""
    global _link_name  # noqa: PLW0603 (made on first use: ctypes stays off import time)
    try:
        if _link_name is None:
            _link_name = _make_link_name()
        return _link_name(handle)
    finally:
        _dlclose(handle)


def _make_link_name() -> "Callable[[int], str]":
    import ctypes  # noqa: PLC0415 (~4 ms: only when a copy is already in the process)

    lib = ctypes.CDLL(None)
    if not hasattr(lib, "dlinfo"):  # pragma: no cover - glibc < 2.34
        lib = ctypes.CDLL("libdl.so.2")
    dlinfo = lib.dlinfo
    dlinfo.restype = ctypes.c_int
    dlinfo.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)

    class LinkMap(ctypes.Structure):  # the start of glibc's struct link_map
        _fields_ = (
            ("l_addr", ctypes.c_void_p),
            ("l_name", ctypes.c_char_p),
            ("l_ld", ctypes.c_void_p),
            ("l_next", ctypes.c_void_p),
            ("l_prev", ctypes.c_void_p),
        )

    def link_name(handle: int) -> str:
        link = ctypes.POINTER(LinkMap)()
        if dlinfo(handle, _RTLD_DI_LINKMAP, ctypes.byref(link)) != 0 or not link:
            return ""  # pragma: no cover - dlinfo on a valid handle does not fail
        return os.fsdecode(link.contents.l_name or b"")

    return link_name


def loaded_path(soname: str) -> str | None:
    """The path of the library with this soname that the process holds, if any."""
    # RTLD_NOLOAD: a handle only when the process holds it (found by soname in memory;
    # else glibc looks for the file as a dlopen would, to compare device and inode).
    try:
        handle = _dlopen(soname, os.RTLD_LAZY | os.RTLD_NOLOAD)
    except OSError:
        return None  # not in the process
    name = _path_of(handle) or soname
    # l_name is the path it was opened by (the loader's own go through /proc/self/fd:
    # their path in the prefix is recorded); report the real file, as everywhere else.
    if name not in _opened_as:
        for path, opened, _dist in _PRELOADED.values():
            _opened_as.setdefault(opened, path)
    name = _opened_as.get(name, name)
    return os.path.realpath(name) if name.startswith("/") else name


def openmp_runtimes() -> dict[str, list[str]]:
    """The OpenMP runtimes mapped in this process, by family (from /proc/self/maps)."""
    found: dict[str, list[str]] = {}
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:  # pragma: no cover - Linux always has it
        return found
    if not any(f"/{stem}" in text for stems in _OPENMP_STEMS.values() for stem in stems):
        return found  # the usual case, without splitting a line
    fields = (line.split(None, 5) for line in text.splitlines())
    paths = {p[5].strip() for p in fields if len(p) == 6 and p[5].startswith("/")}
    for path in sorted(paths):
        base = path.rsplit("/", 1)[-1]
        for family, stems in _OPENMP_STEMS.items():
            if ".so" in base and any(base.startswith((f"{s}.so", f"{s}-")) for s in stems):
                found.setdefault(family, []).append(path)
    return found


# ----------------------------------------------------------------------------- discovery


def _site_dirs(path: "Sequence[str]") -> list[str]:
    """Absolute sys.path entries that are directories, never '' or the current directory,
    each directory once (by device and inode: no realpath walk per entry)."""
    try:
        cwd = os.stat(".")
        seen = {(cwd.st_dev, cwd.st_ino)}
    except OSError:  # the current directory was removed
        seen = set()
    out: list[str] = []
    for entry in path:
        if not entry or not os.path.isabs(entry):
            continue
        try:
            st = os.stat(entry)
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen or not stat.S_ISDIR(st.st_mode):
            continue
        seen.add(key)
        out.append(entry)
    return out


def discover(
    path: "Sequence[str] | None" = None, *, warn: "Callable[[str], None] | None" = None
) -> "dict[str, Installed]":
    """Every runtime distribution installed under a site directory on ``path``
    (default ``sys.path``); where one is installed twice, the first entry wins, as for
    imports. Only ``<entry>/nativelib.prefix/share/nativelib/runtimes/*.load`` is read
    (the loader's index of each manifest).
    A malformed manifest is skipped with a warning (``warn``, default a RuntimeWarning):
    it must not break an import.
    """
    return _discover(path, warn)[0]


def discover_all(
    path: "Sequence[str] | None" = None, *, warn: "Callable[[str], None] | None" = None
) -> "tuple[dict[str, Installed], dict[str, nativelib.errors.NativeLibError]]":
    """:func:`discover`, and why each distribution it skipped was refused (an unsafe
    prefix, an unreadable index): what :func:`load` takes as ``discovered``, so that a
    caller that chose its runtimes from a discovery does not pay for a second one."""
    return _discover(path, warn)


def _refused_prefix(
    prefix: str, dist: str, e: "nativelib.errors.UnsafeRuntimePath"
) -> "nativelib.errors.NativeLibError":
    return nativelib.errors.UnsafeRuntimePath(
        prefix,
        f"{e.reason}: nativelib.load() refuses this prefix, so {dist} installed in it is "
        "not loaded",
        hint=f"make {prefix} and its lib/ real directories owned by you or root and "
        f"writable by nobody else (chmod -R go-w {prefix}), or reinstall {dist} into a "
        "site directory only you can write",
    )


def _discover(
    path: "Sequence[str] | None", warn: "Callable[[str], None] | None" = None
) -> "tuple[dict[str, Installed], dict[str, nativelib.errors.NativeLibError]]":
    """:func:`discover`, and why each distribution skipped was refused (its unsafe
    prefix, or its unreadable index), for the error that names it."""
    found: dict[str, Installed] = {}
    refused: dict[str, nativelib.errors.NativeLibError] = {}
    say = _warn if warn is None else warn
    for entry in _site_dirs(sys.path if path is None else path):
        prefix = os.path.join(entry, PREFIX_DIRNAME)
        folder = os.path.join(prefix, MANIFEST_DIR)
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(".load"))
        except OSError:
            continue
        try:
            check_prefix(prefix)
        except nativelib.errors.UnsafeRuntimePath as e:
            say(f"nativelib: skipping {prefix}: {e.reason}")
            for name in names:
                dist = name[: -len(".load")]
                refused.setdefault(dist, _refused_prefix(prefix, dist, e))
            continue
        for name in names:
            where = os.path.join(folder, name)
            try:
                index = read_loader_index(where)
            except nativelib.errors.ManifestError as e:
                say(f"nativelib: skipping {where}: {e}")
                dist = name[: -len(".load")]
                refused.setdefault(
                    dist,
                    nativelib.errors.ManifestError(
                        where,
                        f"{e.reason}: nativelib.load() refuses this index, so {dist} is not loaded",
                        hint=f"pip install --force-reinstall --no-deps {dist}",
                    ),
                )
                continue
            if index.name not in found:
                found[index.name] = Installed(index, prefix)
    return found, refused


# ----------------------------------------------------------------------------- safety


def _check_chain(path: str, stop: str, reported: str) -> None:
    """``path`` and every directory above it up to ``stop``: see :func:`_unsafe`."""
    for here in _chain(path, stop):
        try:
            st = os.stat(here)
        except OSError as e:
            raise nativelib.errors.UnsafeRuntimePath(
                reported, f"cannot stat {here!r}: {e.strerror}"
            ) from e
        problem = _unsafe(st, repr(here))
        if problem is not None:
            raise nativelib.errors.UnsafeRuntimePath(reported, problem)


#: prefix -> (st_dev, st_ino) of its lib/ when :func:`check_prefix` last found it safe.
_safe_libs: dict[str, tuple[int, int]] = {}


def check_prefix(prefix: str) -> None:
    """Raise :class:`~nativelib.errors.UnsafeRuntimePath` unless the prefix's lib/ and
    manifest directories, up to its site directory, are safe to load from, and lib/ is
    the prefix's own directory, not a symlink (the doctor reports what the loader would
    refuse). lib/ itself is checked on every call (one lstat: a lib/ made writable after
    a first load is seen); the directories above it once per lib/ directory."""
    lib = os.path.join(prefix, LIB_DIR)
    try:
        st = os.lstat(lib)
    except OSError as e:
        raise nativelib.errors.UnsafeRuntimePath(
            prefix, f"cannot stat {lib!r}: {e.strerror}"
        ) from e
    if stat.S_ISLNK(st.st_mode):
        raise nativelib.errors.UnsafeRuntimePath(
            prefix, f"{lib!r} is a symbolic link: libraries load only from the prefix's own lib/"
        )
    problem = _unsafe(st, repr(lib))
    if problem is not None:
        _safe_libs.pop(prefix, None)
        raise nativelib.errors.UnsafeRuntimePath(prefix, problem)
    if _safe_libs.get(prefix) == (st.st_dev, st.st_ino):
        return
    # os.stat follows symlinks: each directory checked is the one the path leads to.
    _check_chain(prefix, os.path.dirname(prefix), prefix)
    _check_chain(os.path.join(prefix, MANIFEST_DIR), prefix, prefix)
    _safe_libs[prefix] = (st.st_dev, st.st_ino)


#: prefix -> (descriptor of its lib/, how dlopen reaches that directory). Held open for
#: the life of the process: the libraries loaded through it keep that name.
_lib_dirs: dict[str, tuple[int, str]] = {}
#: The name each library was dlopened by (``/proc/self/fd/<lib>/<soname>``) -> its path in
#: the prefix, for :func:`loaded_path` (dlinfo reports the name it was opened by).
_opened_as: dict[str, str] = {}


def _lib_dir(prefix: str) -> tuple[int, str]:
    """A descriptor of the prefix's own ``lib/`` (never followed through a symlink),
    checked now, on every call (one fstat): a directory owned by root or us that nobody
    else can write, so that nobody else can change which file a name in it is. Reopened
    when it is not the ``lib/`` :func:`check_prefix` last saw (replaced since)."""
    lib = os.path.join(prefix, LIB_DIR)
    held = _lib_dirs.get(prefix)
    if held is not None:
        try:
            st = os.fstat(held[0])
        except OSError:
            held = None
        else:
            if (st.st_dev, st.st_ino) != _safe_libs.get(prefix):
                held = None  # lib/ was replaced, or the descriptor closed and reused
    if held is None:
        try:
            fd = os.open(lib, _DIR_FLAGS)
        except OSError as e:
            why = "is a symbolic link" if os.path.islink(lib) else f"cannot open: {e.strerror}"
            raise nativelib.errors.UnsafeRuntimePath(
                lib, f"{why}: libraries load only from the prefix's own lib/"
            ) from e
        st = os.fstat(fd)
        via = f"/proc/self/fd/{fd}"
        try:
            proc = os.stat(via)
        except OSError:  # pragma: no cover - no /proc: by path, checked as below
            via = lib
        else:
            if (proc.st_dev, proc.st_ino) != (st.st_dev, st.st_ino):
                via = lib  # pragma: no cover
        held = (fd, via)
    problem = _unsafe(st, "it")
    if problem is not None:
        if _lib_dirs.get(prefix) != held:
            os.close(held[0])  # opened now: nothing was loaded through it
        raise nativelib.errors.UnsafeRuntimePath(lib, problem)
    _lib_dirs[prefix] = held
    return held


def _open_library(prefix: str, soname: str) -> tuple[int, str]:
    """Open ``lib/<soname>`` of the prefix once, check the file opened (a regular file
    owned by root or us, writable by nobody else), and return its descriptor (to close
    once dlopen returned) and the name to dlopen it by, through the held ``lib/``."""
    path = os.path.join(prefix, LIB_DIR, soname)
    problem = soname_problem(soname)
    if problem is not None:
        raise nativelib.errors.UnsafeRuntimePath(path, f"the soname {soname!r} {problem}")
    dir_fd, via = _lib_dir(prefix)
    try:
        fd = os.open(soname, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as e:
        why = "is a symbolic link" if os.path.islink(path) else f"cannot open: {e.strerror}"
        raise nativelib.errors.UnsafeRuntimePath(
            path, f"{why}: a library loads only as a real file in lib/"
        ) from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise nativelib.errors.UnsafeRuntimePath(path, "not a regular file")
        problem = _unsafe(st, "it")
        if problem is not None:
            raise nativelib.errors.UnsafeRuntimePath(path, problem)
    except BaseException:
        os.close(fd)
        raise
    return fd, f"{via}/{soname}"


def check_library(path: str, prefix: str) -> None:
    """The check the loader runs on each library it opens (:class:`UnsafeRuntimePath`
    when it would refuse ``path``, a file in ``prefix``'s ``lib/``), for the doctor."""
    fd, _name = _open_library(prefix, os.path.basename(path))
    os.close(fd)


# ----------------------------------------------------------------------------- host copies

_SYSTEM_DIRS = (
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
)


def _host_copy(soname: str) -> str | None:
    """The host's own copy of a soname: a root-owned file in a system library directory
    (never LD_LIBRARY_PATH or anything a user can write)."""
    for folder in _SYSTEM_DIRS:
        candidate = os.path.join(folder, soname)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if (
            stat.S_ISREG(st.st_mode)
            and st.st_uid == 0
            and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        ):
            return os.path.realpath(candidate)
    return None


_defs: dict[str, frozenset[str]] = {}


def _read_elf(path: "str | os.PathLike[str]") -> "ElfInfo":
    # Imported on first need: the default path (nothing loaded yet, the wheel's copy)
    # reads no ELF file, and so does not import the reader.
    from nativelib.elf import read_elf  # noqa: PLC0415

    return read_elf(path)


def _definitions(path: str) -> frozenset[str]:
    """The version nodes a library file defines (cached per path)."""
    defs = _defs.get(path)
    if defs is None:
        try:
            defs = frozenset(_read_elf(path).version_definitions)
        except nativelib.errors.ElfError:
            defs = frozenset()
        _defs[path] = defs
    return defs


def _check_covers(soname: str, present: str, wanted: str, needed: frozenset[str]) -> None:
    missing = tuple(sorted(needed - _definitions(present)))
    if missing:
        raise nativelib.errors.RuntimeConflict(
            soname, present, wanted, missing, _conflict_hint(soname, present)
        )


# ----------------------------------------------------------------------------- loading

_lock = _thread.RLock()
_done: "dict[str, LoadedLibrary]" = {}
_handles: list[int] = []  # dlopen handles, kept for the life of the process: never unloaded


def _short(name: str) -> str:
    return name[len("nativelib-") :] if name.startswith("nativelib-") else name


def _find(
    installed: "Mapping[str, Installed]",
    name: str,
    refused: "Mapping[str, nativelib.errors.NativeLibError] | None" = None,
) -> "Installed":
    dist = name if name.startswith("nativelib-") else f"nativelib-{name}"
    found = installed.get(dist)
    if found is None:
        if refused and dist in refused:
            raise refused[dist]  # installed, but in a prefix or an index that was refused
        known = ", ".join(sorted(_short(n) for n in installed)) or "none"
        raise nativelib.errors.RuntimeNotFound(
            dist,
            f"not installed in any site directory on sys.path (installed: {known})",
            hint=f"pip install {dist}",
        )
    return found


def is_openmp_provider(name: str) -> bool:
    """Whether the distribution is an OpenMP runtime (one per process)."""
    return name in _OPENMP_PROVIDERS


def _order(
    installed: "Mapping[str, Installed]",
    names: "Iterable[str]",
    refused: "Mapping[str, nativelib.errors.NativeLibError] | None" = None,
) -> "list[Installed]":
    """The named distributions and their dependencies, dependencies first."""
    out: list[Installed] = []
    seen: set[str] = set()

    def visit(dist: "Installed") -> None:
        if dist.name in seen:
            return
        seen.add(dist.name)
        for dep in dist.index.dependencies:
            if dep in installed:
                visit(installed[dep])
            elif refused and dep in refused and not is_openmp_provider(dep):
                raise refused[dep]
            elif not is_openmp_provider(dep):
                raise nativelib.errors.RuntimeNotFound(
                    dep, f"needed by {dist.name} but not installed", hint=f"pip install {dep}"
                )
        out.append(dist)

    for name in names:
        visit(_find(installed, name, refused))
    return out


def _mkl_openmp(
    requested: set[str], order: "list[Installed]"
) -> "tuple[list[Installed], set[str]]":
    """MKL's threading layer decides which OpenMP runtime to load, and with RTLD_GLOBAL
    (libmkl_*_thread use it without a DT_NEEDED entry). Returns the order without the
    OpenMP runtime not chosen, and the sonames to load globally."""
    mkl = next((d for d in order if d.name == "nativelib-mkl"), None)
    if mkl is None:
        return order, set()
    layer = os.environ.get("MKL_THREADING_LAYER", "").upper()
    if not layer:
        # MKL's default, unless another family's runtime is asked for or already here.
        layer = _MKL_DEFAULT_LAYER
        for _label, dist, other, sonames in _OPENMP_FAMILIES:
            if other is None or other == _MKL_DEFAULT_LAYER:
                continue
            if dist in requested or any(loaded_path(s) is not None for s in sonames):
                layer = other
                os.environ["MKL_THREADING_LAYER"] = other
                break
    keep = _MKL_LAYERS.get(layer)
    drop = _OPENMP_PROVIDERS - {keep} - requested
    implicit = {n for lib in mkl.index.libraries for n in lib.implicit_needs}
    global_sonames = {
        lib.soname
        for d in order
        if d.name == keep
        for lib in d.index.libraries
        if lib.soname in implicit
    }
    return [d for d in order if d.name not in drop], global_sonames


def _conflict_hint(soname: str, loaded: str) -> str:
    if "conda" in loaded or "/envs/" in loaded:
        return (
            f"a conda environment's older {soname} was loaded first; update it "
            "(conda install -c conda-forge libstdcxx-ng) or call nativelib.load() before "
            "importing the package that brought it"
        )
    if os.environ.get("LD_PRELOAD"):
        return f"LD_PRELOAD ({os.environ['LD_PRELOAD']}) put {loaded!r} in the process first"
    return (
        "another extension loaded it before nativelib.load() ran: call nativelib.load() "
        "earlier (first in your package's __init__), or import that package later"
    )


class _Needs:
    """What is needed of each soname, worked out only when a check asks for it: what the
    consumer needs (without one, every node the wheel's copy defines) and what the other
    libraries being loaded need of it (read from their ELF files)."""

    def __init__(
        self, paths: "Sequence[str]", consumer: "Mapping[str, Iterable[str]] | None"
    ) -> None:
        self._paths = paths
        self._consumer = consumer
        self._required: dict[str, set[str]] | None = None

    def __call__(self, soname: str, wheel_path: str) -> frozenset[str]:
        if self._required is None:
            self._required = {}
            for path in self._paths:
                try:
                    info = _read_elf(path)
                except nativelib.errors.ElfError:
                    continue
                for file, nodes in info.version_needs.items():
                    self._required.setdefault(file, set()).update(nodes)
        if self._consumer is not None:
            mine = frozenset(self._consumer.get(soname, ()))
        else:
            mine = _definitions(wheel_path)
        return mine | frozenset(self._required.get(soname, ()))


def _load_one(
    soname: str,
    wheel_path: str,
    wheel_defs: frozenset[str],
    prefix: str,
    distribution: str,
    needs: "_Needs",
    prefer: str,
    mode: int,
) -> "LoadedLibrary":
    done = _done.get(soname)
    if done is None and soname in _PRELOADED:
        done = _adopt(soname)
    if done is not None:
        # Loaded before: what this call needs must be there too.
        _check_covers(soname, done.path, wheel_path, needs(soname, wheel_path))
        return done
    present = loaded_path(soname)
    if present is not None:
        _check_covers(soname, present, wheel_path, needs(soname, wheel_path))
        result = LoadedLibrary(soname, present, "reused", distribution)
        _done[soname] = result
        return result
    path, how = wheel_path, "loaded"
    if soname in BACKWARD_COMPATIBLE and prefer != "wheel":
        host = _host_copy(soname)
        if host is not None:
            host_defs = _definitions(host)
            if (prefer == "newest" and host_defs > wheel_defs) or (
                prefer == "system" and needs(soname, wheel_path) <= host_defs
            ):
                path, how = host, "host"
    fd, target = -1, path
    if how == "loaded":
        fd, target = _open_library(prefix, soname)
    try:
        _handles.append(_dlopen(target, mode))
    except OSError as e:
        raise nativelib.errors.NativeLibError(
            f"{path}: cannot load: {str(e).replace(target, path)}"
        ) from e
    finally:
        if fd >= 0:
            os.close(fd)  # held until dlopen returned
    if target != path:
        _opened_as[target] = path
    result = LoadedLibrary(soname, path, how, distribution)
    _done[soname] = result
    return result


def _adopt(soname: str) -> "LoadedLibrary":
    """What the autoload's start-up path loaded (``_pynativelib.PRELOADED``), taken as
    this loader's own load: the same checks, made on the same files, before the dlopen."""
    path, opened, dist = _PRELOADED[soname]
    _opened_as[opened] = path
    result = _done[soname] = LoadedLibrary(soname, path, "loaded", dist)
    return result


def _prefer() -> str:
    prefer = os.environ.get("NATIVELIB_PREFER", "wheel").strip().lower() or "wheel"
    if prefer not in _PREFER:
        raise nativelib.errors.NativeLibError(
            f"NATIVELIB_PREFER={prefer!r} is not one of {', '.join(_PREFER)}"
        )
    return prefer


def _disabled() -> bool:
    return os.environ.get("NATIVELIB_DISABLE", "").strip() not in ("", "0")


def _warn_openmp(loaded: "Iterable[LoadedLibrary]", warn: "Callable[[str], None]") -> None:
    """Warn when more than one OpenMP family is in the process (probed by soname with
    RTLD_NOLOAD; auditwheel's renamed copies are for ``doctor --import`` to find)."""
    present: dict[str, list[str]] = {}
    mine = {lib.soname: lib.path for lib in loaded}
    for family, sonames in _OPENMP_SONAMES.items():
        ours = [mine[s] for s in sonames if s in mine]
        if ours:
            present[family] = ours
            continue
        for soname in sonames:
            found = loaded_path(soname)
            if found is not None:
                present.setdefault(family, []).append(found)
    if len(present) > 1:
        listing = "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(present.items()))
        warn(f"nativelib: more than one OpenMP runtime is loaded in this process ({listing})")


def load(
    *runtimes: str,
    mode: int | None = None,
    path: "Sequence[str] | None" = None,
    needs: "Mapping[str, Iterable[str]] | None" = None,
    warn: "Callable[[str], None] | None" = None,
    discovered: "tuple[Mapping[str, Installed], Mapping[str, NativeLibError]] | None" = None,
) -> "list[LoadedLibrary]":
    """Load runtimes and their dependencies, dependencies first; idempotent, thread-safe.

    ``runtimes`` are short (``"gomp"``) or distribution names (``"nativelib-gomp"``).
    ``mode`` is the dlopen mode (``os.RTLD_LOCAL`` by default; ``os.RTLD_GLOBAL`` only
    when asked). ``path`` replaces ``sys.path`` for discovery. ``needs`` maps sonames to
    the version nodes a consumer needs (``load_for`` passes them); without it a copy
    already in the process must provide every node the installed wheel's copy does.
    ``warn`` receives each warning (a prefix or index skipped, two OpenMP runtimes)
    instead of :func:`warnings.warn` (the autoload's ``.pth`` keeps start-up quiet).
    ``discovered`` is what :func:`discover_all` returned for ``path`` (the autoload chose
    its runtimes from it): used instead of discovering again; every check on the prefix
    and each library is made as ever when the library is opened.
    Returns what was done for each library, in load order.
    """
    if _disabled():
        return []
    base_mode = os.RTLD_LOCAL if mode is None else mode
    with _lock:
        installed, refused = _discover(path, warn) if discovered is None else discovered
        order = _order(installed, runtimes, refused)
        order, global_sonames = _mkl_openmp({_find(installed, r).name for r in runtimes}, order)
        prefer = _prefer()
        preload = [(d, lib) for d in order for lib in d.index.libraries if lib.preload]
        required = _Needs([d.library_path(lib.soname) for d, lib in preload], needs)
        results = [
            _load_one(
                lib.soname,
                dist.library_path(lib.soname),
                lib.version_definitions,
                dist.prefix,
                dist.name,
                required,
                prefer,
                base_mode | (os.RTLD_GLOBAL if lib.soname in global_sonames else 0),
            )
            for dist, lib in preload
        ]
        if any(is_openmp_provider(d.name) for d in order):
            _warn_openmp(results, _warn if warn is None else warn)
        return results


def load_for(
    target: "str | os.PathLike[str] | ModuleType",
    *,
    mode: int | None = None,
    path: "Sequence[str] | None" = None,
) -> "list[LoadedLibrary]":
    """Load the installed runtimes an extension file (or an imported module's file) needs,
    checking a copy already in the process against the exact version nodes it needs."""
    if _disabled():
        return []
    if isinstance(target, type(sys)):
        file = getattr(target, "__file__", None)
        if not file:
            raise nativelib.errors.NativeLibError(f"module {target.__name__!r} has no file to read")
        target = file
    info = _read_elf(target)
    installed = discover(path)
    owners: dict[str, str] = {}
    for dist in installed.values():
        for lib in dist.index.libraries:
            owners.setdefault(lib.soname, dist.name)
    wanted = [owners[s] for s in info.needed if s in owners]
    if not wanted:
        return []
    needs = {s: set(v) for s, v in info.version_needs.items() if s in owners}
    return load(*dict.fromkeys(wanted), mode=mode, path=path, needs=needs)
