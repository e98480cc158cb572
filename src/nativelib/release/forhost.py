"""Runtime wheels for one host, built from the catalog: what ``nativelib fix --build``
installs.

The candidates are the entries of a release file (the project's own,
``nativelib/data/release.toml``, by default): each is one runtime at a pinned upstream
version from one catalog source, so the choice needs no download. For each runtime
needed (with the bounds the repaired wheels' Requires-Dist put on it), and for the
catalog dependencies of each runtime built, the newest entry wins whose version
satisfies every bound and whose source was built against a glibc (the catalog source's
``glibc``) no newer than the host's: a wheel built from it is tagged manylinux at most
that, so pip installs it here. A runtime installed already at a satisfying version is
not built. :func:`build_for_host` then resolves the chosen sources (each must give the
release file's version), builds each wheel with the pipeline of ``nativelib build`` and
checks its file name: the version chosen, a platform tag the host runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from nativelib.abi import parse_platform_tag
from nativelib.catalog import Catalog, Recipe, Source
from nativelib.errors import BuildError
from nativelib.release.build import _build_runtime, caching_getter, resolve_release
from nativelib.release.releasefile import ReleaseEntry, ReleaseFile

__all__ = ["HostBuild", "build_for_host", "choose_builds", "installable_here"]


@dataclass(frozen=True)
class HostBuild:
    """One runtime wheel to build: a release file entry and why it is needed."""

    entry: ReleaseEntry
    recipe: Recipe
    source: Source
    needed: str  # the requirement it satisfies, e.g. "nativelib-gomp>=4.9"

    def describe(self) -> str:
        where = self.source.suite or self.source.channel
        return (
            f"{self.recipe.name} {self.entry.version} from {self.entry.source} "
            f"({self.source.kind} {where}, glibc {self.source.glibc}; for {self.needed})"
        )


def _glibc(host: tuple[int, int]) -> str:
    return f"{host[0]}.{host[1]}"


def choose_builds(
    requirements: Mapping[str, SpecifierSet],
    installed: Mapping[str, str],
    host_glibc: tuple[int, int],
    catalog: Catalog,
    release: ReleaseFile,
) -> list[HostBuild]:
    """The entries of ``release`` to build for ``requirements`` (distribution -> bounds)
    on a host with ``host_glibc``, in dependency order; ``installed`` (distribution ->
    version) are not built when they satisfy. Raises :class:`BuildError` naming the
    runtime, its bounds and what the release offers when no entry fits."""
    wanted: dict[str, SpecifierSet] = {}
    why: dict[str, str] = {}
    for name, spec in requirements.items():
        key = catalog.get(name).name
        wanted[key] = wanted.get(key, SpecifierSet()) & spec
        why[key] = f"{key}{wanted[key]}"
    chosen: dict[str, HostBuild] = {}
    todo = sorted(wanted)
    while todo:
        name = todo.pop(0)
        spec = wanted[name]
        have = installed.get(canonicalize_name(name))
        if have is not None and spec.contains(have, prereleases=True):
            continue
        recipe = catalog.recipes[name]
        entries = [e for e in release.entries if e.runtime == name]
        fits = []
        for entry in entries:
            source = recipe.source(entry.source)
            floor = source.glibc_version()
            if floor is not None and floor <= host_glibc and spec.contains(entry.version, True):
                fits.append((Version(entry.version), entry, source))
        if not fits:
            offered = "; ".join(
                f"{e.version} from {e.source} (glibc {recipe.source(e.source).glibc or '?'})"
                for e in entries
            )
            raise BuildError(
                name,
                f"no entry of the release file {release.path} satisfies {name}{spec or ''} "
                f"on this host (glibc {_glibc(host_glibc)}): it offers "
                f"{offered or 'no build of it'}",
                hint=f"install {name} from an index of runtime wheels instead (--index-url "
                "URL or --find-links DIR), or give --release-file with an entry that fits",
            )
        _version, entry, source = max(fits, key=lambda f: f[0])
        chosen[name] = HostBuild(entry, recipe, source, why.get(name, f"{name}{spec}"))
        for dep in recipe.depends:
            pin = SpecifierSet(f"=={entry.version}" if recipe.pin_depends_to_own_version else "")
            if dep not in wanted:
                why[dep] = f"{dep}{pin} (a dependency of {name})"
            wanted[dep] = wanted.get(dep, SpecifierSet()) & pin
            if dep in chosen and not wanted[dep].contains(chosen[dep].entry.version, True):
                del chosen[dep]  # chosen before this pin: choose again
            if dep not in chosen and dep not in todo:
                todo.append(dep)
    order = [r.name for r in catalog.in_dependency_order(sorted(chosen))]
    return [chosen[name] for name in order if name in chosen]  # (order adds dependencies)


def installable_here(filename: str, host_glibc: tuple[int, int], arch: str) -> bool:
    """Whether a wheel file name carries a platform tag this host runs."""
    _name, _version, _build, tags = parse_wheel_filename(filename)
    for tag in tags:
        if tag.platform == "any":
            return True
        parsed = parse_platform_tag(tag.platform)
        if parsed is not None and parsed[1] == arch and parsed[0] <= host_glibc:
            return True
    return False


def build_for_host(
    builds: Sequence[HostBuild],
    catalog: Catalog,
    out: Path,
    host_glibc: tuple[int, int],
    arch: str,
    release_path: str,
) -> list[Path]:
    """Build ``builds`` into ``out`` (each source resolved first, all of them, and its
    version checked against the release file); the wheel paths, in order."""
    entries = tuple(b.entry for b in builds)
    planned = resolve_release(ReleaseFile(release_path, entries, ()), catalog, caching_getter())
    paths = []
    for item in planned:
        path = _build_runtime(item, catalog, out)
        if path.name.split("-")[1] != item.version:
            raise BuildError(item.recipe.name, f"built {path.name}, expected {item.version}")
        if not installable_here(path.name, host_glibc, arch):
            raise BuildError(
                item.recipe.name,
                f"built {path.name}, whose tag this host (glibc {_glibc(host_glibc)}, {arch}) "
                f"does not run, though its catalog source says glibc {item.source.glibc}",
                hint="correct the source's 'glibc' in the catalog recipe",
            )
        paths.append(path)
    return paths
