"""``file://`` URLs, read as pip reads them, for a simple index on disk.

A ``file://`` index (``nativelib index`` writes one) is read here rather than by
:mod:`nativelib.net.download`, which fetches ``http(s)`` only: the resolver uses these
functions only for an index that was itself given as ``file://`` (or as a directory), so a
remote index can never make nativelib read a local file.

- :func:`get_file_document`: a page. A directory URL (``.../simple/project/``) reads the
  directory's ``index.html``, as pip does (else its ``index.json``, PEP 691); a missing
  file is a :class:`~nativelib.errors.HttpError` with status 404, as a server would
  answer, so that callers have one branch for "no such project".
- :func:`verified_file`: a distribution file, checked against its sha256 and used in
  place (nothing is copied into the download cache).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from nativelib.errors import FileReadError, HttpError, SourceError
from nativelib.files import open_regular_file, read_regular_file

__all__ = ["file_url_path", "get_file_document", "is_file_url", "verified_file"]

#: The largest page read (as :data:`nativelib.net.download.MAX_DOCUMENT`).
MAX_DOCUMENT = 1 << 30
_JSON = "application/vnd.pypi.simple.v1+json"
_CHUNK = 1 << 20


def is_file_url(url: str) -> bool:
    return urlsplit(url).scheme == "file"


def file_url_path(url: str) -> Path:
    """The local path of a ``file://`` URL (``file:///p`` or ``file://localhost/p``)."""
    parts = urlsplit(url)
    if parts.scheme != "file":
        raise SourceError(url, f"not a file:// URL (scheme {parts.scheme!r})")
    if parts.netloc not in ("", "localhost"):
        raise SourceError(url, f"a file:// URL on another host ({parts.netloc!r}) is not supported")
    return Path(url2pathname(unquote(parts.path)))


def _content_type(path: Path) -> str:
    if path.suffix == ".json":
        return _JSON
    if path.suffix in (".html", ".htm"):
        return "text/html"
    return "application/octet-stream"


def get_file_document(url: str, *, max_bytes: int = MAX_DOCUMENT) -> tuple[bytes, str]:
    """A page of a ``file://`` index: ``(body, content type)`` (see the module)."""
    path = file_url_path(url)
    if path.is_dir():
        candidates = [path / "index.html", path / "index.json"]
        path = next((p for p in candidates if p.is_file()), candidates[0])
    try:
        return read_regular_file(path, max_bytes, follow_symlinks=True), _content_type(path)
    except FileReadError as e:
        if not os.path.lexists(path):
            raise HttpError(url, f"no such file: {str(path)!r}", 404) from e
        raise SourceError(url, e.reason) from e


def verified_file(url: str, sha256: str) -> Path:
    """The local file a ``file://`` URL names, once its sha256 is checked."""
    path = file_url_path(url)
    h = hashlib.sha256()
    try:
        with open_regular_file(path, follow_symlinks=True) as f:
            while block := f.read(_CHUNK):
                h.update(block)
    except FileReadError as e:
        raise SourceError(url, e.reason) from e
    except OSError as e:
        raise SourceError(url, f"cannot read: {e.strerror or e}") from e
    if h.hexdigest() != sha256.lower():
        raise SourceError(url, f"sha256 mismatch: expected {sha256}, got {h.hexdigest()}")
    return path
