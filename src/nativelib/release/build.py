"""Build a release set: every runtime wheel of a release file, and the project's own
sdist and wheel, into one directory.

The runtime wheels go through the build pipeline of ``nativelib build`` as a library
(:func:`nativelib.runtime_wheels.builder.plan_build` and ``build``): the sources are
resolved first, all of them, and each entry's version checked (a source that does not
give the release file's version is an error before anything is built); each index
(a suite's ``Packages.xz``) is fetched and parsed once per run, for every runtime built
from it.

Resuming: a runtime wheel already in the directory is kept when it validates (RECORD
hashes, metadata, file name: :func:`nativelib.wheelfile.validate_wheel`) and its
manifest names the same source and the same upstream files (sha256) the source resolves
to now; otherwise it is built again. Every file is published by a rename of a temporary
file in the directory, so a killed run leaves no half-written file under a final name.
"""

from __future__ import annotations

import hashlib
import logging
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nativelib.catalog import Catalog, PackageRef, Recipe, Source
from nativelib.errors import BuildError, ManifestError, NativeLibError, WheelError
from nativelib.leftovers import temporary_tree
from nativelib.net.download import fetch, get_document
from nativelib.prefix import MANIFEST_DIR, PREFIX_DIRNAME, parse_manifest
from nativelib.release.project import build_project
from nativelib.release.releasefile import ReleaseEntry, ReleaseFile, ReleaseFileError
from nativelib.runtime_wheels.builder import Input, build, plan_build
from nativelib.sources import ResolvedPackage, resolve, upstream_version
from nativelib.sources.base import Getter
from nativelib.wheelfile import validate_wheel

__all__ = [
    "Planned",
    "ReleasedFile",
    "build_release",
    "caching_getter",
    "resolve_release",
    "sha256_of",
]

_log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class ReleasedFile:
    """One file of the release directory, as the summary lists it."""

    filename: str
    name: str
    version: str
    tag: str  # the wheel's tag triple, or "sdist"
    kind: str  # "runtime", "wheel" or "sdist"
    size: int
    sha256: str
    source: str  # the catalog source, or "checkout"
    status: str  # "built", "kept" (already there and verified) or "unchanged"


@dataclass(frozen=True)
class Planned:
    """An entry of the release file with its source resolved to upstream files."""

    entry: ReleaseEntry
    recipe: Recipe
    source: Source
    packages: tuple[ResolvedPackage, ...]
    version: str  # the runtime wheel's version


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def caching_getter(get: Getter = get_document) -> Getter:
    """``get``, fetching each URL once (a suite's Packages.xz serves every runtime)."""
    seen: dict[str, tuple[bytes, str]] = {}

    def cached(url: str) -> tuple[bytes, str]:
        if url not in seen:
            seen[url] = get(url)
        return seen[url]

    return cached


def _entry_where(release: ReleaseFile, catalog: Catalog, entry: ReleaseEntry) -> str:
    return f"runtimes.{catalog.recipes[entry.runtime].short}.{entry.source}"


def _index_key(source: Source) -> tuple[str | None, ...]:
    """What decides which index a source's named packages are looked up in."""
    return (source.kind, source.channel, source.subdir, source.suite, source.mirror,
            source.index_url)  # fmt: skip


def _resolve_all(sources: list[Source], get: Getter) -> list[tuple[ResolvedPackage, ...]]:
    """``resolve(source, get)`` for each source, in the same order, reading each index
    once: the named packages of every source that shares an index (a Debian suite's
    Packages.xz: ~7 s to decompress and parse) are looked up in one call."""
    from dataclasses import replace  # noqa: PLC0415

    groups: dict[tuple[str | None, ...], list[PackageRef]] = {}
    for source in sources:
        refs = groups.setdefault(_index_key(source), [])
        refs.extend(r for r in source.packages if r.url is None and r not in refs)
    found: dict[tuple[tuple[str | None, ...], PackageRef], ResolvedPackage] = {}
    for source in sources:
        key = _index_key(source)
        refs = groups.pop(key, [])
        if refs:
            for ref, pkg in zip(
                refs, resolve(replace(source, packages=tuple(refs)), get), strict=True
            ):
                found[(key, ref)] = pkg
    out = []
    for source in sources:
        key = _index_key(source)
        by_url = resolve(replace(source, packages=tuple(r for r in source.packages if r.url)), get)
        named = [found[(key, r)] for r in source.packages if r.url is None]
        out.append((*by_url, *named))
    return out


def resolve_release(release: ReleaseFile, catalog: Catalog, get: Getter) -> list[Planned]:
    """Every entry's upstream files; a :class:`ReleaseFileError` (naming the release file
    and the entry) when a source does not give the entry's version."""
    from packaging.version import Version  # noqa: PLC0415

    sources = [catalog.recipes[e.runtime].source(e.source) for e in release.entries]
    resolved = _resolve_all(sources, get)
    planned = []
    for entry, source, packages in zip(release.entries, sources, resolved, strict=True):
        recipe = catalog.recipes[entry.runtime]
        pick = next((p for p in packages if p.name == source.version_from), packages[0])
        upstream = upstream_version(pick.kind, pick.version)
        if Version(upstream) != Version(entry.version):
            raise ReleaseFileError(
                release.path,
                f"{_entry_where(release, catalog, entry)}: the source gives {recipe.name} "
                f"{upstream} ({pick.name} {pick.version}), not {entry.version}",
                hint=f"write {upstream!r} for it in the release file, or pick another source",
            )
        version = f"{upstream}.post{source.post}" if source.post is not None else upstream
        planned.append(Planned(entry, recipe, source, packages, version))
    return planned


def _tag(filename: str) -> str:
    return "-".join(filename[: -len(".whl")].split("-")[-3:])


def _kept(out: Path, planned: Planned) -> Path | None:
    """A wheel of ``planned`` already in ``out``, valid and built from the same files."""
    from packaging.utils import canonicalize_name  # noqa: PLC0415

    escaped = canonicalize_name(planned.recipe.name).replace("-", "_")
    wanted = sorted(p.sha256 for p in planned.packages)
    member = f"{PREFIX_DIRNAME}/{MANIFEST_DIR}/{planned.recipe.name}.json"
    for path in sorted(out.glob(f"{escaped}-{planned.version}-*.whl")):
        try:
            validate_wheel(path)
            with zipfile.ZipFile(path) as zf:
                manifest = parse_manifest(zf.read(member), f"{path.name}!{member}")
        except (WheelError, ManifestError, KeyError, OSError, zipfile.BadZipFile) as e:
            _log.warning("%s: not kept, built again (%s)", path.name, e)
            continue
        provenance = manifest.provenance
        if provenance.source == planned.entry.source and wanted == sorted(
            p.sha256 for p in provenance.packages
        ):
            return path
    return None


def _build_runtime(planned: Planned, catalog: Catalog, out: Path) -> Path:
    recipe = planned.recipe
    try:
        inputs = [Input(fetch(p.url, p.sha256), p.kind, p.url, p.sha256) for p in planned.packages]
        with temporary_tree("build") as work:
            plan = plan_build(
                recipe,
                inputs,
                catalog=catalog,
                workdir=Path(work) / "unpacked",
                source=planned.source,
            )
            return build(plan, out)
    except BuildError:
        raise
    except NativeLibError as e:
        raise BuildError(recipe.name, e.message, hint=e.hint) from e


def _released(path: Path, kind: str, source: str, status: str) -> ReleasedFile:
    from packaging.utils import parse_sdist_filename, parse_wheel_filename  # noqa: PLC0415

    if kind == "sdist":
        name, version = parse_sdist_filename(path.name)
        tag = "sdist"
    else:
        name, version, _build, _tags = parse_wheel_filename(path.name)
        tag = _tag(path.name)
    return ReleasedFile(
        path.name, str(name), str(version), tag, kind, path.stat().st_size, sha256_of(path),
        source, status,
    )  # fmt: skip


def build_release(
    planned: list[Planned],
    catalog: Catalog,
    out: Path,
    *,
    project: Path,
    epoch: int,
    reuse: bool = True,
    progress: Progress | None = None,
) -> list[ReleasedFile]:
    """Build (or keep, when ``reuse``) every runtime wheel of ``planned``, then the
    project's sdist and wheel, in ``out``; the files in order."""
    files: list[ReleasedFile] = []
    total = len(planned) + 1
    for i, item in enumerate(planned, 1):
        label = f"{item.recipe.name} {item.version} from {item.entry.source}"
        kept = _kept(out, item) if reuse else None
        if kept is not None:
            if progress:
                progress(i, total, f"kept {kept.name}")
            files.append(_released(kept, "runtime", item.entry.source, "kept"))
            continue
        if progress:
            progress(i, total, f"building {label}")
        path = _build_runtime(item, catalog, out)
        if path.name.split("-")[1] != item.version:
            raise BuildError(
                item.recipe.name, f"built {path.name}, expected version {item.version}"
            )
        files.append(_released(path, "runtime", item.entry.source, "built"))
    if progress:
        progress(total, total, f"building pynativelib from {project}")
    before = {p.name: sha256_of(p) for p in out.glob("pynativelib-*") if p.is_file()}
    built = build_project(project, out, epoch)
    for path, kind in ((built.sdist, "sdist"), (built.wheel, "wheel")):
        done = _released(path, kind, "checkout", "built")
        if before.get(path.name) == done.sha256:
            done = _released(path, kind, "checkout", "unchanged")
        files.append(done)
    return files
