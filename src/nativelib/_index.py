"""The loader's index of a runtime manifest: ``share/nativelib/runtimes/<dist>.load``.

What the loader needs of a manifest (name, version, dependencies, libraries in load
order with their preload flag, implicit needs and version definitions), as tab-separated
lines it reads without ``json``, whose import alone costs more than the loader's whole
2 ms budget. :func:`nativelib.prefix.loader_index` writes it from the same Manifest as the
JSON, next to it; nothing else here is imported at import time.
"""

# No `from __future__ import annotations` here: importing `__future__` costs ~0.3 ms at
# interpreter start (the autoload's .pth runs this module); annotations that name what
# only a type checker imports are strings.

import nativelib  # its errors submodule is imported when an index is refused: nativelib.errors
from nativelib._frozen import Frozen, setfield
from nativelib.files import read_regular_file

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 ms
if TYPE_CHECKING:
    import nativelib.errors

__all__ = [
    "LOADER_INDEX_MAGIC",
    "MAX_INDEX_BYTES",
    "IndexedLibrary",
    "LoaderIndex",
    "index_filename",
    "parse_loader_index",
    "read_loader_index",
    "soname_problem",
]

PREFIX_DIRNAME = "nativelib.prefix"
LIB_DIR = "lib"
MANIFEST_DIR = "share/nativelib/runtimes"

#: ``share/nativelib/runtimes/<dist>.load``: what the loader needs of a manifest, as
#: tab-separated lines it reads without ``json`` (whose import alone costs ~6 ms of the
#: loader's 2 ms budget). Written from the same Manifest as the JSON, next to it.
LOADER_INDEX_MAGIC = "nativelib-loader-index\t1"
#: One line per library, in load order:
#: ``library <TAB> soname <TAB> preload|- <TAB> implicit needs <TAB> version definitions``
#: (lists space-separated).

#: The most a ``.load`` index may hold (the largest real one, MKL's, is a few KiB).
MAX_INDEX_BYTES = 1 << 20


class IndexedLibrary(Frozen):
    __slots__ = ("soname", "preload", "implicit_needs", "version_definitions")
    soname: str
    preload: bool
    implicit_needs: tuple[str, ...]
    version_definitions: frozenset[str]

    def __init__(
        self,
        soname: str,
        preload: bool,
        implicit_needs: tuple[str, ...],
        version_definitions: frozenset[str],
    ) -> None:
        setfield(self, "soname", soname)
        setfield(self, "preload", preload)
        setfield(self, "implicit_needs", implicit_needs)
        setfield(self, "version_definitions", version_definitions)


class LoaderIndex(Frozen):
    """A runtime distribution as the loader sees it: libraries in load order."""

    __slots__ = ("name", "version", "dependencies", "libraries")
    name: str
    version: str
    dependencies: tuple[str, ...]
    libraries: "tuple[IndexedLibrary, ...]"

    def __init__(
        self,
        name: str,
        version: str,
        dependencies: tuple[str, ...],
        libraries: "tuple[IndexedLibrary, ...]",
    ) -> None:
        setfield(self, "name", name)
        setfield(self, "version", version)
        setfield(self, "dependencies", dependencies)
        setfield(self, "libraries", libraries)

    @property
    def to_preload(self) -> tuple[str, ...]:
        return tuple(lib.soname for lib in self.libraries if lib.preload)


def soname_problem(soname: str) -> str | None:
    """Why ``soname`` cannot name a library in the prefix's ``lib/``, or None: a soname is
    one file name (``libgomp.so.1``), as every recipe's sonames are, never a path."""
    if not soname:
        return "is empty"
    if soname.startswith("/"):
        return "is an absolute path, not a file name in lib/"
    if "/" in soname:
        return "has a '/', not one file name in lib/"
    if soname in (".", ".."):
        return "is not a file name"
    if not soname.isprintable():
        return "has a control character"
    if len(soname.encode("utf-8", "surrogateescape")) > 255:
        return "is longer than a file name can be"
    if ".so" not in soname:
        return "is not a shared library name (no '.so')"
    return None


def index_filename(name: str) -> str:
    return f"{MANIFEST_DIR}/{name}.load"


def parse_loader_index(text: str, where: str) -> "LoaderIndex":
    """A ``.load`` index; :class:`~nativelib.errors.ManifestError` names the problem."""
    lines = text.split("\n")
    if lines[0] != LOADER_INDEX_MAGIC:
        raise nativelib.errors.ManifestError(
            where, f"not a loader index (first line {lines[0][:40]!r})"
        )
    name = version = None
    deps: list[str] = []
    libraries: list[IndexedLibrary] = []
    for number, line in enumerate(lines[1:], 2):
        if not line:
            continue
        fields = line.split("\t")
        key = fields[0]
        if key == "name" and len(fields) == 2:
            name = fields[1]
        elif key == "version" and len(fields) == 2:
            version = fields[1]
        elif key == "depends" and len(fields) == 2:
            deps.append(fields[1])
        elif key == "library" and len(fields) == 5 and fields[2] in ("preload", "-"):
            problem = soname_problem(fields[1])
            if problem is not None:
                raise nativelib.errors.ManifestError(
                    where, f"line {number}: soname {fields[1]!r} {problem}"
                )
            implicit = tuple(fields[3].split())
            defs = frozenset(fields[4].split())
            libraries.append(IndexedLibrary(fields[1], fields[2] == "preload", implicit, defs))
        else:
            raise nativelib.errors.ManifestError(where, f"line {number}: cannot read {line[:60]!r}")
    if not name or not version:
        raise nativelib.errors.ManifestError(where, "the index has no name or no version")
    return LoaderIndex(name, version, tuple(deps), tuple(libraries))


def read_loader_index(path: str) -> "LoaderIndex":
    """The ``.load`` index at ``path``: a regular file (no FIFO, device or symlink; pip
    installs regular files) of at most :data:`MAX_INDEX_BYTES`, else
    :class:`~nativelib.errors.ManifestError` naming the problem."""
    try:
        text = read_regular_file(path, MAX_INDEX_BYTES).decode("utf-8")
    except nativelib.errors.FileReadError as e:
        raise nativelib.errors.ManifestError(path, e.reason) from e
    except UnicodeDecodeError as e:
        raise nativelib.errors.ManifestError(path, f"not UTF-8: {e}") from e
    return parse_loader_index(text, path)
