"""Plan and build one runtime wheel from upstream packages that are already on disk.

``plan_build`` extracts each package safely (``archive.extract``), finds the recipe's
sonames among the ELF files (following the package's own symlinks to the real file,
one real file per soname), reads each with ``nativelib.elf``, checks that every NEEDED
entry is provided by the host or by a declared runtime dependency, computes the version
(the upstream version of the package named by ``version-from``) and the manylinux tag
(from the version nodes the libraries need), and plans the manifest and the wheel.
``BuildPlan.describe()`` is what ``nativelib build --plan`` prints; ``build`` writes it.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from nativelib import __version__
from nativelib.abi import load_policies, manylinux_tags, platform_tags_with_aliases
from nativelib.archive import (
    MemberKind,
    PackageInfo,
    extract_with_info_files,
    iter_members,
    open_archive,
)
from nativelib.catalog import Catalog, Recipe, Source
from nativelib.elf import ElfInfo, has_elf_magic, read_elf
from nativelib.errors import BuildError, ElfError, SourceError
from nativelib.prefix import (
    INCLUDE_DIR,
    LIB_DIR,
    PREFIX_DIRNAME,
    PROVIDES_BEGIN,
    PROVIDES_END,
    Dependency,
    Library,
    Manifest,
    PackageProvenance,
    Provenance,
    index_filename,
    load_order,
    loader_index,
    sha256_file,
)
from nativelib.runtime_wheels.buildfiles import (
    PKGCONFIG_FOLDER,
    BuildInfo,
    files_for,
    import_path_files,
)
from nativelib.sources import upstream_version
from nativelib.wheelfile import WheelFile, WheelPlan, write_wheel

__all__ = [
    "PROVIDES_BEGIN",
    "PROVIDES_END",
    "BuildError",
    "BuildPlan",
    "Input",
    "PlannedLibrary",
    "build",
    "plan_build",
    "sha256_file",
]

#: The dynamic loader's own names: always provided by the host.
_LOADERS = frozenset(
    {"ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1", "ld-linux.so.2", "ld64.so.2"}
)


@dataclass(frozen=True)
class Input:
    """One upstream package file on disk and where it came from."""

    path: Path
    kind: str  # a source kind (nativelib.sources) or an alias open_archive takes
    url: str  # the URL it was downloaded from, or a file: URL for a local file
    sha256: str


@dataclass(frozen=True)
class PlannedLibrary:
    soname: str
    path: Path  # the extracted real file
    origin: str  # "<package file>!<member>"
    info: ElfInfo
    sha256: str
    size: int


@dataclass(frozen=True)
class BuildPlan:
    recipe: Recipe
    source: str
    version: str
    libraries: tuple[PlannedLibrary, ...]
    manifest: Manifest
    wheel: WheelPlan

    def describe(self) -> str:
        lines = [
            f"{self.recipe.name} {self.version} from {self.source} -> {self.wheel.filename}",
            f"  tag: {self.wheel.tag}",
            f"  requires: {', '.join(self.wheel.requires_dist) or '-'}",
            "  libraries (load order: " + " ".join(self.manifest.load_order) + "):",
        ]
        for lib in self.libraries:
            defs = lib.info.version_definitions
            newest = f", {len(defs)} version nodes up to {defs[-1]}" if defs else ""
            lines.append(f"    {lib.soname}  {lib.size} bytes  from {lib.origin}{newest}")
        lines.append(self.wheel.describe())
        return "\n".join(lines)


def _wanted(recipe: Recipe, source: Source | None) -> list[str]:
    """The members worth extracting: the recipe's shared objects, headers and licences.

    A library's file name starts with its soname's stem (``libstdc++.so.6.0.30`` for
    ``libstdc++.so.6``, ``libmkl_core.so.2`` for ``libmkl_*.so.2``), so only files named
    like that are extracted: the other shared objects of a package (intel-openmp ships
    ~100 MB of them) are checked but never written. Every member is checked either way.
    """
    globs = [f"{soname.split('.so', 1)[0]}.so*" for soname in recipe.sonames]
    if source is not None:
        globs += list(source.license_files) + list(source.headers)
    return globs


def _matches(name: str, patterns: Iterable[str]) -> bool:
    base = name.rsplit("/", 1)[-1]
    for pattern in patterns:
        if "/" in pattern:
            if fnmatch.fnmatchcase(name, pattern) or (
                "**/" in pattern and fnmatch.fnmatchcase(name, pattern.replace("**/", ""))
            ):
                return True
        elif fnmatch.fnmatchcase(base, pattern):
            return True
    return False


@dataclass
class _Unpacked:
    input: Input
    info: PackageInfo
    root: Path
    names: list[str]  # extracted member names (normalized), files and symlinks
    metadata: dict[str, bytes]  # selected files of a conda package's info/ (its licences)


def _unpack(inp: Input, dest: Path, patterns: list[str]) -> _Unpacked:
    archive = open_archive(inp.path, inp.kind)
    info = archive.info()
    try:
        members, metadata = extract_with_info_files(
            archive,
            dest,
            select=lambda m: _matches(m.name, patterns),
            info_select=lambda name: _matches(name, patterns),
        )
    except OSError as e:  # the disk full, the work directory unwritable
        raise SourceError(str(inp.path), f"cannot extract into {str(dest)!r}: {e}") from e
    names = [m.name for m in members if m.kind.name in ("FILE", "SYMLINK", "HARDLINK")]
    return _Unpacked(inp, info, dest, names, metadata)


def _resolve_inside(root: Path, name: str) -> Path | None:
    """The real file a member name leads to, following symlinks only inside ``root``."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(root / name)
    if not real.startswith(real_root + os.sep) or not os.path.isfile(real):
        return None
    return Path(real)


def plan_build(
    recipe: Recipe,
    inputs: Sequence[Input],
    *,
    catalog: Catalog,
    workdir: Path,
    source: Source | None = None,
    arch: str = "x86_64",
) -> BuildPlan:
    """Plan the runtime wheel of ``recipe`` from ``inputs``; ``workdir`` must be empty.

    ``source`` is the recipe source the inputs came from (for licence and header globs,
    ``version-from`` and ``post``); ``None`` for local archives given on the command line,
    whose licence files are then looked for in the usual places.
    """
    name = recipe.name
    if not inputs:
        raise BuildError(name, "no upstream packages to build from")
    workdir.mkdir(parents=True, exist_ok=True)
    patterns = _wanted(recipe, source)
    license_globs = (
        list(source.license_files) if source and source.license_files else _DEFAULT_LICENSES
    )
    patterns += license_globs
    # Each package is decompressed on its own thread (lzma, bz2 and zlib release the GIL).
    with ThreadPoolExecutor(max_workers=min(len(inputs), os.cpu_count() or 1)) as pool:
        unpacked = list(
            pool.map(
                lambda i: _unpack(inputs[i], workdir / f"pkg{i}", patterns), range(len(inputs))
            )
        )

    # Every real ELF file, by soname (or by file name when it has none).
    found: dict[str, list[tuple[Path, str, ElfInfo]]] = {}
    for u in unpacked:
        for member in u.names:
            real = _resolve_inside(u.root, member)
            if real is None or not has_elf_magic(real):
                continue
            try:
                info = read_elf(real)
            except ElfError as e:
                raise BuildError(name, f"{u.input.path.name}!{member}: {e.reason}") from e
            # Symlinks lead to their real file, which is kept once, under its soname
            # (or, when it has none, under the name it was reached by).
            key = info.soname or member.rsplit("/", 1)[-1]
            entries = found.setdefault(key, [])
            if all(p != real for p, _o, _i in entries):
                inside = os.path.relpath(real, os.path.realpath(u.root))
                entries.append((real, f"{u.input.path.name}!{inside}", info))

    chosen: list[PlannedLibrary] = []
    for pattern in recipe.sonames:
        keys = sorted(k for k in found if recipe.owns(k) and fnmatch.fnmatchcase(k, pattern))
        if not keys:
            listing = ", ".join(sorted(k for k in found)) or "none"
            raise BuildError(
                name,
                f"no library with soname {pattern!r} in {', '.join(i.path.name for i in inputs)}"
                f" (shared objects found: {listing})",
            )
        for soname in keys:
            if any(c.soname == soname for c in chosen):
                continue
            candidates = found[soname]
            digests = {sha256_file(p) for p, _o, _i in candidates}
            if len(digests) > 1:
                where = ", ".join(o for _p, o, _i in candidates)
                raise BuildError(name, f"soname {soname!r} is provided by different files: {where}")
            path, origin, info = candidates[0]
            if info.soname is not None and info.soname != soname:
                raise BuildError(name, f"{origin} has soname {info.soname!r}, not {soname!r}")
            chosen.append(
                PlannedLibrary(soname, path, origin, info, digests.pop(), path.stat().st_size)
            )

    _check_needed(recipe, catalog, chosen)
    version = _version(recipe, source, unpacked)
    tag = _platform_tag(recipe, catalog, chosen, arch)
    return _plan(recipe, source, version, tag, chosen, unpacked, license_globs)


_DEFAULT_LICENSES = [
    "usr/share/doc/*/copyright",
    "usr/share/licenses/*/*",
    "*.dist-info/LICENSE*",
    "*.dist-info/licenses/*",
    "info/licenses/*",
]


def _licence_hint(unpacked: Sequence[_Unpacked]) -> str:
    """What to do when no licence was found. A Debian package often ships its
    ``usr/share/doc/<package>`` as a symlink to the directory of the package that holds
    the copyright file (``libstdc++6`` -> ``gcc-12-base``): name that package."""
    for u in unpacked:
        for member, _stream in iter_members(open_archive(u.input.path, u.input.kind)):
            parts = member.name.split("/")
            target = member.linkname or ""
            if (
                member.kind is MemberKind.SYMLINK
                and len(parts) == 4
                and parts[:3] == ["usr", "share", "doc"]
                and target
                and "/" not in target.strip("/")
                and target not in (".", "..")
            ):
                target = target.strip("/")
                return (
                    f"{u.input.path.name} keeps its licence in Debian's {target!r} package "
                    f"(usr/share/doc/{parts[3]} is a symlink to {target}): add that package, "
                    f"e.g. --from deb:{target}_<version>_<arch>.deb, or build from the "
                    "catalog's source (--source)"
                )
    return (
        "add the upstream package that holds the licence (another --from), or build from "
        "the catalog's source (--source), whose recipe names its licence files"
    )


def _dependency_closure(recipe: Recipe, catalog: Catalog) -> list[Recipe]:
    return [r for r in catalog.in_dependency_order([recipe.name]) if r.name != recipe.name]


def _check_needed(recipe: Recipe, catalog: Catalog, chosen: list[PlannedLibrary]) -> None:
    host = load_policies().host_libraries
    deps = _dependency_closure(recipe, catalog)
    problems = []
    for lib in chosen:
        for need in lib.info.needed:
            owner = catalog.owner_of(need)
            if owner is recipe or any(d is owner for d in deps):
                continue
            if owner is not None:
                problems.append(
                    f"{lib.soname} NEEDs {need}, which {owner.name} owns: declare it in 'depends'"
                )
            elif need not in host and need not in _LOADERS:
                problems.append(
                    f"{lib.soname} NEEDs {need}, which neither the host provides (manylinux "
                    "policy) nor any declared runtime dependency"
                )
    if problems:
        raise BuildError(recipe.name, "; ".join(problems))


def _version(recipe: Recipe, source: Source | None, unpacked: list[_Unpacked]) -> str:
    wanted = source.version_from if source else None
    pick = next((u for u in unpacked if wanted and u.info.name == wanted), unpacked[0])
    version = upstream_version(pick.info.kind, pick.info.version)
    if source is not None and source.post is not None:
        version = f"{version}.post{source.post}"
    return version


def _platform_tag(recipe: Recipe, catalog: Catalog, chosen: list[PlannedLibrary], arch: str) -> str:
    if not chosen:
        return "py3-none-any"
    deps = _dependency_closure(recipe, catalog)
    satisfied = [
        need
        for lib in chosen
        for need in lib.info.needed
        if recipe.owns(need) or any(d.owns(need) for d in deps)
    ]
    tags = manylinux_tags([lib.info for lib in chosen], arch, satisfied=satisfied)
    if not tags:
        raise BuildError(
            recipe.name, "the libraries need version nodes beyond every manylinux policy"
        )
    return "py3-none-" + ".".join(platform_tags_with_aliases(tags[0]))


def _plan(
    recipe: Recipe,
    source: Source | None,
    version: str,
    tag: str,
    chosen: list[PlannedLibrary],
    unpacked: list[_Unpacked],
    license_globs: list[str],
) -> BuildPlan:
    name = recipe.name
    libraries = tuple(
        Library(
            soname=lib.soname,
            file=f"{LIB_DIR}/{lib.soname}",
            sha256=lib.sha256,
            size=lib.size,
            version_definitions=lib.info.version_definitions,
            needed=lib.info.needed,
            version_needs=lib.info.version_needs,
            implicit_needs=recipe.implicit_needs.get(lib.soname, ()),
        )
        for lib in chosen
    )
    files = [
        WheelFile(f"{PREFIX_DIRNAME}/{LIB_DIR}/{lib.soname}", source=lib.path) for lib in chosen
    ]

    headers: list[str] = []
    if source is not None and source.headers:
        roots = source.headers_roots or ("",)
        for u in unpacked:
            for member in u.names:
                root = next((r for r in roots if not r or member.startswith(r + "/")), None)
                if root is not None and _matches(member, source.headers):
                    real = _resolve_inside(u.root, member)
                    if real is None:
                        continue
                    # include/<short name>/...: two distributions never own one header
                    # (CUDA 12 and 13 ship the same names).
                    rel = member[len(root) + 1 :] if root else member
                    header = f"{INCLUDE_DIR}/{recipe.short}/{rel}"
                    if header in headers:  # two packages (two roots) with one header
                        raise BuildError(
                            name,
                            f"two upstream packages ship the header {rel!r} (headers-root "
                            f"{', '.join(roots)}): narrow the recipe's 'headers' globs",
                        )
                    headers.append(header)
                    files.append(WheelFile(f"{PREFIX_DIRNAME}/{header}", source=real))

    licenses: list[WheelFile] = []
    for u in unpacked:
        for member in u.names:
            if _matches(member, license_globs):
                real = _resolve_inside(u.root, member)
                if real is not None:
                    licenses.append(WheelFile(f"{u.info.name}/{member}", source=real))
        for member, data in sorted(u.metadata.items()):
            if _matches(member, license_globs):
                licenses.append(WheelFile(f"{u.info.name}/{member}", data=data))
    if not licenses:
        raise BuildError(
            name,
            f"no licence file matched {license_globs!r} in the upstream packages: a runtime "
            "wheel must carry its upstream licence",
            hint=_licence_hint(unpacked),
        )

    pin = recipe.pin_depends_to_own_version
    dependencies = tuple(Dependency(dep, f"=={version}" if pin else "") for dep in recipe.depends)
    provenance = Provenance(
        source=source.name if source else "local",
        kind=unpacked[0].info.kind,
        packages=tuple(
            PackageProvenance(
                u.info.name, u.info.version, u.input.url, u.input.sha256, u.input.path.name
            )
            for u in unpacked
        ),
        license=recipe.license_expression,
        license_files=tuple(sorted(f.arcname for f in licenses)),
    )
    order = load_order(libraries)
    build_info = BuildInfo(
        name=name,
        short=recipe.short,
        summary=recipe.summary,
        version=version,
        sonames=order,
        has_headers=bool(headers),
    )
    build_files = files_for(build_info)
    for rel, data in build_files:
        files.append(WheelFile(f"{PREFIX_DIRNAME}/{rel}", data=data))
    for rel, data in import_path_files(build_info):
        files.append(WheelFile(rel, data=data))
    manifest = Manifest(
        name=name,
        version=version,
        libraries=libraries,
        load_order=order,
        dependencies=dependencies,
        provenance=provenance,
        platform_tag=tag.split("-", 2)[2],
        headers=tuple(sorted(headers)),
        preload=recipe.preload,
        build_files=tuple(rel for rel, _ in build_files),
    )
    files.append(
        WheelFile(f"{PREFIX_DIRNAME}/{manifest.filename}", data=manifest.to_json().encode())
    )
    files.append(
        WheelFile(f"{PREFIX_DIRNAME}/{index_filename(name)}", data=loader_index(manifest).encode())
    )
    upstream = ", ".join(f"{u.info.name} {u.info.version}" for u in unpacked)
    description = "\n".join(
        [
            f"# {name} {version}",
            "",
            f"{recipe.summary}, repackaged by pynativelib {__version__} into the common prefix "
            f"`{PREFIX_DIRNAME}/` from {provenance.kind} packages ({provenance.source}).",
            "",
            "| upstream package | version | sha256 | from |",
            "|---|---|---|---|",
            *(f"| {p.name} | {p.version} | {p.sha256} | {p.url} |" for p in provenance.packages),
            "",
            # What the resolver needs, readable from METADATA alone (PEP 658 serves it).
            PROVIDES_BEGIN,
            *(f"{lib.soname}: {' '.join(lib.version_definitions)}" for lib in libraries),
            PROVIDES_END,
            "",
        ]
    )
    wheel = WheelPlan(
        name=name,
        version=version,
        tag=tag,
        files=tuple(files),
        summary=f"{recipe.summary}, from {provenance.kind} {upstream}",
        requires_dist=("pynativelib", *(d.requirement() for d in dependencies)),
        license_files=tuple(licenses),
        license_expression=recipe.license_expression,
        description=description,
        description_content_type="text/markdown",
        entry_points=_ENTRY_POINTS,
    )
    return BuildPlan(recipe, provenance.source, version, tuple(chosen), manifest, wheel)


#: What build backends read: scikit-build-core adds the ``cmake.prefix`` entry's package
#: directory (pynativelib's ``nativelib/``, holding ``share/cmake/nativelib/
#: nativelibConfig.cmake``, which finds this wheel's component in the prefix) to
#: ``CMAKE_PREFIX_PATH``; the ``pkgconf`` wheel adds the ``pkg_config`` entry's folder
#: (``nativelib_pkgconfig``, where this wheel's ``.pc`` copy is) to ``PKG_CONFIG_PATH``.
#: pynativelib's own pyproject declares the same ``cmake.prefix`` entry (it ships no
#: ``.pc`` file, so no ``pkg_config`` entry).
_ENTRY_POINTS = (
    ("cmake.prefix", "nativelib", "nativelib"),
    ("pkg_config", "nativelib", PKGCONFIG_FOLDER),
)


def build(plan: BuildPlan, out_dir: Path, *, source_date_epoch: int | None = None) -> Path:
    """Write the planned wheel into ``out_dir`` (validated, then published atomically)."""
    return write_wheel(plan.wheel, out_dir, source_date_epoch=source_date_epoch)
