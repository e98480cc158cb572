"""Wheels: by project and version from a simple index (PEP 691 JSON, else PEP 503 HTML),
or by URL; read as zip. The wheel whose tag fits the target platform best is taken, with
the sha256 the index gives."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from nativelib.errors import SourceError
from nativelib.sources.base import Getter, ResolvedPackage, SourceKind

if TYPE_CHECKING:
    from packaging.tags import Tag

    from nativelib.archive.members import Archive
    from nativelib.catalog import PackageRef, Source
    from nativelib.net.simple import IndexFile

__all__ = ["WheelKind", "linux_wheel_tags", "pick_wheel"]


def pick_wheel(
    files: Iterable[IndexFile], ref: PackageRef, supported: Iterable[Tag], where: str
) -> ResolvedPackage:
    """The wheel of ``ref`` (project, version) whose tags fit ``supported`` best."""
    from packaging.utils import canonicalize_name, parse_wheel_filename  # noqa: PLC0415
    from packaging.version import Version  # noqa: PLC0415

    from nativelib.digest import is_sha256  # noqa: PLC0415
    from nativelib.net.simple import selection_problem  # noqa: PLC0415

    order = {tag: i for i, tag in enumerate(supported)}
    if ref.name is None or ref.version is None:
        raise SourceError(where, "a wheel package needs a project name and a version")
    want_name, want_version = canonicalize_name(ref.name), Version(ref.version)
    best: tuple[int, IndexFile] | None = None
    for f in files:
        if not f.filename.endswith(".whl"):
            continue
        try:
            name, version, _build, tags = parse_wheel_filename(f.filename)
        except ValueError:
            continue
        if name != want_name or version != want_version:
            continue
        # The recipe names the version (so a pre-release is asked for), but it is not a
        # user's pin: a yanked file is never built from.
        if selection_problem(version, f.yanked, None, prereleases=True):
            continue
        rank = min((order[t] for t in tags if t in order), default=None)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, f)
    if best is None:
        raise SourceError(where, f"no wheel of {ref.describe()!r} for this platform in the index")
    chosen = best[1]
    if chosen.sha256 is None or not is_sha256(chosen.sha256):
        raise SourceError(where, f"the index gives no sha256 for {chosen.filename}")
    return ResolvedPackage(
        "wheel", ref.name, ref.version, chosen.url, chosen.sha256, chosen.filename
    )


def linux_wheel_tags(arch: str = "x86_64", glibc: tuple[int, int] = (2, 41)) -> list[Tag]:
    """Tags of pure-Python-ABI wheels (``py3-none``) for manylinux up to ``glibc``, best first."""
    from packaging.tags import parse_tag  # noqa: PLC0415

    from nativelib.abi import legacy_aliases  # noqa: PLC0415

    tags: list[Tag] = []
    for minor in range(glibc[1], 4, -1):
        for interp in ("py3", "py2.py3"):
            tags.extend(parse_tag(f"{interp}-none-manylinux_2_{minor}_{arch}"))
    for legacy in legacy_aliases():
        for interp in ("py3", "py2.py3"):
            tags.extend(parse_tag(f"{interp}-none-{legacy}_{arch}"))
    return tags


class WheelKind(SourceKind):
    name = "wheel"
    suffixes = (".whl",)
    aliases = ("whl",)

    def check_package(self, name: str, version: str | None) -> str | None:
        return None if version is not None else f"wheel package {name!r} needs a 'version'"

    def resolve(
        self, source: Source, named: Sequence[PackageRef], get: Getter, arch: str
    ) -> list[ResolvedPackage]:
        from packaging.utils import canonicalize_name  # noqa: PLC0415

        from nativelib.net.simple import parse_simple_index  # noqa: PLC0415

        tags = linux_wheel_tags(arch)
        out = []
        for ref in named:
            assert ref.name is not None
            url = f"{source.index_url}/{canonicalize_name(ref.name)}/"
            body, content_type = get(url)
            out.append(pick_wheel(parse_simple_index(body, content_type, url), ref, tags, url))
        return out

    def open(self, path: str, spelled: str) -> Archive:
        from nativelib.archive.zip import WheelArchive  # noqa: PLC0415

        return WheelArchive(path)
