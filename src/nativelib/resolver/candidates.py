"""Where runtime candidates come from: installed prefixes, a find-links directory, a
simple-API index, or a static list (the scenario corpus).

Each source is one small callable: ``source(name) -> list[Candidate]``.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import urljoin

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as PkgRequirement
from packaging.specifiers import SpecifierSet
from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import Version

from nativelib.errors import NativeLibError, SourceError
from nativelib.prefix import (
    MANIFEST_DIR,
    PREFIX_DIRNAME,
    PROVIDES_BEGIN,
    PROVIDES_END,
    Manifest,
    parse_manifest,
    sha256_file,
)
from nativelib.resolver.model import Candidate, Pending

__all__ = [
    "Source",
    "candidate_from_manifest",
    "candidate_from_metadata",
    "candidates_from_wheel",
    "find_links",
    "index",
    "installed",
    "merge",
    "static",
]

Source = Callable[[NormalizedName], Sequence[Candidate | Pending]]


def _dependencies(requires: Iterable[str]) -> tuple[tuple[str, SpecifierSet], ...]:
    out = []
    for line in requires:
        try:
            req = PkgRequirement(line)
        except InvalidRequirement:
            continue
        name = canonicalize_name(req.name)
        if name.startswith("nativelib-"):
            out.append((name, req.specifier))
    return tuple(out)


def candidate_from_manifest(
    manifest: Manifest, *, platforms: tuple[str, ...], **extra: object
) -> Candidate:
    return Candidate(
        name=canonicalize_name(manifest.name),
        version=Version(manifest.version),
        definitions={lib.soname: frozenset(lib.version_definitions) for lib in manifest.libraries},
        dependencies=_dependencies(d.requirement() for d in manifest.dependencies),
        platforms=platforms,
        **extra,  # type: ignore[arg-type]
    )


def candidates_from_wheel(path: Path, **extra: object) -> Candidate:
    """A runtime wheel file: its name, version and tags, and the manifest inside it."""
    try:
        name, version, _build, tags = parse_wheel_filename(path.name)
    except InvalidWheelFilename as e:
        raise SourceError(str(path), f"not a wheel file name: {e}") from e
    member = f"{PREFIX_DIRNAME}/{MANIFEST_DIR}/{name}.json"
    try:
        with zipfile.ZipFile(path) as zf:
            text = zf.read(member)
    except KeyError as e:
        raise SourceError(str(path), f"not a runtime wheel: no {member}") from e
    except (OSError, zipfile.BadZipFile) as e:
        raise SourceError(str(path), f"cannot read the wheel: {e}") from e
    manifest = parse_manifest(text, f"{path}!{member}")
    if canonicalize_name(manifest.name) != name or Version(manifest.version) != version:
        raise SourceError(str(path), "the manifest does not match the wheel's name and version")
    platforms = tuple(sorted({t.platform for t in tags}))
    return candidate_from_manifest(manifest, platforms=platforms, **extra)


def candidate_from_metadata(data: bytes, filename: str, **extra: object) -> Candidate | None:
    """A runtime candidate from its METADATA alone (as PEP 658 serves it), when the
    description carries the provides block the builder writes; else None."""
    from email.parser import BytesParser  # noqa: PLC0415

    try:
        name, version, _build, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return None
    message = BytesParser().parsebytes(data)
    body = message.get_payload()
    if not isinstance(body, str) or PROVIDES_BEGIN not in body:
        return None
    block = body.split(PROVIDES_BEGIN, 1)[1].split(PROVIDES_END, 1)[0]
    definitions: dict[str, frozenset[str]] = {}
    for line in block.strip().splitlines():
        soname, _, nodes = line.partition(":")
        if soname.strip():
            definitions[soname.strip()] = frozenset(nodes.split())
    if canonicalize_name(str(message.get("Name", ""))) != name:
        return None
    return Candidate(
        name=name,
        version=version,
        definitions=definitions,
        dependencies=_dependencies(message.get_all("Requires-Dist") or []),
        platforms=tuple(sorted({t.platform for t in tags})),
        **extra,  # type: ignore[arg-type]
    )


def find_links(directory: Path) -> Source:
    """Every runtime wheel in a directory (``--find-links DIR``)."""
    by_name: dict[str, list[Candidate]] = {}
    for path in sorted(Path(directory).glob("nativelib_*.whl")):
        cand = candidates_from_wheel(
            path, url=path.resolve().as_uri(), sha256=sha256_file(path), location=str(directory)
        )
        by_name.setdefault(cand.name, []).append(cand)
    return lambda name: list(by_name.get(name, ()))


def installed(path: list[str] | None = None) -> Source:
    """Runtime distributions installed in the site directories on ``sys.path``."""
    from nativelib.loader import discover  # noqa: PLC0415 (ctypes only when asked)

    by_name: dict[str, list[Candidate]] = {}
    for dist in discover(path).values():
        where = os.path.join(dist.prefix, MANIFEST_DIR, f"{dist.name}.json")
        try:
            with open(where, "rb") as f:
                manifest = parse_manifest(f.read(), where)
        except OSError as e:
            raise SourceError(where, f"cannot read the manifest: {e.strerror}") from e
        cand = candidate_from_manifest(
            manifest, platforms=("any",), installed=True, location=dist.prefix
        )
        by_name.setdefault(cand.name, []).append(cand)
    return lambda name: list(by_name.get(name, ()))


def index(
    url: str,
    *,
    get: Callable[[str], tuple[bytes, str]] | None = None,
    fetch_wheel: Callable[[str, str], Path] | None = None,
) -> Source:
    """A simple-API index (PEP 691 JSON, else PEP 503 HTML): each wheel is fetched
    (sha256-pinned by the index, cached) and its manifest read."""
    from nativelib.runtime_wheels.download import fetch, get_document  # noqa: PLC0415
    from nativelib.runtime_wheels.sources import IndexFile, parse_simple_index  # noqa: PLC0415

    getter = get or get_document
    fetcher: Callable[[str, str], Path] = fetch_wheel or fetch
    cache: dict[str, list[Candidate | Pending]] = {}

    def loader(f: IndexFile, extra: dict[str, object]) -> Callable[[], Candidate]:
        def load() -> Candidate:
            if f.metadata is not None:  # PEP 658: METADATA without the wheel
                data, _type = getter(f"{f.url}.metadata")
                if f.metadata and hashlib.sha256(data).hexdigest() != f.metadata:
                    raise SourceError(f"{f.url}.metadata", "sha256 mismatch with the index")
                cand = candidate_from_metadata(data, f.filename, **extra)
                if cand is not None:
                    return cand
            assert f.sha256 is not None
            return candidates_from_wheel(fetcher(f.url, f.sha256), **extra)

        return load

    def source(name: NormalizedName) -> list[Candidate | Pending]:
        if name in cache:
            return cache[name]
        page = urljoin(url.rstrip("/") + "/", f"{name}/")
        try:
            body, content_type = getter(page)
        except SourceError as e:
            if "HTTP 404" in str(e):
                cache[name] = []
                return []
            raise
        found: list[Candidate | Pending] = []
        for f in parse_simple_index(body, content_type, page):
            if not f.filename.endswith(".whl") or not f.sha256:
                continue
            try:
                wheel_name, version, _build, tags = parse_wheel_filename(f.filename)
            except InvalidWheelFilename:
                continue
            if wheel_name != name:
                continue
            extra: dict[str, object] = {
                "url": f.url, "sha256": f.sha256, "yanked": f.yanked, "location": url,
            }  # fmt: skip
            platforms = tuple(sorted({t.platform for t in tags}))
            found.append(
                Pending(name, version, platforms, f.yanked, f.url, f.sha256, loader(f, extra))
            )
        cache[name] = found
        return found

    return source


def static(entries: Iterable[Mapping[str, object]]) -> Source:
    """Candidates described as data (the scenario corpus)."""
    by_name: dict[str, list[Candidate]] = {}
    for e in entries:
        name = canonicalize_name(str(e["name"]))
        provides = e.get("provides", {})
        if not isinstance(provides, Mapping):
            raise NativeLibError(f"{name}: 'provides' must map sonames to node lists")
        cand = Candidate(
            name=name,
            version=Version(str(e["version"])),
            definitions={str(k): frozenset(v) for k, v in provides.items()},
            dependencies=_dependencies(e.get("requires", [])),  # type: ignore[arg-type]
            platforms=tuple(e.get("platforms", ["any"])),  # type: ignore[arg-type]
            url=f"https://index.example/{name}-{e['version']}.whl",
            sha256=str(e.get("sha256", "0" * 64)),
            yanked=bool(e.get("yanked", False)),
            installed=bool(e.get("installed", False)),
        )
        by_name.setdefault(name, []).append(cand)
    return lambda name: list(by_name.get(name, ()))


def merge(*sources: Source) -> Source:
    """Candidates from every source (an installed one first, then the others)."""
    return lambda name: [c for s in sources for c in s(name)]
