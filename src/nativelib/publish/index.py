"""A static simple repository for a directory of distributions (``nativelib index``).

:func:`build_index` (= :func:`plan_index` then :func:`write_index`) reads the wheels
(``*.whl``) and sdists (``*.tar.gz``) in one directory and writes, by default into its
``simple/`` subdirectory:

- ``index.html`` (PEP 503) and ``index.json`` (PEP 691, API version 1.1): the root page
  listing every project by its normalized name (PEP 503);
- ``<project>/index.html`` and ``<project>/index.json``: one link per file, relative to
  the page (``../../<file>``), with ``#sha256=`` (HTML) or ``hashes`` (JSON),
  ``data-requires-python`` / ``requires-python`` from the file's metadata, the PEP 658
  attribute ``data-core-metadata="sha256=..."`` and its PEP 714 legacy spelling
  ``data-dist-info-metadata`` (JSON ``core-metadata``/``dist-info-metadata``), and
  ``data-yanked`` / ``yanked`` (PEP 592) for the files the ``yanked`` mapping names;
- beside each wheel in the directory, ``<wheel>.metadata``: its ``METADATA``, as PEP 658
  serves it (so that pip and uv resolve without downloading wheels).

A static server cannot negotiate content types: ``index.html`` is what a server gives
for a directory URL, and what pip, uv and ``nativelib resolve`` read over ``http://`` and
``file://``; ``index.json`` is there for a server configured to answer
``Accept: application/vnd.pypi.simple.v1+json`` with it (see docs/simple-index.md).

Rules:

- Every distribution is checked before anything is written. A wheel must pass
  :func:`~nativelib.wheelfile.validate_wheel` (file name, zip, RECORD against every
  member, METADATA whose name and version match the file name); an sdist must be a
  gzipped tar whose ``PKG-INFO`` names the file name's project and version. A file that
  fails is refused by name (:class:`IndexInputError`), and nothing is written.
- Other files are not distributions: they are skipped (legacy distribution formats such
  as ``.egg``, ``.zip`` or ``.tar.bz2`` with a warning, the rest at INFO), and so are
  dot files, directories and the ``.metadata`` files this module writes.
- Output is deterministic: sorted, no timestamps. Each file is written to a temporary
  sibling and renamed into place, and only when its content changes, so a re-run leaves
  unchanged files (and their mtimes) alone, and a killed run leaves no half-written
  file. Pages of projects that are gone, and ``.metadata`` files of wheels that are gone,
  are removed (only those this module wrote, as its state file records).
- ``<out>/.nativelib-index.json`` caches each file's sha256 and metadata, keyed by its
  name, size, mtime and inode, so that a re-index hashes only new or changed files.
- Nothing is written outside the output directory, but the ``.metadata`` files beside
  the wheels.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import logging
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from packaging.version import InvalidVersion, Version

from nativelib.errors import NativeLibError, WheelError
from nativelib.leftovers import owner_tag, remove_stale

if TYPE_CHECKING:
    import email.message

    from packaging.utils import NormalizedName

# The readers of wheels and sdists (zipfile, tarfile, the wheel validator with
# packaging.metadata) are imported when a file must be read: a re-index that finds every
# file in its state cache imports none of them.

__all__ = [
    "API_VERSION",
    "JSON_CONTENT_TYPE",
    "STATE_FILE",
    "Distribution",
    "IndexInputError",
    "IndexPlan",
    "IndexResult",
    "build_index",
    "plan_index",
    "read_yanked_file",
    "write_index",
]

#: The simple API version the pages declare (PEP 629 / PEP 691 / PEP 700).
API_VERSION = "1.1"
#: The cache of file facts, in the output directory.
STATE_FILE = ".nativelib-index.json"
_STATE_VERSION = 3
#: The state's names for files in the output directory ("out:<path>"; a name without
#: the prefix is a .metadata file beside the distributions).
_OUT = "out:"
#: The content type a server should give ``index.json`` (see docs/simple-index.md).
JSON_CONTENT_TYPE = "application/vnd.pypi.simple.v1+json"
#: Legacy distribution formats: skipped with a warning (everything else that is neither a
#: wheel nor a .tar.gz sdist is skipped at INFO).
_LEGACY_SUFFIXES = (".egg", ".zip", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".exe", ".msi", ".rpm")
#: Largest PKG-INFO / METADATA read.
_MAX_METADATA = 16 << 20
_CHUNK = 1 << 20
#: Processes that read distributions at most, and files each process reads at least.
_MAX_JOBS = 8
_PER_JOB = 32
_TEMP_PATTERN = r"\..+\.[0-9a-f-]+\.tmp"

_log = logging.getLogger(__name__)
_SEPARATORS = re.compile(r"[-_.]+")
_NORMALIZED = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def _canonical_name(name: str) -> NormalizedName:
    """A project name normalized as PEP 503 says (``packaging.utils.canonicalize_name``,
    without importing packaging.tags on a re-index that reads no file)."""
    return _SEPARATORS.sub("-", name).lower()  # type: ignore[return-value]


class IndexInputError(NativeLibError):
    """A distribution that cannot be indexed, or a yanked entry that names nothing:
    ``subject`` (a path or the entry) and ``reason``."""

    def __init__(self, subject: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"{subject}: {reason}", hint=hint)
        self.subject = subject
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.subject, self.reason), self.__dict__)


@dataclass(frozen=True)
class Distribution:
    """One indexed file and what the pages say about it."""

    filename: str
    project: NormalizedName
    version: Version
    size: int
    sha256: str
    requires_python: str | None
    #: The sha256 of ``<file>.metadata`` (PEP 658), or None for a file without one (sdists).
    metadata_sha256: str | None
    #: None: not yanked; else the reason ("" for none given).
    yanked: str | None = None

    @property
    def kind(self) -> str:
        return "wheel" if self.filename.endswith(".whl") else "sdist"


@dataclass(frozen=True)
class IndexPlan:
    """What :func:`write_index` will do: every output file whose content changes (with
    that content), the files it removes, and what it leaves as it is."""

    dist_dir: Path
    out_dir: Path
    distributions: tuple[Distribution, ...]
    writes: tuple[tuple[Path, bytes], ...]
    removes: tuple[Path, ...]
    unchanged: tuple[Path, ...]
    skipped: tuple[tuple[Path, str], ...]
    #: How many distributions were read and hashed (not found in the state cache).
    hashed: int
    #: The state file's content but the outputs' keys: (path, sha256) of each output.
    state: dict[str, object] = field(repr=False, default_factory=dict)

    @property
    def projects(self) -> dict[NormalizedName, tuple[Distribution, ...]]:
        found: dict[NormalizedName, list[Distribution]] = {}
        for d in self.distributions:
            found.setdefault(d.project, []).append(d)
        return {name: tuple(ds) for name, ds in sorted(found.items())}

    def describe(self) -> str:
        """The plan as text, one line per change (for ``--dry-run``)."""
        lines = [f"index of {self.dist_dir} in {self.out_dir}:"]
        lines += [f"  write  {p}" for p, _ in self.writes]
        lines += [f"  remove {p}" for p in self.removes]
        lines.append(
            f"  {len(self.distributions)} files in {len(self.projects)} projects; "
            f"{len(self.writes)} to write, {len(self.removes)} to remove, "
            f"{len(self.unchanged)} unchanged"
        )
        return "\n".join(lines)


@dataclass(frozen=True)
class IndexResult:
    """What :func:`write_index` did."""

    dist_dir: Path
    out_dir: Path
    distributions: tuple[Distribution, ...]
    written: tuple[Path, ...]
    removed: tuple[Path, ...]
    unchanged: tuple[Path, ...]
    skipped: tuple[tuple[Path, str], ...]
    hashed: int

    @property
    def projects(self) -> dict[NormalizedName, tuple[Distribution, ...]]:
        found: dict[NormalizedName, list[Distribution]] = {}
        for d in self.distributions:
            found.setdefault(d.project, []).append(d)
        return {name: tuple(ds) for name, ds in sorted(found.items())}

    @property
    def root(self) -> Path:
        """The root page (``index.html``): its directory's ``file://`` URL is the index
        URL."""
        return self.out_dir / "index.html"


# ------------------------------------------------------------------------------- yanking


def read_yanked_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """A yanked list: one entry a line, a file name (``x-1.0-py3-none-any.whl``) or a
    release (``x==1.0``: every file of it), then optionally the reason after white
    space; blank lines and ``#`` comments are ignored."""
    where = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise IndexInputError(where, f"cannot read the yanked list: {e}") from e
    found: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry, _, reason = line.partition(" ")
        found[entry] = reason.strip()
    return found


def _yanks(
    distributions: list[Distribution], yanked: Mapping[str, str], where: str
) -> list[Distribution]:
    by_file = {d.filename: d for d in distributions}
    reasons: dict[str, str] = {}
    for entry, reason in yanked.items():
        if "==" in entry:
            name, _, version = entry.partition("==")
            try:
                wanted = (_canonical_name(name.strip()), Version(version.strip()))
            except InvalidVersion as e:
                raise IndexInputError(entry, f"yanked entry: {e}") from e
            files = [d.filename for d in distributions if (d.project, d.version) == wanted]
        else:
            files = [entry] if entry in by_file else []
        if not files:
            raise IndexInputError(
                entry,
                f"yanked entry matches no distribution in {where}",
                hint="name a file of the directory, or a release as NAME==VERSION",
            )
        for f in files:
            reasons[f] = str(reason)
    return [
        replace(d, yanked=reasons[d.filename]) if d.filename in reasons else d
        for d in distributions
    ]


# ------------------------------------------------------------------------- reading files


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def _headers(data: bytes) -> email.message.Message:
    import email.parser  # noqa: PLC0415

    return email.parser.BytesHeaderParser().parsebytes(data)


def _wheel_metadata(path: Path) -> bytes:
    """The METADATA of a wheel that :func:`~nativelib.wheelfile.validate_wheel` passed."""
    from nativelib.safezip import SafeZipFile  # noqa: PLC0415

    with SafeZipFile(path) as zf:
        dist_info = next(
            n.split("/", 1)[0]
            for n in zf.namelist()
            if n.split("/", 1)[0].endswith(".dist-info") and "/" in n
        )
        return zf.read(f"{dist_info}/METADATA")


def _read_wheel(path: Path) -> tuple[NormalizedName, Version, bytes]:
    import zipfile  # noqa: PLC0415

    from packaging.utils import InvalidWheelFilename, parse_wheel_filename  # noqa: PLC0415

    from nativelib.safezip import ZipMemberError  # noqa: PLC0415
    from nativelib.wheelfile import validate_wheel  # noqa: PLC0415

    try:
        name, version, _build, _tags = parse_wheel_filename(path.name)
    except InvalidWheelFilename as e:
        raise IndexInputError(str(path), f"not a wheel file name: {e}") from e
    try:
        validate_wheel(path)
        metadata = _wheel_metadata(path)
    except WheelError as e:
        raise IndexInputError(
            str(path), e.reason, hint="rebuild the wheel, or move it out of the directory"
        ) from e
    except (OSError, zipfile.BadZipFile, ZipMemberError) as e:
        raise IndexInputError(str(path), f"cannot read the wheel: {e}") from e
    return name, version, metadata


def _read_sdist(path: Path) -> tuple[NormalizedName, Version, bytes]:
    import tarfile  # noqa: PLC0415

    from packaging.utils import InvalidSdistFilename, parse_sdist_filename  # noqa: PLC0415

    where = str(path)
    try:
        name, version = parse_sdist_filename(path.name)
    except InvalidSdistFilename as e:
        raise IndexInputError(where, f"not an sdist file name: {e}") from e
    pkg_info: bytes | None = None
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                parts = member.name.split("/")
                if len(parts) == 2 and parts[1] == "PKG-INFO" and member.isfile():
                    if member.size > _MAX_METADATA:
                        raise IndexInputError(where, f"{member.name} is too large")
                    f = tar.extractfile(member)
                    if f is not None:
                        pkg_info = f.read()
                    break
    except (OSError, tarfile.TarError, EOFError) as e:
        raise IndexInputError(where, f"not a gzipped tar archive: {e}") from e
    if pkg_info is None:
        raise IndexInputError(where, "no <name>-<version>/PKG-INFO in the sdist")
    meta = _headers(pkg_info)
    try:
        got = (_canonical_name(str(meta.get("Name", ""))), Version(str(meta.get("Version"))))
    except InvalidVersion:
        got = (_canonical_name(str(meta.get("Name", ""))), None)  # type: ignore[assignment]
    if got != (name, version):
        raise IndexInputError(
            where,
            f"PKG-INFO describes {meta.get('Name')} {meta.get('Version')}, not the file "
            f"name's {name} {version}",
        )
    return name, version, pkg_info


def _describe(path: Path, st: os.stat_result) -> tuple[Distribution, bytes | None]:
    """A distribution read from disk, and its METADATA (wheels) for the .metadata file."""
    if path.name.endswith(".whl"):
        name, version, metadata = _read_wheel(path)
        meta_sha: str | None = hashlib.sha256(metadata).hexdigest()
        served: bytes | None = metadata
    else:
        name, version, metadata = _read_sdist(path)
        meta_sha = served = None
    requires = _headers(metadata).get("Requires-Python")
    dist = Distribution(
        filename=path.name,
        project=name,
        version=version,
        size=st.st_size,
        sha256=_sha256(path),
        requires_python=str(requires).strip() if requires else None,
        metadata_sha256=meta_sha,
    )
    return dist, served


def _describe_all(
    todo: list[tuple[Path, os.stat_result]], jobs: int | None
) -> list[tuple[Distribution, bytes | None]]:
    """:func:`_describe` of each file, in order: in this process for a few files,
    ``jobs=1`` or a caller with other threads running; else on a pool of forked processes
    (reading a wheel is Python-bound: the RECORD check and the metadata parsing hold the
    GIL). The first file in order that fails raises, whichever process read it."""
    import threading  # noqa: PLC0415

    workers = jobs if jobs is not None else len(os.sched_getaffinity(0))
    workers = max(1, min(workers, _MAX_JOBS, len(todo) // _PER_JOB))
    # fork is the start method that needs nothing of the caller's __main__ (spawn and
    # forkserver run it again), and it is safe only while this process has one thread:
    # the command line; an API caller with threads reads in its own process.
    if workers == 1 or threading.active_count() > 1:
        return [_describe(path, st) for path, st in todo]
    import multiprocessing  # noqa: PLC0415
    from concurrent.futures import ProcessPoolExecutor  # noqa: PLC0415
    from concurrent.futures.process import BrokenProcessPool  # noqa: PLC0415

    chunk = max(1, len(todo) // (workers * 4))
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(_describe_star, todo, chunksize=chunk))
    except BrokenProcessPool as e:  # a worker killed (out of memory): read them here
        _log.warning("the processes reading the distributions died (%s); reading them here", e)
        return [_describe(path, st) for path, st in todo]


def _describe_star(item: tuple[Path, os.stat_result]) -> tuple[Distribution, bytes | None]:
    return _describe(*item)


def _kind(name: str) -> str | None:
    """'wheel', 'sdist', or None for a file that is not a distribution we index."""
    if name.endswith(".whl"):
        return "wheel"
    if name.endswith(".tar.gz"):
        return "sdist"
    return None


# ---------------------------------------------------------------------------- the state


def _key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _load_state(out_dir: Path) -> dict[str, object]:
    try:
        doc = json.loads((out_dir / STATE_FILE).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("version") != _STATE_VERSION:
        return {}
    return doc


def _cached(entry: object, filename: str, key: list[int]) -> Distribution | None:
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    project = entry.get("project")
    # (A project name becomes a directory name: a state file that says otherwise is not
    # trusted, and the file is read again.)
    if not isinstance(project, str) or not _NORMALIZED.fullmatch(project):
        return None
    try:
        return Distribution(
            filename=filename,
            project=project,  # type: ignore[arg-type]
            version=Version(str(entry["version"])),
            size=key[0],
            sha256=str(entry["sha256"]),
            requires_python=entry.get("requires_python"),
            metadata_sha256=entry.get("metadata_sha256"),
        )
    except (KeyError, TypeError, ValueError, InvalidVersion):
        return None


# ------------------------------------------------------------------------------- pages


def _files_url(dist_dir: Path, out_dir: Path) -> str:
    """The URL of ``dist_dir`` relative to a project page (``out_dir/<project>/``)."""
    rel = os.path.relpath(dist_dir, out_dir / "project").replace(os.sep, "/")
    return "" if rel == "." else quote(rel, safe="/") + "/"


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


def _html_page(title: str, links: Iterable[str]) -> bytes:
    body = "".join(f"    {link}<br>\n" for link in links)
    text = (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        f"    <title>{html.escape(title)}</title>\n  </head>\n  <body>\n"
        f"    <h1>{html.escape(title)}</h1>\n{body}  </body>\n</html>\n"
    )
    return text.encode("utf-8")


def _json(doc: object) -> bytes:
    # Compact, as PyPI serves it (and json's C encoder only writes without an indent).
    return (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")


def _project_pages(project: str, dists: list[Distribution], files_url: str) -> tuple[bytes, bytes]:
    links = []
    files = []
    for d in dists:
        href = files_url + quote(d.filename)
        attrs = [f'href="{_attr(href)}#sha256={d.sha256}"']
        entry: dict[str, object] = {
            "filename": d.filename,
            "url": href,
            "hashes": {"sha256": d.sha256},
            "size": d.size,
            "yanked": False if d.yanked is None else (d.yanked or True),
        }
        if d.requires_python:
            attrs.append(f'data-requires-python="{_attr(d.requires_python)}"')
            entry["requires-python"] = d.requires_python
        if d.metadata_sha256:
            value = f"sha256={d.metadata_sha256}"
            attrs += [f'data-core-metadata="{value}"', f'data-dist-info-metadata="{value}"']
            entry["core-metadata"] = entry["dist-info-metadata"] = {"sha256": d.metadata_sha256}
        else:
            entry["core-metadata"] = entry["dist-info-metadata"] = False
        if d.yanked is not None:
            attrs.append(f'data-yanked="{_attr(d.yanked)}"')
        links.append(f"<a {' '.join(attrs)}>{html.escape(d.filename)}</a>")
        files.append(entry)
    versions = sorted({d.version for d in dists})
    doc = {
        "meta": {"api-version": API_VERSION},
        "name": project,
        "versions": [str(v) for v in versions],
        "files": files,
    }
    return _html_page(f"Links for {project}", links), _json(doc)


def _root_pages(projects: Iterable[str]) -> tuple[bytes, bytes]:
    names = sorted(projects)
    links = [f'<a href="{quote(n)}/">{html.escape(n)}</a>' for n in names]
    doc = {"meta": {"api-version": API_VERSION}, "projects": [{"name": n} for n in names]}
    return _html_page("Simple index", links), _json(doc)


# ---------------------------------------------------------------------------- planning


def _same_content(path: Path, data: bytes) -> bool:
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size != len(data):
            return False
        with open(path, "rb") as f:
            return f.read(len(data) + 1) == data
    except OSError:
        return False


def _scan(
    dist_dir: Path,
) -> tuple[list[tuple[Path, os.stat_result]], list[tuple[Path, str]]]:
    found: list[tuple[Path, os.stat_result]] = []
    skipped: list[tuple[Path, str]] = []
    try:
        with os.scandir(dist_dir) as it:
            entries = sorted(it, key=lambda x: x.name)
    except OSError as e:
        raise IndexInputError(str(dist_dir), f"cannot list the directory: {e.strerror or e}") from e
    for entry in entries:
        path = Path(entry.path)
        if entry.name.startswith(".") or entry.name.endswith(".whl.metadata"):
            continue
        try:
            st = entry.stat(follow_symlinks=True)
        except OSError as err:
            if _kind(entry.name):
                raise IndexInputError(str(path), f"cannot stat: {err.strerror or err}") from err
            continue
        if stat.S_ISDIR(st.st_mode):
            continue
        kind = _kind(entry.name)
        if kind is None:
            legacy = entry.name.endswith(_LEGACY_SUFFIXES)
            reason = (
                "a legacy distribution format; only wheels and .tar.gz sdists are indexed"
                if legacy
                else "not a distribution (a wheel or a .tar.gz sdist)"
            )
            (_log.warning if legacy else _log.info)("skipped %s: %s", path, reason)
            skipped.append((path, reason))
            continue
        if not stat.S_ISREG(st.st_mode):
            raise IndexInputError(str(path), "not a regular file")
        found.append((path, st))
    return found, skipped


def plan_index(
    dist_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    yanked: Mapping[str, str] | None = None,
    jobs: int | None = None,
) -> IndexPlan:
    """Read and check every distribution in ``dist_dir`` and work out the pages of its
    index in ``out_dir`` (default ``dist_dir/simple``). Writes nothing; raises
    :class:`IndexInputError` naming the first file that cannot be indexed.

    ``yanked`` maps a file name, or a release ``NAME==VERSION`` (all its files), to the
    reason it is yanked ("" for none); an entry that matches nothing is an error.
    ``jobs``: processes that read the files not in the state cache (default: one per
    CPU, at most 8, each reading at least 32 files, forked; 1, or a caller with other
    threads running: this process only).
    """
    dist_dir = Path(dist_dir).absolute()
    out = Path(out_dir).absolute() if out_dir is not None else dist_dir / "simple"
    if not dist_dir.is_dir():
        raise IndexInputError(
            str(dist_dir), "not a directory", hint="DIR is the directory of wheels and sdists"
        )
    files, skipped = _scan(dist_dir)
    state = _load_state(out)
    cache = state.get("files", {})
    cache = cache if isinstance(cache, dict) else {}
    distributions: list[Distribution] = []
    served: dict[str, bytes] = {}
    new_cache: dict[str, object] = {}
    cached = {path.name: _cached(cache.get(path.name), path.name, _key(st)) for path, st in files}
    todo = [(path, st) for path, st in files if cached[path.name] is None]
    read = dict(zip([p.name for p, _ in todo], _describe_all(todo, jobs), strict=True))
    hashed = len(todo)
    for path, st in files:
        key = _key(st)
        dist = cached[path.name]
        if dist is None:
            dist, metadata = read[path.name]
            if metadata is not None:
                served[path.name] = metadata
        distributions.append(dist)
        new_cache[path.name] = {
            "key": key,
            "project": dist.project,
            "version": str(dist.version),
            "sha256": dist.sha256,
            "requires_python": dist.requires_python,
            "metadata_sha256": dist.metadata_sha256,
        }
    distributions = _yanks(distributions, yanked or {}, str(dist_dir))
    distributions.sort(key=lambda d: (d.project, d.version, d.filename))

    # Every output: (where, the state's name for it, content or None, its sha256). None:
    # a cached wheel's .metadata, whose content is read only if it must be written.
    wanted: list[tuple[Path, str, bytes | None, str]] = []
    for d in distributions:
        if d.metadata_sha256 is not None:
            name = f"{d.filename}.metadata"
            wanted.append((dist_dir / name, name, served.get(d.filename), d.metadata_sha256))
    by_project: dict[str, list[Distribution]] = {}
    for d in distributions:
        by_project.setdefault(d.project, []).append(d)
    files_url = _files_url(dist_dir, out)
    pages = [(f"{p}/", _project_pages(p, ds, files_url)) for p, ds in sorted(by_project.items())]
    pages.append(("", _root_pages(by_project)))
    for prefix, (page, doc) in pages:
        for leaf, content in (("index.html", page), ("index.json", doc)):
            rel = f"{_OUT}{prefix}{leaf}"
            wanted.append((out / prefix / leaf, rel, content, hashlib.sha256(content).hexdigest()))

    old = state.get("outputs")
    old_outputs: dict[str, object] = old if isinstance(old, dict) else {}
    writes: list[tuple[Path, bytes]] = []
    unchanged: list[Path] = []
    for path, rel, data, sha in wanted:
        if _recorded(path, old_outputs.get(rel), sha):
            unchanged.append(path)
            continue
        if data is None:  # a cached wheel's .metadata that is not as this module left it
            ok = False
            with contextlib.suppress(OSError):
                ok = os.path.isfile(path) and _sha256(path) == sha
            if ok:
                unchanged.append(path)
                continue
            wheel = dist_dir / path.name[: -len(".metadata")]
            data = _wheel_metadata(wheel)
            if hashlib.sha256(data).hexdigest() != sha:  # changed under the same key
                raise IndexInputError(str(wheel), "changed while being indexed", hint="run again")
        if _same_content(path, data):
            unchanged.append(path)
        else:
            writes.append((path, data))

    # What an earlier run wrote and this one does not: pages of projects that are gone,
    # .metadata files of wheels that are gone.
    keep = {rel for _, rel, _, _ in wanted}
    removes = sorted(
        path
        for rel in old_outputs
        if rel not in keep
        for path in (out / rel[len(_OUT) :] if rel.startswith(_OUT) else dist_dir / rel,)
        if "/" not in rel or rel.startswith(_OUT)
        if path.is_file()
    )
    return IndexPlan(
        dist_dir=dist_dir,
        out_dir=out,
        distributions=tuple(distributions),
        writes=tuple(writes),
        removes=tuple(removes),
        unchanged=tuple(unchanged),
        skipped=tuple(skipped),
        hashed=hashed,
        state={
            "version": _STATE_VERSION,
            "files": new_cache,
            "outputs": {rel: (path, sha) for path, rel, _, sha in wanted},
        },
    )


def _recorded(path: Path, entry: object, sha: str) -> bool:
    """Whether ``path`` is the file an earlier run wrote with this content: same size,
    mtime and inode as the state recorded, and the sha256 wanted now."""
    if not isinstance(entry, list) or len(entry) != 4 or entry[3] != sha:
        return False
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and entry[:3] == _key(st)


# ----------------------------------------------------------------------------- writing


def _write_atomic(path: Path, data: bytes, ready: set[Path]) -> None:
    """``data`` at ``path``, through a temporary sibling renamed into place. A directory
    is made, or cleaned of the temporary files of killed runs, once (``ready``)."""
    parent = path.parent
    if parent not in ready:
        try:
            parent.mkdir(parents=True)
        except FileExistsError:
            remove_stale(parent, _TEMP_PATTERN)
        ready.add(parent)
    final = os.fspath(path)
    tmp = os.path.join(os.fspath(parent), f".{path.name}.{owner_tag()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_index(plan: IndexPlan) -> IndexResult:
    """Apply a plan: the ``.metadata`` files first, then the project pages, the root
    pages, the removals and the state file last, each file written atomically."""
    written: list[Path] = []
    ready: set[Path] = set()
    try:
        for path, data in plan.writes:
            _write_atomic(path, data, ready)
            written.append(path)
        for path in plan.removes:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # a project directory left empty
        outputs = plan.state.get("outputs", {})
        assert isinstance(outputs, dict)
        recorded: dict[str, list[object]] = {}
        for rel, (path, sha) in outputs.items():
            with contextlib.suppress(OSError):
                recorded[rel] = [*_key(os.lstat(path)), sha]
        _write_atomic(plan.out_dir / STATE_FILE, _json({**plan.state, "outputs": recorded}), ready)
    except OSError as e:
        raise IndexInputError(
            str(plan.out_dir), f"cannot write the index: {e}", hint="check the permissions"
        ) from e
    return IndexResult(
        dist_dir=plan.dist_dir,
        out_dir=plan.out_dir,
        distributions=plan.distributions,
        written=tuple(written),
        removed=plan.removes,
        unchanged=plan.unchanged,
        skipped=plan.skipped,
        hashed=plan.hashed,
    )


def build_index(
    dist_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    yanked: Mapping[str, str] | None = None,
    jobs: int | None = None,
) -> IndexResult:
    """Index the distributions of ``dist_dir`` into ``out_dir`` (default
    ``dist_dir/simple``): :func:`plan_index`, then :func:`write_index`."""
    return write_index(plan_index(dist_dir, out_dir, yanked=yanked, jobs=jobs))
