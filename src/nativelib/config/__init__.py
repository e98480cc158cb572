"""Build against the runtime wheels: where the prefix is, and the flags to use it.

``nativelib config`` prints these; a build script imports them::

    from nativelib import config
    config.cflags("gomp") + config.libs("gomp")
    # ['-fopenmp', '-Wl,-L.../lib', '-Wl,-l:libgomp.so.1']
    config.rpath_from("mypkg")                    # '$ORIGIN/../nativelib.prefix/lib'
    config.requires("gomp")                       # ['nativelib-gomp>=12.1']

The prefix is found where the runtime wheels are installed (their ``<dist>.load`` index in
``<site>/nativelib.prefix``, as the loader finds them), in the site directories of a
:class:`Layout`: this interpreter's ``sys.path`` (a venv), the ``--user`` site, or a
``pip install --target`` directory. A runtime that is not installed there is a
:class:`~nativelib.errors.RuntimeNotFound` naming it, with the ``pip install`` to run.

The flags are those of the runtime's own pkg-config file (one rule:
:mod:`nativelib.runtime_wheels.buildfiles`); the Requires-Dist bound is the repair rule
(:mod:`nativelib.resolver.bounds`) over the version nodes the installed copy defines, so a
build linked against it can need no node beyond the bound.

``import nativelib`` does not import this module.
"""

from __future__ import annotations

import os
import site
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nativelib.errors import NativeLibError, RuntimeNotFound, UsageError
from nativelib.files import read_regular_file
from nativelib.prefix import (
    INCLUDE_DIR,
    LIB_DIR,
    MANIFEST_DIR,
    PKGCONFIG_DIR,
    PREFIX_DIRNAME,
    Manifest,
    parse_manifest,
)
from nativelib.runtime_wheels.buildfiles import BuildInfo, compile_flags, link_flags

__all__ = [
    "Layout",
    "Runtime",
    "cflags",
    "cmake_dir",
    "find",
    "includedir",
    "layout",
    "libdir",
    "libs",
    "pkg_config_path",
    "prefix",
    "requires",
    "rpath_from",
]

_MAX_MANIFEST_BYTES = 16 << 20


@dataclass(frozen=True)
class Layout:
    """The site directories to look in, and how to name them in a message."""

    site_dirs: tuple[str, ...]
    label: str  # "this environment (/venv/bin/python)", "the --user site ..."
    install_hint: str  # the pip options that install into it

    def install(self, dist: str) -> str:
        return f"pip install{self.install_hint} {dist}"


def layout(*, user: bool = False, target: str | os.PathLike[str] | None = None) -> Layout:
    """Where to look: a ``pip install --target`` directory, the ``--user`` site, or
    (by default) every site directory on this interpreter's ``sys.path``."""
    if user and target is not None:
        raise UsageError("--user and --target name two layouts: give one")
    if target is not None:
        where = os.path.abspath(os.fspath(target))
        if not os.path.isdir(where):
            raise UsageError(
                f"--target {where!r} is not a directory",
                hint="give the directory 'pip install --target' installed into",
            )
        return Layout((where,), f"--target {where}", f" --target {where}")
    if user:
        where = site.getusersitepackages()
        return Layout((where,), f"the --user site {where}", " --user")
    dirs = tuple(p for p in sys.path if p and os.path.isabs(p) and os.path.isdir(p))
    return Layout(dirs, f"this environment ({sys.executable})", "")


@dataclass(frozen=True)
class Runtime:
    """A runtime distribution installed in a prefix, with its manifest."""

    manifest: Manifest
    prefix: str  # <site>/nativelib.prefix
    short: str
    openmp: str | None

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def libdir(self) -> str:
        return os.path.join(self.prefix, LIB_DIR)

    @property
    def includedir(self) -> str:
        return os.path.join(self.prefix, INCLUDE_DIR, self.short)

    @property
    def build_info(self) -> BuildInfo:
        m = self.manifest
        return BuildInfo(
            name=m.name,
            short=self.short,
            summary="",
            version=m.version,
            sonames=m.load_order,
            has_headers=bool(m.headers),
            openmp=self.openmp,
        )


def _distribution(runtime: str) -> tuple[str, str, str | None]:
    """(distribution, short name, OpenMP family) of a runtime name (``gomp``,
    ``nativelib-gomp``), from the catalog; a name the catalog lacks is a usage error."""
    from nativelib.catalog import load_catalog  # noqa: PLC0415 (TOML: only when asked)
    from nativelib.errors import CatalogError  # noqa: PLC0415

    try:
        recipe = load_catalog().get(runtime)
    except CatalogError as e:
        raise UsageError(
            f"{runtime!r} is not a runtime: {e.reason}",
            hint="name a runtime by its short name (gomp) or distribution (nativelib-gomp)",
        ) from None
    return recipe.name, recipe.short, recipe.openmp


def _installed(where: Layout) -> dict[str, str]:
    """Every runtime distribution installed in the layout -> its prefix (first wins)."""
    from nativelib.loader import discover  # noqa: PLC0415

    return {name: inst.prefix for name, inst in discover(list(where.site_dirs)).items()}


def find(runtime: str, where: Layout | None = None) -> Runtime:
    """The installed runtime ``runtime`` (short or distribution name), or
    :class:`RuntimeNotFound` naming the layout and the install command."""
    where = where or layout()
    dist, short, openmp = _distribution(runtime)
    found = _installed(where)
    prefix_dir = found.get(dist)
    if prefix_dir is None:
        raise RuntimeNotFound(
            dist,
            f"is not installed in {where.label}",
            hint=f"{where.install(dist)} (for a build: list it in build-system.requires)",
        )
    path = os.path.join(prefix_dir, MANIFEST_DIR, f"{dist}.json")
    try:
        manifest = parse_manifest(read_regular_file(path, _MAX_MANIFEST_BYTES), path)
    except NativeLibError as e:
        raise RuntimeNotFound(
            dist, f"its manifest cannot be read: {e}", hint=f"pip install --force-reinstall {dist}"
        ) from e
    return Runtime(manifest, prefix_dir, short, openmp)


def _runtimes(runtimes: Sequence[str], where: Layout | None) -> list[Runtime]:
    if not runtimes:
        raise UsageError("name at least one runtime (gomp, cxx14, cudart-cu12, ...)")
    return [find(r, where) for r in runtimes]


def prefix(runtime: str | None = None, *, where: Layout | None = None) -> str:
    """The prefix ``runtime`` is installed in; without one, the first prefix of the
    layout that holds any runtime wheel."""
    if runtime is not None:
        return find(runtime, where).prefix
    where = where or layout()
    found = _installed(where)
    if not found:
        raise RuntimeNotFound(
            PREFIX_DIRNAME,
            f"holds no runtime wheel in {where.label}",
            hint=f"{where.install('nativelib-gomp')} (or the runtime you build against)",
        )
    for site_dir in where.site_dirs:  # sys.path order, as the loader
        candidate = os.path.join(site_dir, PREFIX_DIRNAME)
        if candidate in found.values():
            return candidate
    return next(iter(found.values()))  # pragma: no cover - discover reads only site_dirs


def libdir(runtime: str | None = None, *, where: Layout | None = None) -> str:
    """``<prefix>/lib``: where the libraries are (one file per soname)."""
    return os.path.join(prefix(runtime, where=where), LIB_DIR)


def includedir(runtime: str, *, where: Layout | None = None) -> str:
    """``<prefix>/include/<short name>``; an error when the wheel ships no headers."""
    rt = find(runtime, where)
    if not rt.manifest.headers:
        raise NativeLibError(
            f"{rt.name} ships no headers",
            hint="its headers come with the compiler (omp.h, the C++ and Fortran headers) "
            "or the upstream SDK",
        )
    return rt.includedir


def cflags(*runtimes: str, where: Layout | None = None) -> list[str]:
    """The compile flags of the runtimes (``-I`` their headers, ``-fopenmp`` for GNU
    OpenMP), as their pkg-config files say."""
    out: list[str] = []
    for rt in _runtimes(runtimes, where):
        for flag in compile_flags(rt.build_info, rt.includedir):
            if flag not in out:
                out.append(flag)
    return out


def libs(*runtimes: str, where: Layout | None = None) -> list[str]:
    """The link flags: ``-Wl,-L<prefix>/lib -Wl,-l:<soname>...`` (the soname is the link
    name; see :func:`nativelib.runtime_wheels.buildfiles.link_flags`)."""
    out: list[str] = []
    for rt in _runtimes(runtimes, where):
        for flag in link_flags(rt.build_info, rt.libdir):
            if flag not in out:
                out.append(flag)
    return out


def rpath_from(directory: str | os.PathLike[str], *, where: Layout | None = None) -> str:
    """The ``$ORIGIN``-relative RUNPATH entry from where an extension installs to
    ``<prefix>/lib``. ``directory`` is either relative, a folder below the site directory
    (``mypkg/_impl``; no prefix needs to be installed), or an absolute directory, taken
    relative to the prefix found in the layout."""
    text = os.fspath(directory)
    if not os.path.isabs(text):
        parts = [p for p in Path(text).parts if p != "."]
        if ".." in parts:
            raise UsageError(
                f"--rpath-from {text!r} leaves the site directory",
                hint="give the extension's folder below site-packages (mypkg/_impl), or an "
                "absolute directory",
            )
        return "/".join(["$ORIGIN", *([".."] * len(parts)), PREFIX_DIRNAME, LIB_DIR])
    rel = os.path.relpath(os.path.join(prefix(where=where), LIB_DIR), os.path.realpath(text))
    return f"$ORIGIN/{rel}"


def cmake_dir() -> str:
    """The folder of ``nativelibConfig.cmake`` (pynativelib's own), for ``nativelib_DIR``;
    ``find_package(nativelib COMPONENTS gomp)`` finds the components in the prefix."""
    return str(Path(__file__).resolve().parent.parent / "share" / "cmake" / "nativelib")


def pkg_config_path(*, where: Layout | None = None) -> str:
    """``<prefix>/lib/pkgconfig`` of every prefix in the layout that holds runtime wheels,
    in ``sys.path`` order, joined with ``os.pathsep`` (for ``PKG_CONFIG_PATH``)."""
    where = where or layout()
    found = set(_installed(where).values())
    if not found:
        prefix(where=where)  # raises: nothing installed
    ordered = [
        os.path.join(d, PREFIX_DIRNAME, PKGCONFIG_DIR)
        for d in where.site_dirs
        if os.path.join(d, PREFIX_DIRNAME) in found
    ]
    return os.pathsep.join(dict.fromkeys(ordered))


def requires(*runtimes: str, where: Layout | None = None) -> list[str]:
    """The Requires-Dist lines for the runtimes: the bound of :mod:`nativelib.resolver.bounds`
    over every version node the installed copy defines (a build linked against it can need
    no more); where the data lacks a node, the installed version."""
    from packaging.version import Version  # noqa: PLC0415

    from nativelib.resolver.bounds import requirement_bounds, short_version  # noqa: PLC0415
    from nativelib.resolver.model import Requirement  # noqa: PLC0415

    out: list[str] = []
    for rt in _runtimes(runtimes, where):
        nodes = {lib.soname: frozenset(lib.version_definitions) for lib in rt.manifest.libraries}
        (decision,) = requirement_bounds([Requirement.of(rt.name, nodes=nodes)]).values()
        if decision.bound is None:
            out.append(f"{decision.distribution}>={short_version(Version(rt.manifest.version))}")
        else:
            out.append(decision.requirement())
    return out
