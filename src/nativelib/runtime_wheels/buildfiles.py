"""What a runtime wheel ships for builds against it: one pkg-config file and one CMake
component per distribution, and the flags ``nativelib config`` prints (one rule for all).

Every path is relative to the file that holds it (``${pcfiledir}`` in the ``.pc``,
``CMAKE_CURRENT_LIST_DIR`` in the ``.cmake``), so the files work wherever the prefix is
installed (a venv, ``--user``, ``pip install --target``). The link name is the soname
itself (``-Wl,-l:libgomp.so.1``; CMake's ``IMPORTED_LOCATION``): the prefix holds no ``.so``
development symlink, and the linker records the soname as ``DT_NEEDED`` either way.

The common ``nativelibConfig.cmake`` that includes the components is pynativelib's own
(``nativelib/share/cmake/nativelib/``), so no file is owned by two distributions.

The ``.pc`` file has a second copy, ``<site>/nativelib_pkgconfig/<dist>.pc`` (the same
text but for its ``prefix=`` line), for the ``pkgconf`` wheel (what meson-python runs): it
finds ``.pc`` folders through ``pkg_config`` entry points, whose value is a module name
that it turns into a folder (pkgconf 2.x: the dotted name as a path below the
distribution's site directory; 3.x: the import system's ``__path__`` of that name, not
executed, then the same path). ``nativelib.prefix`` cannot be named so (the dot is on
purpose: it is never importable), and a folder inside pynativelib's own ``nativelib/``
would make every runtime wheel write into another distribution's package (left behind
as a namespace package ``nativelib`` when pynativelib is uninstalled). So the copies
share one folder of their own, ``nativelib_pkgconfig`` (no ``__init__.py``): each runtime
wheel owns its one file there, as it owns its files of ``nativelib.prefix/lib``, and pip
removes the folder with the last of them.

Standard library only; the builder and ``nativelib.config`` import it.
"""

from __future__ import annotations

from nativelib.prefix import CMAKE_DIR, INCLUDE_DIR, LIB_DIR, PKGCONFIG_DIR, PREFIX_DIRNAME

__all__ = [
    "PKGCONFIG_FOLDER",
    "BuildInfo",
    "cmake_component",
    "compile_flags",
    "files_for",
    "import_path_files",
    "link_flags",
    "pkgconfig_file",
    "target_name",
]

#: The folder of the second ``.pc`` copies, below the site directory: the value of the
#: runtime wheels' ``pkg_config`` entry point (a module name; a namespace package).
PKGCONFIG_FOLDER = "nativelib_pkgconfig"

#: Compile flags with GCC for the OpenMP runtime a wheel ships, by its soname: the
#: runtime wheel is the runtime ``-fopenmp`` links (GNU OpenMP, openmp.toml's "gnu").
_OPENMP_CFLAGS = {"libgomp.so.1": ("-fopenmp",)}


class BuildInfo:
    """What the build files of one runtime distribution say.

    (A plain class, not a dataclass: ``nativelib config`` imports this module, and
    ``dataclasses`` alone costs it more than the rest of a pkg-config query.)
    """

    __slots__ = ("name", "short", "summary", "version", "sonames", "has_headers")

    def __init__(
        self,
        *,
        name: str,  # nativelib-gomp
        short: str,  # gomp
        summary: str,
        version: str,
        sonames: tuple[str, ...],  # in load order
        has_headers: bool,
    ) -> None:
        self.name = name
        self.short = short
        self.summary = summary
        self.version = version
        self.sonames = sonames
        self.has_headers = has_headers

    def __repr__(self) -> str:
        return f"BuildInfo({self.name!r}, {self.version!r}, sonames={self.sonames!r})"

    @property
    def pc_name(self) -> str:
        return f"{PKGCONFIG_DIR}/{self.name}.pc"

    @property
    def cmake_name(self) -> str:
        return f"{CMAKE_DIR}/{self.name}.cmake"


def _openmp_cflags(info: BuildInfo) -> list[str]:
    return [flag for soname in info.sonames for flag in _OPENMP_CFLAGS.get(soname, ())]


def target_name(soname: str) -> str:
    """``libgomp.so.1`` -> ``gomp``, ``libcudart.so.12`` -> ``cudart``: the name of the
    imported target (``nativelib::gomp``) and of ``-l`` without the version."""
    stem = soname.split(".so", 1)[0]
    return stem[3:] if stem.startswith("lib") else stem


def compile_flags(info: BuildInfo, includedir: str) -> list[str]:
    """The compile flags: ``-I<includedir>`` where the wheel has headers, and the OpenMP
    flag of the runtime it ships (``-fopenmp`` for libgomp)."""
    flags = [f"-I{includedir}"] if info.has_headers else []
    return flags + _openmp_cflags(info)


def link_flags(info: BuildInfo, libdir: str) -> list[str]:
    """``-Wl,-L<libdir> -Wl,-l:<soname>...``: the soname is the link name (the prefix has
    no dev symlink), passed to the linker as is. Not ``-L``/``-l``: meson resolves those
    to an absolute library path and bakes that directory into the installed RUNPATH
    (meson-python keeps it: the temporary build environment, a path in /tmp); gcc, clang
    and CMake take the ``-Wl,`` form the same."""
    return [f"-Wl,-L{libdir}", *(f"-Wl,-l:{s}" for s in info.sonames)]


def pkgconfig_file(info: BuildInfo, prefix: str = "${pcfiledir}/../..") -> str:
    """The text of ``lib/pkgconfig/<dist>.pc``; ``prefix``: the prefix, relative to the
    file (``${pcfiledir}/../nativelib.prefix`` for the copy in ``nativelib_pkgconfig/``)."""
    include = f"{INCLUDE_DIR}/{info.short}"
    lines = [
        f"# pkg-config file of {info.name} {info.version}, written by pynativelib.",
        "# Paths are relative to this file: it works wherever the prefix is installed.",
        f"# At run time the extension finds {LIB_DIR}/ through its RUNPATH:",
        "# nativelib config --rpath-from <the directory it installs to>.",
        f"prefix={prefix}",
        f"libdir=${{prefix}}/{LIB_DIR}",
    ]
    if info.has_headers:
        lines.append(f"includedir=${{prefix}}/{include}")
    lines += [
        f"runpath_below_site={PREFIX_DIRNAME}/{LIB_DIR}",
        "",
        f"Name: {info.name}",
        f"Description: {info.summary}",
        f"Version: {info.version}",
        "Libs: " + " ".join(link_flags(info, "${libdir}")),
        "Cflags: " + " ".join(compile_flags(info, "${includedir}")),
    ]
    return "\n".join(lines) + "\n"


def _cmake_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cmake_component(info: BuildInfo) -> str:
    """The text of ``share/cmake/nativelib/<dist>.cmake``: imported targets
    ``nativelib::<library>`` (``nativelib::gomp``, ``nativelib::cudart``) and, where the
    distribution's short name differs, ``nativelib::<short>`` linking them all."""
    depth = "/".join([".."] * len(CMAKE_DIR.split("/")))
    targets = [target_name(s) for s in info.sonames]
    lines = [
        f"# CMake component {info.short!r} of the package nativelib: {info.name} {info.version},",
        "# written by pynativelib. find_package(nativelib COMPONENTS "
        f"{info.short}) includes it (nativelibConfig.cmake).",
        "# Paths are relative to this file: it works wherever the prefix is installed.",
        f'get_filename_component(_nativelib_prefix "${{CMAKE_CURRENT_LIST_DIR}}/{depth}" ABSOLUTE)',
        f"set(nativelib_{info.short}_VERSION {_cmake_quote(info.version)})",
        f'set(nativelib_{info.short}_PREFIX "${{_nativelib_prefix}}")',
        f'set(nativelib_{info.short}_LIBDIR "${{_nativelib_prefix}}/{LIB_DIR}")',
    ]
    if info.has_headers:
        lines.append(
            f'set(nativelib_{info.short}_INCLUDE_DIR "${{_nativelib_prefix}}/{INCLUDE_DIR}/'
            f'{info.short}")'
        )
    cflags = _openmp_cflags(info)
    options = ";".join(
        f"$<$<COMPILE_LANG_AND_ID:{lang},GNU>:{flag}>"
        for flag in cflags
        for lang in ("C", "CXX", "Fortran")
    )
    for soname, target in zip(info.sonames, targets, strict=True):
        full = f"nativelib::{target}"
        lines += [
            f"if(TARGET {full})",
            f"  get_target_property(_nativelib_owner {full} NATIVELIB_DISTRIBUTION)",
            f'  if(NOT _nativelib_owner STREQUAL "{info.name}")',
            f'    message(FATAL_ERROR "nativelib: {full} is defined by ${{_nativelib_owner}} '
            f'and by {info.name}: ask for one of them")',
            "  endif()",
            "else()",
            f"  add_library({full} SHARED IMPORTED)",
            f"  set_target_properties({full} PROPERTIES",
            f'    IMPORTED_LOCATION "${{_nativelib_prefix}}/{LIB_DIR}/{soname}"',
            f'    IMPORTED_SONAME "{soname}"',
            f'    NATIVELIB_DISTRIBUTION "{info.name}"',
            f'    NATIVELIB_RUNPATH_BELOW_SITE "{PREFIX_DIRNAME}/{LIB_DIR}")',
        ]
        if info.has_headers:
            lines.append(
                f"  set_property(TARGET {full} PROPERTY INTERFACE_INCLUDE_DIRECTORIES "
                f'"${{nativelib_{info.short}_INCLUDE_DIR}}")'
            )
        if options:
            lines.append(
                f'  set_property(TARGET {full} PROPERTY INTERFACE_COMPILE_OPTIONS "{options}")'
            )
        lines.append("endif()")
    if targets != [info.short]:
        component = f"nativelib::{info.short}"
        lines += [
            f"if(NOT TARGET {component})",
            f"  add_library({component} INTERFACE IMPORTED)",
            f"  set_property(TARGET {component} PROPERTY INTERFACE_LINK_LIBRARIES "
            + _cmake_quote(";".join(f"nativelib::{t}" for t in targets))
            + ")",
            "endif()",
        ]
    lines.append("unset(_nativelib_owner)")
    return "\n".join(lines) + "\n"


def import_path_files(info: BuildInfo) -> list[tuple[str, bytes]]:
    """The ``.pc`` copy the ``pkgconf`` wheel finds: (path below the site dir, bytes)."""
    text = pkgconfig_file(info, "${pcfiledir}/../" + PREFIX_DIRNAME)
    return [(f"{PKGCONFIG_FOLDER}/{info.name}.pc", text.encode("utf-8"))]


def files_for(info: BuildInfo) -> list[tuple[str, bytes]]:
    """The build files of a distribution: (path in the prefix, bytes), sorted."""
    return sorted(
        [
            (info.pc_name, pkgconfig_file(info).encode("utf-8")),
            (info.cmake_name, cmake_component(info).encode("utf-8")),
        ]
    )
