"""The common prefix every runtime wheel installs into, and the manifests it holds.

Layout, under a site directory (``<site-packages>/nativelib.prefix/``; the dot keeps it
from ever being imported)::

    lib/<soname>                              one real file per soname
    include/<short name>/...                  headers of one distribution, where the source
                                              has them (CUDA 12 and 13 share header names)
    share/nativelib/runtimes/<dist>.json      the manifest of each runtime distribution
    lib/pkgconfig/<dist>.pc                   the pkg-config file of each distribution
    share/cmake/nativelib/<dist>.cmake        its component of the CMake package ``nativelib``
                                              (whose nativelibConfig.cmake pynativelib owns)

Standard library only, like the loader. The loader itself does not import this module: it
reads the prefix through :mod:`nativelib._index` alone (the layout constants and the
``<dist>.load`` index), so the manifest classes stay out of other projects' import time.
"""

from __future__ import annotations

import os

from nativelib._frozen import Frozen, setfield

# The layout constants and the loader's index (``<dist>.load``) live in nativelib._index,
# which the loader imports instead of this module; they are re-exported here.
from nativelib._index import (
    LIB_DIR,
    LOADER_INDEX_MAGIC,
    MANIFEST_DIR,
    MAX_INDEX_BYTES,
    PREFIX_DIRNAME,
    IndexedLibrary,
    LoaderIndex,
    index_filename,
    parse_loader_index,
    soname_problem,
)
from nativelib.digest import is_sha256
from nativelib.errors import ManifestError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: this module does not import typing
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

__all__ = [
    "CMAKE_DIR",
    "INCLUDE_DIR",
    "LIB_DIR",
    "MANIFEST_DIR",
    "MANIFEST_VERSION",
    "MAX_INDEX_BYTES",
    "PKGCONFIG_DIR",
    "PREFIX_DIRNAME",
    "PROVIDES_BEGIN",
    "PROVIDES_END",
    "Dependency",
    "Library",
    "Manifest",
    "ManifestError",
    "PackageProvenance",
    "Provenance",
    "load_order",
    "parse_manifest",
    "record_digest",
    "sha256_file",
]

INCLUDE_DIR = "include"
#: Where each runtime's pkg-config file (``<dist>.pc``) and CMake component
#: (``<dist>.cmake``) are, relative to the prefix: the files a build against it reads.
PKGCONFIG_DIR = "lib/pkgconfig"
CMAKE_DIR = "share/cmake/nativelib"

#: The block of a runtime wheel's description listing each library's version nodes, so
#: that METADATA alone (what PEP 658 serves) tells the resolver what a wheel provides.
PROVIDES_BEGIN = "<!-- nativelib-provides"
PROVIDES_END = "-->"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    import hashlib  # noqa: PLC0415 (imported when first needed)

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def record_digest(digest: bytes) -> str:
    """A digest as a wheel RECORD writes it: urlsafe base64 without padding."""
    import base64  # noqa: PLC0415 (imported when first needed)

    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


MANIFEST_VERSION = 1


class Library(Frozen):
    """One library of a runtime distribution, as shipped in ``lib/``."""

    __slots__ = (
        "soname",
        "file",
        "sha256",
        "size",
        "version_definitions",
        "needed",
        "version_needs",
        "implicit_needs",
    )
    soname: str
    file: str  # relative to the prefix: "lib/<soname>"
    sha256: str
    size: int
    version_definitions: tuple[str, ...]
    needed: tuple[str, ...]
    version_needs: Mapping[str, tuple[str, ...]]
    implicit_needs: tuple[str, ...]

    def __init__(
        self,
        soname: str,
        file: str,
        sha256: str,
        size: int,
        version_definitions: tuple[str, ...],
        needed: tuple[str, ...],
        version_needs: Mapping[str, tuple[str, ...]],
        implicit_needs: tuple[str, ...] = (),
    ) -> None:
        setfield(self, "soname", soname)
        setfield(self, "file", file)
        setfield(self, "sha256", sha256)
        setfield(self, "size", size)
        setfield(self, "version_definitions", version_definitions)
        setfield(self, "needed", needed)
        setfield(self, "version_needs", version_needs)
        setfield(self, "implicit_needs", implicit_needs)

    def __hash__(self) -> int:  # version_needs is a dict
        return hash((self.soname, self.sha256))


class Dependency(Frozen):
    __slots__ = ("name", "specifier")
    name: str
    specifier: str

    def __init__(self, name: str, specifier: str = "") -> None:
        setfield(self, "name", name)
        setfield(self, "specifier", specifier)

    def requirement(self) -> str:
        return f"{self.name}{self.specifier}"


class PackageProvenance(Frozen):
    """One upstream package the binaries came from."""

    __slots__ = ("name", "version", "url", "sha256", "filename")
    name: str
    version: str
    url: str
    sha256: str
    filename: str

    def __init__(self, name: str, version: str, url: str, sha256: str, filename: str) -> None:
        setfield(self, "name", name)
        setfield(self, "version", version)
        setfield(self, "url", url)
        setfield(self, "sha256", sha256)
        setfield(self, "filename", filename)


class Provenance(Frozen):
    __slots__ = ("source", "kind", "packages", "license", "license_files")
    source: str  # the recipe's source name, or "local"
    kind: str  # conda | rpm | deb | wheel
    packages: tuple[PackageProvenance, ...]
    license: str | None
    license_files: tuple[str, ...]

    def __init__(
        self,
        source: str,
        kind: str,
        packages: tuple[PackageProvenance, ...],
        license: str | None,
        license_files: tuple[str, ...],
    ) -> None:
        setfield(self, "source", source)
        setfield(self, "kind", kind)
        setfield(self, "packages", packages)
        setfield(self, "license", license)
        setfield(self, "license_files", license_files)


class Manifest(Frozen):
    """``share/nativelib/runtimes/<dist>.json``: what one runtime distribution ships."""

    __slots__ = (
        "name",
        "version",
        "libraries",
        "load_order",
        "dependencies",
        "provenance",
        "platform_tag",
        "headers",
        "preload",
        "build_files",
    )
    name: str
    version: str
    libraries: tuple[Library, ...]
    load_order: tuple[str, ...]
    dependencies: tuple[Dependency, ...]
    provenance: Provenance
    platform_tag: str
    headers: tuple[str, ...]
    preload: tuple[str, ...]  # the sonames the loader preloads; () means all
    build_files: tuple[str, ...]  # pkg-config and CMake files (paths in the prefix)

    def __init__(
        self,
        name: str,
        version: str,
        libraries: tuple[Library, ...],
        load_order: tuple[str, ...],
        dependencies: tuple[Dependency, ...],
        provenance: Provenance,
        platform_tag: str,
        headers: tuple[str, ...] = (),
        preload: tuple[str, ...] = (),
        build_files: tuple[str, ...] = (),
    ) -> None:
        setfield(self, "name", name)
        setfield(self, "version", version)
        setfield(self, "libraries", libraries)
        setfield(self, "load_order", load_order)
        setfield(self, "dependencies", dependencies)
        setfield(self, "provenance", provenance)
        setfield(self, "platform_tag", platform_tag)
        setfield(self, "headers", headers)
        setfield(self, "preload", preload)
        setfield(self, "build_files", build_files)

    @property
    def to_preload(self) -> tuple[str, ...]:
        """The sonames to preload, in load order."""
        wanted = set(self.preload) if self.preload else None
        return tuple(s for s in self.load_order if wanted is None or s in wanted)

    @property
    def filename(self) -> str:
        return f"{MANIFEST_DIR}/{self.name}.json"

    def library(self, soname: str) -> Library | None:
        return next((lib for lib in self.libraries if lib.soname == soname), None)

    def to_json(self) -> str:
        """Deterministic JSON (sorted keys, two-space indent, trailing newline)."""
        import json  # noqa: PLC0415 (json costs ~6 ms of import time: not at import)

        doc = {
            "manifest_version": MANIFEST_VERSION,
            "name": self.name,
            "version": self.version,
            "platform_tag": self.platform_tag,
            "libraries": [
                {
                    "soname": lib.soname,
                    "file": lib.file,
                    "sha256": lib.sha256,
                    "size": lib.size,
                    "version_definitions": list(lib.version_definitions),
                    "needed": list(lib.needed),
                    "version_needs": {k: list(v) for k, v in lib.version_needs.items()},
                    "implicit_needs": list(lib.implicit_needs),
                }
                for lib in self.libraries
            ],
            "load_order": list(self.load_order),
            "preload": list(self.preload),
            "headers": list(self.headers),
            "build_files": list(self.build_files),
            "dependencies": [{"name": d.name, "specifier": d.specifier} for d in self.dependencies],
            "provenance": {
                "source": self.provenance.source,
                "kind": self.provenance.kind,
                "license": self.provenance.license,
                "license_files": list(self.provenance.license_files),
                "packages": [
                    {
                        "name": p.name,
                        "version": p.version,
                        "url": p.url,
                        "sha256": p.sha256,
                        "filename": p.filename,
                    }
                    for p in self.provenance.packages
                ],
            },
        }
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"


class _Reader:
    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, reason: str) -> ManifestError:
        return ManifestError(self.where, reason)

    def obj(self, value: Any, what: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"{what} must be an object")
        return value

    def str_(self, doc: Mapping[str, Any], key: str, what: str, *, optional: bool = False) -> Any:
        value = doc.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise self.fail(f"{what}.{key} must be a string")
        return value

    def strs(self, doc: Mapping[str, Any], key: str, what: str) -> tuple[str, ...]:
        value = doc.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f"{what}.{key} must be a list of strings")
        return tuple(value)

    def list_(self, doc: Mapping[str, Any], key: str, what: str) -> list[Any]:
        value = doc.get(key, [])
        if not isinstance(value, list):
            raise self.fail(f"{what}.{key} must be a list")
        return value


def parse_manifest(text: str | bytes, where: str) -> Manifest:
    """A manifest from its JSON text; :class:`ManifestError` names ``where`` and the problem."""
    import json  # noqa: PLC0415 (json costs ~6 ms of import time: not at import)

    r = _Reader(where)
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise r.fail(f"invalid JSON: {e}") from e
    except RecursionError:
        raise r.fail("invalid JSON: nested too deeply") from None
    doc = r.obj(raw, "manifest")
    if doc.get("manifest_version") != MANIFEST_VERSION:
        raise r.fail(f"unsupported manifest_version {doc.get('manifest_version')!r}")
    libraries = []
    for i, item in enumerate(r.list_(doc, "libraries", "manifest")):
        what = f"libraries[{i}]"
        lib = r.obj(item, what)
        size = lib.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise r.fail(f"{what}.size must be a non-negative integer")
        if not is_sha256(lib.get("sha256")):
            raise r.fail(f"{what}.sha256 {lib.get('sha256')!r} is not 64 lowercase hex digits")
        needs = r.obj(lib.get("version_needs", {}), f"{what}.version_needs")
        for k, v in needs.items():
            if not isinstance(v, list) or not all(isinstance(n, str) for n in v):
                raise r.fail(f"{what}.version_needs[{k!r}] must be a list of strings")
        libraries.append(
            Library(
                soname=r.str_(lib, "soname", what),
                file=r.str_(lib, "file", what),
                sha256=r.str_(lib, "sha256", what),
                size=size,
                version_definitions=r.strs(lib, "version_definitions", what),
                needed=r.strs(lib, "needed", what),
                version_needs={k: tuple(v) for k, v in needs.items()},
                implicit_needs=r.strs(lib, "implicit_needs", what),
            )
        )
    deps = []
    for i, item in enumerate(r.list_(doc, "dependencies", "manifest")):
        dep = r.obj(item, f"dependencies[{i}]")
        deps.append(
            Dependency(r.str_(dep, "name", f"dependencies[{i}]"), dep.get("specifier") or "")
        )
    prov = r.obj(doc.get("provenance"), "provenance")
    packages = []
    for i, item in enumerate(r.list_(prov, "packages", "provenance")):
        what = f"provenance.packages[{i}]"
        pkg = r.obj(item, what)
        packages.append(
            PackageProvenance(
                *(
                    r.str_(pkg, key, what)
                    for key in ("name", "version", "url", "sha256", "filename")
                )
            )
        )
    manifest = Manifest(
        name=r.str_(doc, "name", "manifest"),
        version=r.str_(doc, "version", "manifest"),
        libraries=tuple(libraries),
        load_order=r.strs(doc, "load_order", "manifest"),
        dependencies=tuple(deps),
        provenance=Provenance(
            source=r.str_(prov, "source", "provenance"),
            kind=r.str_(prov, "kind", "provenance"),
            packages=tuple(packages),
            license=r.str_(prov, "license", "provenance", optional=True),
            license_files=r.strs(prov, "license_files", "provenance"),
        ),
        platform_tag=r.str_(doc, "platform_tag", "manifest"),
        headers=r.strs(doc, "headers", "manifest"),
        preload=r.strs(doc, "preload", "manifest"),
        build_files=r.strs(doc, "build_files", "manifest"),
    )
    sonames = [lib.soname for lib in manifest.libraries]
    if len(set(sonames)) != len(sonames):
        raise r.fail("a soname is listed twice")
    if sorted(manifest.load_order) != sorted(sonames):
        raise r.fail("load_order must list every library's soname exactly once")
    if not set(manifest.preload) <= set(sonames):
        raise r.fail("preload names a soname that is not one of the libraries")
    for rel in manifest.build_files:
        folder, _, base = rel.rpartition("/")
        suffix = ".pc" if folder == PKGCONFIG_DIR else ".cmake"
        if (
            folder not in (PKGCONFIG_DIR, CMAKE_DIR)
            or not base.endswith(suffix)
            or base.startswith(".")
            or not base.isprintable()
        ):
            raise r.fail(
                f"build file {rel!r} must be a <name>.pc in {PKGCONFIG_DIR}/ or a "
                f"<name>.cmake in {CMAKE_DIR}/"
            )
    for entry in manifest.libraries:
        if entry.file != f"lib/{entry.soname}":
            raise r.fail(
                f"library {entry.soname!r} must be the file 'lib/{entry.soname}', "
                f"not {entry.file!r}"
            )
    return manifest


def load_order(libraries: Sequence[Library]) -> tuple[str, ...]:
    """Sonames in an order where each library comes after the ones it NEEDs.

    Only needs between the given libraries (and their implicit needs) count; ties keep
    the given order. A cycle (which ld.so tolerates) is broken at the first library met.
    """
    by_name = {lib.soname: lib for lib in libraries}
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(soname: str) -> None:
        if state.get(soname):
            return
        state[soname] = 1
        lib = by_name[soname]
        for need in (*lib.needed, *lib.implicit_needs):
            if need in by_name and not state.get(need):
                visit(need)
        state[soname] = 2
        order.append(soname)

    for lib in libraries:
        visit(lib.soname)
    return tuple(order)


def loader_index(manifest: Manifest) -> str:
    """The ``.load`` index of a manifest (deterministic); see :mod:`nativelib._index`."""
    preload = set(manifest.to_preload)
    lines = [LOADER_INDEX_MAGIC, f"name\t{manifest.name}", f"version\t{manifest.version}"]
    lines += [f"depends\t{dep.name}" for dep in manifest.dependencies]
    for soname in manifest.load_order:
        lib = manifest.library(soname)
        implicit = " ".join(lib.implicit_needs) if lib is not None else ""
        defs = " ".join(lib.version_definitions) if lib is not None else ""
        flag = "preload" if soname in preload else "-"
        lines.append(f"library\t{soname}\t{flag}\t{implicit}\t{defs}")
    return "\n".join(lines) + "\n"


__all__ += [
    "LOADER_INDEX_MAGIC",
    "IndexedLibrary",
    "LoaderIndex",
    "index_filename",
    "loader_index",
    "parse_loader_index",
    "soname_problem",
]
