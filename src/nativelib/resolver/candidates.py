"""Where runtime candidates come from: installed prefixes, a find-links directory, a
simple-API index, or a static list (the scenario corpus).

Each source is one small callable: ``source(name) -> list[Candidate]``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

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

from nativelib.errors import HttpError, NativeLibError, SourceError, UsageError
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

if TYPE_CHECKING:
    from nativelib.net.simple import IndexFile

__all__ = [
    "IndexSource",
    "Source",
    "candidate_from_manifest",
    "candidate_from_metadata",
    "candidate_source",
    "candidates_from_wheel",
    "find_links",
    "index",
    "installed",
    "merge",
    "prefetch",
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
    import zipfile  # noqa: PLC0415 (only for wheels on disk)

    from nativelib.safezip import SafeZipFile  # noqa: PLC0415

    member = f"{PREFIX_DIRNAME}/{MANIFEST_DIR}/{name}.json"
    try:
        with SafeZipFile(path) as zf:
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


class IndexSource:
    """A simple-API index (PEP 691 JSON, else PEP 503 HTML) as a candidate source.

    Project pages are fetched on a small thread pool: :meth:`prefetch` starts the pages of
    names known up front, and as each page arrives the candidate most likely to be picked
    (the newest, or the oldest with ``lowest``) starts loading too: its PEP 658 metadata
    when the index offers it, else the wheel (sha256-pinned, cached). A loaded
    candidate's dependencies have their pages started in turn. Against a real index,
    whose round trips dominate, that turns a chain of requests into a few parallel ones.
    """

    WORKERS = 8

    def __init__(
        self,
        url: str,
        *,
        get: Callable[[str], tuple[bytes, str]] | None = None,
        fetch_wheel: Callable[[str, str], Path] | None = None,
        lowest: bool = False,
    ) -> None:
        from nativelib.net.download import fetch, get_document  # noqa: PLC0415

        self.url = url
        self.lowest = lowest
        self._get = get or get_document
        self._fetch: Callable[[str, str], Path] = fetch_wheel or fetch
        if urlsplit(url).scheme == "file":
            # An index on disk (pip reads file:// too). Only an index that is itself
            # file:// may link to local files: a remote one never makes us read them.
            from nativelib.net.local import get_file_document, verified_file  # noqa: PLC0415

            http_get, http_fetch = self._get, self._fetch
            self._get = lambda u: (
                get_file_document(u) if urlsplit(u).scheme == "file" else http_get(u)
            )
            self._fetch = lambda u, sha: (
                verified_file(u, sha) if urlsplit(u).scheme == "file" else http_fetch(u, sha)
            )
        self._pages: dict[str, Future[list[Pending]]] = {}
        self._lock = threading.Lock()
        # Threads start only when work is submitted.
        self._pool = ThreadPoolExecutor(self.WORKERS, thread_name_prefix="nativelib-index")

    def prefetch(self, names: Iterable[str]) -> None:
        """Start fetching these projects' pages (and their likely candidates)."""
        for name in names:
            self._page(canonicalize_name(name))

    def __call__(self, name: NormalizedName) -> list[Pending]:
        return self._page(name).result()

    def _page(self, name: NormalizedName) -> Future[list[Pending]]:
        with self._lock:
            future = self._pages.get(name)
            if future is None:
                future = self._pages[name] = self._pool.submit(self._read_page, name)
            return future

    def _read_page(self, name: NormalizedName) -> list[Pending]:
        from nativelib.net.simple import parse_simple_index, selection_problem  # noqa: PLC0415

        page = urljoin(self.url.rstrip("/") + "/", f"{name}/")
        try:
            body, content_type = self._get(page)
        except HttpError as e:
            if e.status == 404:  # the index has no project of that name
                return []
            raise
        found: list[Pending] = []
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
                "url": f.url, "sha256": f.sha256, "yanked": f.yanked, "location": self.url,
            }  # fmt: skip
            platforms = tuple(sorted({t.platform for t in tags}))
            found.append(
                Pending(name, version, platforms, f.yanked, f.url, f.sha256, self._loader(f, extra))
            )
        # Without a requirement yet: what the policy takes for any specifier.
        likely = [p for p in found if selection_problem(p.version, p.yanked, None) is None]
        if likely:
            pick = (min if self.lowest else max)(likely, key=lambda p: p.version)
            pick.start(self._pool.submit)
        return found

    def _loader(self, f: IndexFile, extra: dict[str, object]) -> Callable[[], Candidate]:
        def load() -> Candidate:
            cand = self._load(f, extra)
            self.prefetch(name for name, _spec in cand.dependencies)
            return cand

        return load

    def _load(self, f: IndexFile, extra: dict[str, object]) -> Candidate:
        if f.metadata is not None:  # PEP 658: METADATA without the wheel
            data, _type = self._get(f"{f.url}.metadata")
            if f.metadata and hashlib.sha256(data).hexdigest() != f.metadata:
                raise SourceError(f"{f.url}.metadata", "sha256 mismatch with the index")
            cand = candidate_from_metadata(data, f.filename, **extra)
            if cand is not None:
                return cand
        assert f.sha256 is not None
        return candidates_from_wheel(self._fetch(f.url, f.sha256), **extra)


def index(
    url: str,
    *,
    get: Callable[[str], tuple[bytes, str]] | None = None,
    fetch_wheel: Callable[[str, str], Path] | None = None,
    lowest: bool = False,
) -> IndexSource:
    """A simple-API index as a candidate source (see :class:`IndexSource`)."""
    return IndexSource(url, get=get, fetch_wheel=fetch_wheel, lowest=lowest)


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


def prefetch(sources: Iterable[Source], names: Iterable[str]) -> None:
    """Let the sources that fetch over the network start on these names."""
    wanted = list(names)
    for s in sources:
        if isinstance(s, IndexSource):
            s.prefetch(wanted)


def _index_url(url: str) -> str:
    """An ``--index-url`` as a URL: a local directory (as pip takes one) becomes its
    ``file://`` URL; a ``file://`` index must be a directory that exists."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        return url
    if parts.scheme in ("", "file"):
        from nativelib.net.local import file_url_path  # noqa: PLC0415

        try:
            path = file_url_path(url) if parts.scheme else Path(url)
        except SourceError as e:
            raise UsageError(f"--index-url {url!r}: {e.reason}") from e
        if not path.is_dir():
            raise UsageError(
                f"--index-url {url!r}: no such directory: {str(path)!r}",
                hint="a file:// index is a directory of project pages "
                "(nativelib index DIR writes DIR/simple)",
            )
        return path.resolve().as_uri() + "/"
    raise UsageError(
        f"--index-url {url!r}: the scheme must be http, https or file, not {parts.scheme!r}"
    )


def candidate_source(
    find_links_dirs: Sequence[str] | None,
    index_urls: Sequence[str] | None,
    *,
    lowest: bool = False,
    prefetch_names: Iterable[str] = (),
) -> Source:
    """Candidates from the installed runtimes, ``--find-links`` and ``--index-url``, as
    ``resolve``, ``requires`` and ``repair`` take them; the indexes start fetching the
    ``prefetch_names`` right away."""
    sources = [installed()]
    for directory in find_links_dirs or ():
        if not Path(directory).is_dir():
            raise UsageError(
                f"--find-links {directory!r}: not a directory",
                hint="--find-links names a directory of wheels (as pip's does)",
            )
        sources.append(find_links(Path(directory)))
    for url in index_urls or ():
        sources.append(index(_index_url(url), lowest=lowest))
    prefetch(sources, prefetch_names)
    return merge(*sources)
