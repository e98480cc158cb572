"""The simple repository API (PEP 503 HTML, PEP 691 JSON, PEP 658 metadata, PEP 592 yanking).

:func:`parse_simple_index` reads one project page into :class:`IndexFile` records;
:func:`selection_problem` is the one policy for which releases a requirement may take.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from nativelib.errors import SourceError

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

__all__ = ["IndexFile", "parse_simple_index", "selection_problem"]


def _filename(url: str) -> str:
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    if not name:
        raise SourceError(url, "the URL does not end in a file name")
    return name


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


def selection_problem(
    version: Version, yanked: bool, specifier: SpecifierSet | None, *, prereleases: bool = False
) -> str | None:
    """Why a release may not be taken for a requirement with ``specifier``, or None.

    The one policy (PEP 592, PEP 440): a yanked release only for an exact pin (``==`` or
    ``===``; never without a requirement, ``specifier=None``); a pre-release only when
    ``prereleases`` is asked for or the specifier names one. Whether the version is
    inside the specifier is the caller's question.
    """
    if yanked and not (specifier and any(s.operator in ("==", "===") for s in specifier)):
        return "is yanked"
    if version.is_prerelease and not (
        prereleases or (specifier is not None and any(s.prereleases for s in specifier))
    ):
        return "is a pre-release (allow them with --pre)"
    return None
