"""From a recipe's source to concrete upstream files: URL, sha256, name and version.

Each kind of index is parsed by a small pure function (bytes in, records out), so it is
tested on real documents without a network; :func:`resolve` fetches the index document
and applies them:

- ``deb``: the suite's ``Packages.xz`` (``dists/<suite>/main/binary-<arch>/``): stanzas
  with Package, Version, Architecture, Filename, SHA256, Size.
- ``conda``: ``<channel>/<subdir>/repodata.json``: both ``packages`` (.tar.bz2) and
  ``packages.conda``; ``.conda`` is preferred; the highest build number wins.
- ``wheel``: the simple API of an index (PEP 691 JSON, else PEP 503 HTML), the wheel
  whose tag fits the target platform; the sha256 comes from the index.
- ``rpm`` and any package given by URL: the recipe's own URL and sha256.
"""

from __future__ import annotations

import fnmatch
import json
import lzma
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from packaging.tags import Tag, parse_tag
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from nativelib.abi import legacy_aliases
from nativelib.catalog import PackageRef, Source
from nativelib.errors import SourceError

__all__ = [
    "ResolvedPackage",
    "parse_debian_packages",
    "parse_repodata",
    "parse_simple_index",
    "pick_conda",
    "pick_debian",
    "pick_wheel",
    "resolve",
    "upstream_version",
]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ResolvedPackage:
    """One upstream file to download: where it is, its sha256, what it is."""

    kind: str
    name: str
    version: str
    url: str
    sha256: str
    filename: str
    size: int | None = None


def _filename(url: str) -> str:
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    if not name:
        raise SourceError(url, "the URL does not end in a file name")
    return name


# --------------------------------------------------------------------------- Debian


@dataclass(frozen=True)
class DebianEntry:
    package: str
    version: str
    architecture: str
    filename: str
    sha256: str
    size: int | None


def parse_debian_packages(text: str, where: str) -> list[DebianEntry]:
    """The stanzas of a Debian ``Packages`` index (RFC 822 style, blank-line separated)."""
    entries: list[DebianEntry] = []
    for number, stanza in enumerate(re.split(r"\n\s*\n", text), 1):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if not line.strip():
                continue
            if line[0] in " \t":
                if key is not None:
                    fields[key] += "\n" + line.strip()
                continue
            key, sep, value = line.partition(":")
            if not sep:
                raise SourceError(where, f"stanza {number}: malformed line {line!r}")
            key = key.strip()
            fields[key] = value.strip()
        if not fields:
            continue
        missing = [k for k in ("Package", "Version", "Filename", "SHA256") if k not in fields]
        if missing:
            raise SourceError(
                where,
                f"stanza {number} ({fields.get('Package', '?')}): missing {', '.join(missing)}",
            )
        sha = fields["SHA256"].lower()
        if not _SHA256.match(sha):
            raise SourceError(where, f"stanza {number} ({fields['Package']}): bad SHA256 {sha!r}")
        size = fields.get("Size")
        entries.append(
            DebianEntry(
                package=fields["Package"],
                version=fields["Version"],
                architecture=fields.get("Architecture", ""),
                filename=fields["Filename"],
                sha256=sha,
                size=int(size) if size and size.isdigit() else None,
            )
        )
    return entries


def _debian_version_key(version: str) -> tuple[Any, ...]:
    """A sort key following dpkg's version ordering (epoch, upstream, revision)."""

    def part(text: str) -> tuple[Any, ...]:
        out: list[Any] = []
        for non_digit, digit in re.findall(r"(\D*)(\d*)", text):
            # '~' sorts before everything, even the end of the string; letters before others.
            chars = [(0 if c == "~" else 2 if c.isalpha() else 3, c) for c in non_digit]
            out.append((*chars, (1, "")))
            out.append(int(digit) if digit else 0)
        return tuple(out)

    epoch, _, rest = version.rpartition(":") if ":" in version else ("0", "", version)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")
    return (int(epoch or 0), part(upstream), part(revision))


def pick_debian(
    entries: Iterable[DebianEntry], ref: PackageRef, arch: str, mirror: str, where: str
) -> ResolvedPackage:
    """The entry for ``ref`` (its version, or the newest), as a file to download."""
    matches = [
        e
        for e in entries
        if e.package == ref.name
        and e.architecture in (arch, "all")
        and (ref.version is None or e.version == ref.version)
    ]
    if not matches:
        wanted = ref.describe()
        raise SourceError(where, f"no package {wanted!r} for {arch} in the index")
    best = max(matches, key=lambda e: _debian_version_key(e.version))
    url = f"{mirror.rstrip('/')}/{best.filename}"
    return ResolvedPackage(
        "deb", best.package, best.version, url, best.sha256, _filename(url), best.size
    )


# --------------------------------------------------------------------------- conda


@dataclass(frozen=True)
class CondaEntry:
    filename: str
    name: str
    version: str
    build: str
    build_number: int
    sha256: str
    size: int | None
    subdir: str


def parse_repodata(data: bytes, where: str) -> list[CondaEntry]:
    """Every package record of a conda ``repodata.json`` (``packages`` and ``packages.conda``)."""
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise SourceError(where, f"invalid repodata.json: {e}") from e
    if not isinstance(doc, dict):
        raise SourceError(where, "invalid repodata.json: not an object")
    subdir = str(doc.get("info", {}).get("subdir", "")) if isinstance(doc.get("info"), dict) else ""
    entries: list[CondaEntry] = []
    for section in ("packages", "packages.conda"):
        records = doc.get(section, {})
        if not isinstance(records, dict):
            raise SourceError(where, f"invalid repodata.json: {section!r} is not an object")
        for filename, rec in records.items():
            if not isinstance(rec, dict):
                raise SourceError(where, f"{filename}: record is not an object")
            try:
                sha = str(rec["sha256"]).lower()
                entry = CondaEntry(
                    filename=filename,
                    name=str(rec["name"]),
                    version=str(rec["version"]),
                    build=str(rec.get("build", "")),
                    build_number=int(rec.get("build_number", 0)),
                    sha256=sha,
                    size=int(rec["size"]) if "size" in rec else None,
                    subdir=str(rec.get("subdir", subdir)),
                )
            except (KeyError, TypeError, ValueError) as e:
                raise SourceError(where, f"{filename}: record lacks or mangles {e}") from e
            if not _SHA256.match(sha):
                raise SourceError(where, f"{filename}: bad sha256 {sha!r}")
            entries.append(entry)
    return entries


def pick_conda(
    entries: Iterable[CondaEntry], ref: PackageRef, channel: str, subdir: str, where: str
) -> ResolvedPackage:
    """The record for ``ref``: its version and build pattern, the highest build number,
    ``.conda`` before ``.tar.bz2``."""
    matches = [
        e
        for e in entries
        if e.name == ref.name
        and (ref.version is None or e.version == ref.version)
        and (ref.build is None or fnmatch.fnmatchcase(e.build, ref.build))
    ]
    if not matches:
        raise SourceError(where, f"no conda package {ref.describe()!r} in {channel}/{subdir}")
    best = max(matches, key=lambda e: (e.build_number, e.filename.endswith(".conda"), e.build))
    url = f"{channel.rstrip('/')}/{subdir}/{best.filename}"
    return ResolvedPackage(
        "conda", best.name, best.version, url, best.sha256, best.filename, best.size
    )


# --------------------------------------------------------------------------- PyPI


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str
    sha256: str | None
    yanked: bool
    #: PEP 658: None when the index offers no ``.metadata`` file; else its sha256 ("" when
    #: the index gives none).
    metadata: str | None = None


def _metadata_attr(value: object) -> str | None:
    """A PEP 658/714 metadata attribute (JSON value or HTML attribute) as a sha256 or ""."""
    if value is None or value is False or value == "false":
        return None
    if isinstance(value, dict):
        return str(value.get("sha256", ""))
    if isinstance(value, str) and value.startswith("sha256="):
        return value[len("sha256=") :]
    return ""


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append(dict(attrs))


def parse_simple_index(body: bytes, content_type: str, base_url: str) -> list[IndexFile]:
    """The files of a simple-API project page: PEP 691 JSON or PEP 503 HTML."""
    if content_type.split(";", maxsplit=1)[0].strip() == "application/vnd.pypi.simple.v1+json":
        try:
            doc = json.loads(body)
            return [
                IndexFile(
                    f["filename"],
                    urljoin(base_url, f["url"]),
                    f.get("hashes", {}).get("sha256"),
                    bool(f.get("yanked", False)),
                    _metadata_attr(f.get("core-metadata", f.get("dist-info-metadata"))),
                )
                for f in doc["files"]
            ]
        except (ValueError, KeyError, TypeError) as e:
            raise SourceError(base_url, f"invalid PEP 691 project page: {e}") from e
    parser = _Anchors()
    parser.feed(body.decode("utf-8", "replace"))
    files = []
    for attrs in parser.links:
        href = attrs.get("href")
        if not href:
            continue
        url, _, fragment = urljoin(base_url, href).partition("#")
        sha = fragment[len("sha256=") :] if fragment.startswith("sha256=") else None
        meta = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        if meta is None and ("data-core-metadata" in attrs or "data-dist-info-metadata" in attrs):
            meta = "true"  # a bare attribute
        files.append(
            IndexFile(_filename(url), url, sha, "data-yanked" in attrs, _metadata_attr(meta))
        )
    return files


def pick_wheel(
    files: Iterable[IndexFile], ref: PackageRef, supported: Iterable[Tag], where: str
) -> ResolvedPackage:
    """The wheel of ``ref`` (project, version) whose tags fit ``supported`` best."""
    order = {tag: i for i, tag in enumerate(supported)}
    if ref.name is None or ref.version is None:
        raise SourceError(where, "a wheel package needs a project name and a version")
    want_name, want_version = canonicalize_name(ref.name), Version(ref.version)
    best: tuple[int, IndexFile] | None = None
    for f in files:
        if not f.filename.endswith(".whl") or f.yanked:
            continue
        try:
            name, version, _build, tags = parse_wheel_filename(f.filename)
        except ValueError:
            continue
        if name != want_name or version != want_version:
            continue
        rank = min((order[t] for t in tags if t in order), default=None)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, f)
    if best is None:
        raise SourceError(where, f"no wheel of {ref.describe()!r} for this platform in the index")
    chosen = best[1]
    if chosen.sha256 is None or not _SHA256.match(chosen.sha256):
        raise SourceError(where, f"the index gives no sha256 for {chosen.filename}")
    return ResolvedPackage(
        "wheel", ref.name, ref.version, chosen.url, chosen.sha256, chosen.filename
    )


def linux_wheel_tags(arch: str = "x86_64", glibc: tuple[int, int] = (2, 41)) -> list[Tag]:
    """Tags of pure-Python-ABI wheels (``py3-none``) for manylinux up to ``glibc``, best first."""
    tags: list[Tag] = []
    for minor in range(glibc[1], 4, -1):
        for interp in ("py3", "py2.py3"):
            tags.extend(parse_tag(f"{interp}-none-manylinux_2_{minor}_{arch}"))
    for legacy in legacy_aliases():
        for interp in ("py3", "py2.py3"):
            tags.extend(parse_tag(f"{interp}-none-{legacy}_{arch}"))
    return tags


# --------------------------------------------------------------------------- versions


def upstream_version(kind: str, version: str) -> str:
    """The upstream version of a package version, as a PEP 440 version.

    Debian: ``1:12.2.0-14+deb12u1`` -> ``12.2.0`` (epoch and revision dropped); RPM
    version fields are upstream already; conda and wheels are taken as they are.
    """
    text = version
    if kind == "deb":
        text = text.split(":", 1)[-1]
        text = text.rsplit("-", 1)[0] if "-" in text else text
        text = re.split(r"[+~]", text, maxsplit=1)[0]
    try:
        return str(Version(text))
    except InvalidVersion as e:
        raise SourceError(version, f"upstream version {text!r} is not a PEP 440 version") from e


# --------------------------------------------------------------------------- resolve


Getter = Callable[[str], tuple[bytes, str]]
"""``get(url) -> (body, content type)``: fetches an index document (no sha256 pin)."""


def resolve(source: Source, get: Getter, *, arch: str = "x86_64") -> list[ResolvedPackage]:
    """Every upstream file of ``source``, with its URL and sha256."""
    out: list[ResolvedPackage] = []
    by_url = [p for p in source.packages if p.url is not None]
    for ref in by_url:
        assert ref.url is not None and ref.sha256 is not None
        out.append(
            ResolvedPackage(
                source.kind,
                ref.name or _filename(ref.url),
                ref.version or "",
                ref.url,
                ref.sha256,
                _filename(ref.url),
            )
        )
    named = [p for p in source.packages if p.url is None]
    if not named:
        return out
    if source.kind == "deb":
        deb_arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch)
        url = f"{source.mirror}/dists/{source.suite}/main/binary-{deb_arch}/Packages.xz"
        body, _ = get(url)
        try:
            text = lzma.decompress(body).decode("utf-8", "replace")
        except lzma.LZMAError as e:
            raise SourceError(url, f"cannot decompress the Packages index: {e}") from e
        entries = parse_debian_packages(text, url)
        out.extend(pick_debian(entries, ref, deb_arch, source.mirror, url) for ref in named)
    elif source.kind == "conda":
        url = f"{source.channel}/{source.subdir}/repodata.json"
        body, _ = get(url)
        records = parse_repodata(body, url)
        out.extend(pick_conda(records, ref, source.channel, source.subdir, url) for ref in named)
    elif source.kind == "wheel":
        tags = linux_wheel_tags(arch)
        for ref in named:
            assert ref.name is not None
            url = f"{source.index_url}/{canonicalize_name(ref.name)}/"
            body, content_type = get(url)
            out.append(pick_wheel(parse_simple_index(body, content_type, url), ref, tags, url))
    else:  # rpm by name is rejected when the catalog loads
        raise SourceError(source.name, f"cannot resolve {source.kind} packages by name")
    return out
