"""Preload runtime libraries from the common prefix: exactly one copy of each per process.

Standard library only; it runs inside other projects' import time.

How one soname is loaded (``load`` and ``load_for`` share it):

1. The process may already hold a library with that soname (another extension brought
   it, an ``LD_PRELOAD``, conda's libstdc++): found with ``dlopen(soname, RTLD_NOLOAD)``,
   its path with ``dlinfo``. If its version definitions cover what is needed it is
   reused ("reused"); if not, :class:`~nativelib.errors.RuntimeConflict` names both
   paths and the missing nodes. A second copy is never loaded.
2. Else, for the backward-compatible GCC runtimes (libstdc++, libgcc_s, libatomic,
   libgomp, libgfortran, libquadmath), the host's own copy (in the system library
   directories only) wins when it provides a strict superset of the wheel's version
   nodes ("host"); ``NATIVELIB_PREFER=wheel|system|newest`` (default ``newest``) changes
   that.
3. Else the wheel's copy is loaded by absolute path ("loaded"), ``RTLD_LOCAL`` unless a
   loaded library needs it without a DT_NEEDED entry (MKL's threading layers on an
   OpenMP runtime: ``RTLD_GLOBAL`` for that one), and only from a prefix directory that
   nobody else can write.

``NATIVELIB_DISABLE=1`` makes ``load`` and ``load_for`` do nothing.
"""

from __future__ import annotations

import ctypes
import os
import re
import stat
import sys
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType

from nativelib.elf import read_elf
from nativelib.errors import (
    ElfError,
    ManifestError,
    NativeLibError,
    RuntimeConflict,
    RuntimeNotFound,
    UnsafeRuntimePath,
)
from nativelib.prefix import LIB_DIR, MANIFEST_DIR, PREFIX_DIRNAME, Manifest, parse_manifest

__all__ = [
    "BACKWARD_COMPATIBLE",
    "Installed",
    "LoadedLibrary",
    "discover",
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
#: OpenMP runtime families, by the file names their copies have (renamed ones included).
_OPENMP = {
    "GNU (libgomp)": re.compile(r"^libgomp(?:-[0-9a-f]{8})?\.so"),
    "Intel (libiomp5)": re.compile(r"^libiomp5(?:-[0-9a-f]{8})?\.so"),
    "LLVM (libomp)": re.compile(r"^libomp(?:-[0-9a-f]{8})?\.so"),
}
_PREFER = ("newest", "wheel", "system")


@dataclass(frozen=True)
class Installed:
    """A runtime distribution found in a site directory."""

    manifest: Manifest
    prefix: str  # .../site-packages/nativelib.prefix

    @property
    def name(self) -> str:
        return self.manifest.name

    def library_path(self, soname: str) -> str:
        return os.path.join(self.prefix, LIB_DIR, soname)


@dataclass(frozen=True)
class LoadedLibrary:
    """One library ``load`` dealt with: where it is, and what was done."""

    soname: str
    path: str
    how: str  # "loaded" (now, from the wheel) | "reused" (already there) | "host"
    distribution: str | None


# ----------------------------------------------------------------------------- dl*


class _LinkMap(ctypes.Structure):
    _fields_ = (
        ("l_addr", ctypes.c_void_p),
        ("l_name", ctypes.c_char_p),
        ("l_ld", ctypes.c_void_p),
        ("l_next", ctypes.c_void_p),
        ("l_prev", ctypes.c_void_p),
    )


_RTLD_DI_LINKMAP = 2


class _Dl:
    """dlopen/dlinfo/dlclose through ctypes (libc on glibc >= 2.34, else libdl)."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(None)
        if not hasattr(lib, "dlinfo"):  # pragma: no cover - glibc < 2.34
            lib = ctypes.CDLL("libdl.so.2")
        self.dlopen = lib.dlopen
        self.dlopen.restype = ctypes.c_void_p
        self.dlopen.argtypes = (ctypes.c_char_p, ctypes.c_int)
        self.dlinfo = lib.dlinfo
        self.dlinfo.restype = ctypes.c_int
        self.dlinfo.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)
        self.dlclose = lib.dlclose
        self.dlclose.argtypes = (ctypes.c_void_p,)


_dl: _Dl | None = None


def loaded_path(soname: str) -> str | None:
    """The path of the library with this soname that the process holds, if any."""
    global _dl  # noqa: PLW0603 (created on first use: ctypes work stays off import time)
    if _dl is None:
        _dl = _Dl()
    handle = _dl.dlopen(soname.encode(), os.RTLD_LAZY | os.RTLD_NOLOAD)
    if not handle:
        return None
    try:
        link = ctypes.POINTER(_LinkMap)()
        if _dl.dlinfo(handle, _RTLD_DI_LINKMAP, ctypes.byref(link)) != 0 or not link:
            return soname  # pragma: no cover - dlinfo on a valid handle does not fail
        name = os.fsdecode(link.contents.l_name or b"")
        # l_name is the path it was opened by; report the real file, as everywhere else.
        return os.path.realpath(name) if name.startswith("/") else (name or soname)
    finally:
        _dl.dlclose(handle)


def openmp_runtimes() -> dict[str, list[str]]:
    """The OpenMP runtimes mapped in this process, by family (from /proc/self/maps)."""
    found: dict[str, list[str]] = {}
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            paths = {
                line.split(None, 5)[5].strip() for line in f if line.count(" ") >= 5 and "/" in line
            }
    except OSError:  # pragma: no cover - Linux always has it
        return found
    for path in sorted(paths):
        base = path.rsplit("/", 1)[-1]
        for family, pattern in _OPENMP.items():
            if pattern.match(base):
                found.setdefault(family, []).append(path)
    return found


# ----------------------------------------------------------------------------- discovery


def _site_dirs(path: Sequence[str]) -> list[str]:
    """Absolute sys.path entries, never '' or the current directory, each real dir once."""
    try:
        cwd = os.path.realpath(os.getcwd())
    except OSError:  # the current directory was removed
        cwd = None
    out: list[str] = []
    seen: set[str] = set()
    for entry in path:
        if not entry or not os.path.isabs(entry):
            continue
        real = os.path.realpath(entry)
        if real == cwd or real in seen:
            continue
        seen.add(real)
        out.append(entry)
    return out


def discover(path: Sequence[str] | None = None) -> dict[str, Installed]:
    """Every runtime distribution installed under a site directory on ``path``
    (default ``sys.path``); where one is installed twice, the first entry wins, as for
    imports. Only ``<entry>/nativelib.prefix/share/nativelib/runtimes/*.json`` is read.
    A malformed manifest is skipped with a warning: it must not break an import.
    """
    found: dict[str, Installed] = {}
    for entry in _site_dirs(sys.path if path is None else path):
        prefix = os.path.join(entry, PREFIX_DIRNAME)
        folder = os.path.join(prefix, MANIFEST_DIR)
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(".json"))
        except OSError:
            continue
        try:
            _check_safe(os.path.join(folder, names[0]) if names else folder, prefix)
        except UnsafeRuntimePath as e:
            warnings.warn(f"nativelib: skipping {prefix}: {e.reason}", RuntimeWarning, stacklevel=3)
            continue
        for name in names:
            where = os.path.join(folder, name)
            try:
                with open(where, "rb") as f:
                    manifest = parse_manifest(f.read(), where)
            except (OSError, ManifestError) as e:
                warnings.warn(f"nativelib: skipping {where}: {e}", RuntimeWarning, stacklevel=3)
                continue
            found.setdefault(manifest.name, Installed(manifest, prefix))
    return found


# ----------------------------------------------------------------------------- safety


def _check_safe(path: str, prefix: str) -> None:
    """Refuse a library outside its prefix, or in a directory others could write."""
    real = os.path.realpath(path)
    real_prefix = os.path.realpath(prefix)
    if not real.startswith(real_prefix + os.sep):
        raise UnsafeRuntimePath(path, f"resolves to {real!r}, outside {real_prefix!r}")
    uid = os.getuid()
    # The file, and every directory from it up to the site directory holding the prefix.
    here = real
    stop = os.path.dirname(real_prefix)
    while True:
        try:
            st = os.stat(here)
        except OSError as e:
            raise UnsafeRuntimePath(path, f"cannot stat {here!r}: {e.strerror}") from e
        if st.st_uid not in (0, uid):
            raise UnsafeRuntimePath(
                path, f"{here!r} is owned by uid {st.st_uid}, not root or {uid}"
            )
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (
            stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
        ):
            raise UnsafeRuntimePath(path, f"{here!r} is writable by group or others")
        if here == stop or here == os.path.dirname(here):
            return
        here = os.path.dirname(here)


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


def _definitions(path: str) -> frozenset[str]:
    """The version nodes a library file defines (cached per path)."""
    defs = _defs.get(path)
    if defs is None:
        try:
            defs = frozenset(read_elf(path).version_definitions)
        except ElfError:
            defs = frozenset()
        _defs[path] = defs
    return defs


def _check_covers(soname: str, present: str, wanted: str, needed: frozenset[str]) -> None:
    missing = tuple(sorted(needed - _definitions(present)))
    if missing:
        raise RuntimeConflict(soname, present, wanted, missing, _conflict_hint(soname, present))


# ----------------------------------------------------------------------------- loading

_lock = threading.RLock()
_done: dict[str, LoadedLibrary] = {}
_handles: list[ctypes.CDLL] = []  # kept for the life of the process: never unloaded


def _short(name: str) -> str:
    return name[len("nativelib-") :] if name.startswith("nativelib-") else name


def _find(installed: Mapping[str, Installed], name: str) -> Installed:
    dist = name if name.startswith("nativelib-") else f"nativelib-{name}"
    found = installed.get(dist)
    if found is None:
        known = ", ".join(sorted(_short(n) for n in installed)) or "none"
        raise RuntimeNotFound(
            dist,
            f"not installed in any site directory on sys.path (installed: {known}); "
            f"hint: pip install {dist}",
        )
    return found


def _order(installed: Mapping[str, Installed], names: Iterable[str]) -> list[Installed]:
    """The named distributions and their dependencies, dependencies first."""
    out: list[Installed] = []
    seen: set[str] = set()

    def visit(dist: Installed, chain: tuple[str, ...]) -> None:
        if dist.name in seen:
            return
        seen.add(dist.name)
        for dep in dist.manifest.dependencies:
            if dep.name in installed:
                visit(installed[dep.name], (*chain, dist.name))
            elif not _is_openmp_provider(dep.name):
                raise RuntimeNotFound(
                    dep.name,
                    f"needed by {dist.name} but not installed; hint: pip install {dep.name}",
                )
        out.append(dist)

    for name in names:
        visit(_find(installed, name), ())
    return out


def _is_openmp_provider(name: str) -> bool:
    return name in ("nativelib-gomp", "nativelib-iomp")


def _mkl_openmp(requested: set[str], order: list[Installed]) -> tuple[list[Installed], set[str]]:
    """MKL's threading layer decides which OpenMP runtime to load, and with RTLD_GLOBAL
    (libmkl_*_thread use it without a DT_NEEDED entry). Returns the order without the
    OpenMP runtime not chosen, and the sonames to load globally."""
    names = {d.name for d in order}
    if "nativelib-mkl" not in names:
        return order, set()
    layer = os.environ.get("MKL_THREADING_LAYER", "").upper()
    if not layer:
        gnu = "nativelib-gomp" in requested or loaded_path("libgomp.so.1") is not None
        layer = "GNU" if gnu else "INTEL"
        if gnu:
            os.environ["MKL_THREADING_LAYER"] = "GNU"
    keep = {"GNU": "nativelib-gomp", "INTEL": "nativelib-iomp"}.get(layer)
    drop = {"nativelib-gomp", "nativelib-iomp"} - {keep} - requested
    mkl = next(d for d in order if d.name == "nativelib-mkl")
    implicit = {n for lib in mkl.manifest.libraries for n in lib.implicit_needs}
    global_sonames = {
        lib.soname
        for d in order
        if d.name == keep
        for lib in d.manifest.libraries
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


def _load_one(
    soname: str,
    wheel_path: str,
    prefix: str,
    distribution: str,
    needed: frozenset[str],
    prefer: str,
    mode: int,
) -> LoadedLibrary:
    done = _done.get(soname)
    if done is not None:
        # Loaded before: what this call needs must be there too.
        _check_covers(soname, done.path, wheel_path, needed)
        return done
    present = loaded_path(soname)
    if present is not None:
        _check_covers(soname, present, wheel_path, needed)
        result = LoadedLibrary(soname, present, "reused", distribution)
        _done[soname] = result
        return result
    path, how = wheel_path, "loaded"
    if soname in BACKWARD_COMPATIBLE and prefer != "wheel":
        host = _host_copy(soname)
        if host is not None:
            host_defs, wheel_defs = _definitions(host), _definitions(wheel_path)
            if (prefer == "newest" and host_defs > wheel_defs) or (
                prefer == "system" and needed <= host_defs
            ):
                path, how = host, "host"
    if how == "loaded":
        _check_safe(wheel_path, prefix)
    try:
        _handles.append(ctypes.CDLL(path, mode=mode))
    except OSError as e:
        raise NativeLibError(f"{path}: cannot load: {e}") from e
    result = LoadedLibrary(soname, path, how, distribution)
    _done[soname] = result
    return result


def _prefer() -> str:
    prefer = os.environ.get("NATIVELIB_PREFER", "newest").strip().lower() or "newest"
    if prefer not in _PREFER:
        raise NativeLibError(f"NATIVELIB_PREFER={prefer!r} is not one of {', '.join(_PREFER)}")
    return prefer


def _disabled() -> bool:
    return os.environ.get("NATIVELIB_DISABLE", "").strip() not in ("", "0")


def _warn_openmp() -> None:
    families = openmp_runtimes()
    if len(families) > 1:
        listing = "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(families.items()))
        warnings.warn(
            f"nativelib: more than one OpenMP runtime is loaded in this process ({listing})",
            RuntimeWarning,
            stacklevel=3,
        )


def load(
    *runtimes: str,
    mode: int | None = None,
    path: Sequence[str] | None = None,
    needs: Mapping[str, Iterable[str]] | None = None,
) -> list[LoadedLibrary]:
    """Load runtimes and their dependencies, dependencies first; idempotent, thread-safe.

    ``runtimes`` are short (``"gomp"``) or distribution names (``"nativelib-gomp"``).
    ``mode`` is the dlopen mode (``os.RTLD_LOCAL`` by default; ``os.RTLD_GLOBAL`` only
    when asked). ``path`` replaces ``sys.path`` for discovery. ``needs`` maps sonames to
    the version nodes a consumer needs (``load_for`` passes them); without it a copy
    already in the process must provide every node the installed wheel does.
    Returns what was done for each library, in load order.
    """
    if _disabled():
        return []
    base_mode = os.RTLD_LOCAL if mode is None else mode
    with _lock:
        installed = discover(path)
        order = _order(installed, runtimes)
        order, global_sonames = _mkl_openmp({_find(installed, r).name for r in runtimes}, order)
        prefer = _prefer()
        # What is needed of each soname: what the consumer needs (without one, every node
        # the wheel defines), and what the other libraries being loaded need of it.
        preload = [(d, d.manifest.library(s)) for d in order for s in d.manifest.to_preload]
        required: dict[str, set[str]] = {}
        for _dist, lib in preload:
            assert lib is not None
            for file, nodes in lib.version_needs.items():
                required.setdefault(file, set()).update(nodes)
        results: list[LoadedLibrary] = []
        for dist, lib in preload:
            assert lib is not None
            soname = lib.soname
            consumer = needs.get(soname, ()) if needs is not None else lib.version_definitions
            needed = frozenset(consumer) | frozenset(required.get(soname, ()))
            results.append(
                _load_one(
                    soname,
                    dist.library_path(soname),
                    dist.prefix,
                    dist.name,
                    needed,
                    prefer,
                    base_mode | (os.RTLD_GLOBAL if soname in global_sonames else 0),
                )
            )
        _warn_openmp()
        return results


def load_for(target: str | os.PathLike[str] | ModuleType, **options: object) -> list[LoadedLibrary]:
    """Load the installed runtimes an extension file (or an imported module's file) needs,
    checking a copy already in the process against the exact version nodes it needs."""
    if _disabled():
        return []
    if isinstance(target, ModuleType):
        file = getattr(target, "__file__", None)
        if not file:
            raise NativeLibError(f"module {target.__name__!r} has no file to read")
        target = file
    info = read_elf(target)
    path = options.get("path")
    installed = discover(path if isinstance(path, (list, tuple)) else None)
    owners: dict[str, str] = {}
    for dist in installed.values():
        for lib in dist.manifest.libraries:
            owners.setdefault(lib.soname, dist.name)
    wanted = [owners[s] for s in info.needed if s in owners]
    needs = {s: set(v) for s, v in info.version_needs.items() if s in owners}
    if not wanted:
        return []
    mode = options.get("mode")
    return load(
        *dict.fromkeys(wanted),
        mode=mode if isinstance(mode, int) else None,
        path=path if isinstance(path, (list, tuple)) else None,
        needs=needs,
    )
