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
:mod:`nativelib.runtime_wheels.buildfiles`), from what is installed: the libraries in
load order (the loader's index), the headers in ``include/<short name>/``. The
Requires-Dist bound is the repair rule (:mod:`nativelib.resolver.bounds`) over the version
nodes the installed copy defines, so a build linked against it can need no node beyond
the bound.

A pkg-config query costs a build one process each time: the common ones (the prefix, the
directories, the flags) import neither the catalog (read only to explain a name that is
not installed) nor ``dataclasses``, ``pathlib`` or ``json``; :mod:`nativelib.config.query`
answers them before the command line's ``argparse`` and ``logging`` are imported
(``scripts/bench_config.py``).

``import nativelib`` does not import this module.
"""

from __future__ import annotations

import os
import site
import sys

from nativelib.errors import NativeLibError, RuntimeNotFound, UsageError
from nativelib.prefix import INCLUDE_DIR, LIB_DIR, PKGCONFIG_DIR, PREFIX_DIRNAME
from nativelib.runtime_wheels.buildfiles import BuildInfo, compile_flags, link_flags

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 ms
if TYPE_CHECKING:
    from collections.abc import Sequence

    from nativelib.loader import Installed

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

_DIST_PREFIX = "nativelib-"


class Layout:
    """The site directories to look in, and how to name them in a message.

    (Plain classes here, not dataclasses: see the module's last paragraph.)
    """

    __slots__ = ("site_dirs", "label", "install_hint")

    def __init__(self, site_dirs: tuple[str, ...], label: str, install_hint: str) -> None:
        self.site_dirs = site_dirs
        self.label = label  # "this environment (/venv/bin/python)", "the --user site ..."
        self.install_hint = install_hint  # the pip options that install into it

    def __repr__(self) -> str:
        return f"Layout({self.site_dirs!r}, {self.label!r})"

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


class Runtime:
    """A runtime distribution installed in a prefix: the loader's index of it."""

    __slots__ = ("installed",)

    def __init__(self, installed: Installed) -> None:
        self.installed = installed

    def __repr__(self) -> str:
        return f"Runtime({self.name!r}, {self.version!r}, {self.prefix!r})"

    @property
    def name(self) -> str:
        return self.installed.index.name

    @property
    def version(self) -> str:
        return self.installed.index.version

    @property
    def prefix(self) -> str:  # <site>/nativelib.prefix
        return self.installed.prefix

    @property
    def short(self) -> str:
        """The short name (the catalog checks it is the distribution's, less
        ``nativelib-``): the folder of its headers."""
        return self.name.removeprefix(_DIST_PREFIX)

    @property
    def libdir(self) -> str:
        return os.path.join(self.prefix, LIB_DIR)

    @property
    def includedir(self) -> str:
        return os.path.join(self.prefix, INCLUDE_DIR, self.short)

    @property
    def has_headers(self) -> bool:
        """Whether the wheel installed headers (``include/<short name>/``: no other
        distribution writes there)."""
        return os.path.isdir(self.includedir)

    @property
    def build_info(self) -> BuildInfo:
        return BuildInfo(
            name=self.name,
            short=self.short,
            summary="",
            version=self.version,
            sonames=tuple(lib.soname for lib in self.installed.index.libraries),  # load order
            has_headers=self.has_headers,
        )


def _distribution(runtime: str) -> str:
    """The distribution of a runtime name (``gomp``, ``nativelib-gomp``) that is not
    installed, from the catalog; a name the catalog lacks is a usage error."""
    from nativelib.catalog import load_catalog  # noqa: PLC0415 (TOML: only when asked)
    from nativelib.errors import CatalogError  # noqa: PLC0415

    try:
        return load_catalog().get(runtime).name
    except CatalogError as e:
        raise UsageError(
            f"{runtime!r} is not a runtime: {e.reason}",
            hint="name a runtime by its short name (gomp) or distribution (nativelib-gomp)",
        ) from None


def _installed(where: Layout) -> dict[str, Installed]:
    """Every runtime distribution installed in the layout (the first one wins)."""
    from nativelib.loader import discover  # noqa: PLC0415

    return discover(list(where.site_dirs))


def find(runtime: str, where: Layout | None = None) -> Runtime:
    """The installed runtime ``runtime`` (short or distribution name), or
    :class:`RuntimeNotFound` naming the layout and the install command."""
    where = where or layout()
    found = _installed(where)
    dist = runtime if runtime.startswith(_DIST_PREFIX) else _DIST_PREFIX + runtime
    installed = found.get(dist)
    if installed is None:
        dist = _distribution(runtime)  # the catalog's name for it, or a usage error
        installed = found.get(dist)
    if installed is None:
        raise RuntimeNotFound(
            dist,
            f"is not installed in {where.label}",
            hint=f"{where.install(dist)} (for a build: list it in build-system.requires)",
        )
    return Runtime(installed)


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
    found = {inst.prefix for inst in _installed(where).values()}
    if not found:
        raise RuntimeNotFound(
            PREFIX_DIRNAME,
            f"holds no runtime wheel in {where.label}",
            hint=f"{where.install('nativelib-gomp')} (or the runtime you build against)",
        )
    for site_dir in where.site_dirs:  # sys.path order, as the loader
        candidate = os.path.join(site_dir, PREFIX_DIRNAME)
        if candidate in found:
            return candidate
    return min(found)  # pragma: no cover - discover reads only site_dirs


def libdir(runtime: str | None = None, *, where: Layout | None = None) -> str:
    """``<prefix>/lib``: where the libraries are (one file per soname)."""
    return os.path.join(prefix(runtime, where=where), LIB_DIR)


def includedir(runtime: str, *, where: Layout | None = None) -> str:
    """``<prefix>/include/<short name>``; an error when the wheel ships no headers."""
    rt = find(runtime, where)
    if not rt.has_headers:
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
        parts = [p for p in text.split(os.sep) if p not in ("", ".")]
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
    package = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    return os.path.join(package, "share", "cmake", "nativelib")


def pkg_config_path(*, where: Layout | None = None) -> str:
    """``<prefix>/lib/pkgconfig`` of every prefix in the layout that holds runtime wheels,
    in ``sys.path`` order, joined with ``os.pathsep`` (for ``PKG_CONFIG_PATH``)."""
    where = where or layout()
    found = {inst.prefix for inst in _installed(where).values()}
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
        libraries = rt.installed.index.libraries
        nodes = {lib.soname: lib.version_definitions for lib in libraries}
        (decision,) = requirement_bounds([Requirement.of(rt.name, nodes=nodes)]).values()
        if decision.bound is None:
            out.append(f"{decision.distribution}>={short_version(Version(rt.version))}")
        else:
            out.append(decision.requirement())
    return out
