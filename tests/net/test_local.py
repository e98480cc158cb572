"""``file://`` URLs (nativelib.net.local), as the resolver reads a simple index on disk."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from nativelib.errors import HttpError, SourceError
from nativelib.net.local import file_url_path, get_file_document, verified_file


def test_file_url_path(tmp_path: Path) -> None:
    p = tmp_path / "a b+c"
    assert file_url_path(p.as_uri()) == p
    assert file_url_path(f"file://localhost{p.as_uri()[len('file://') :]}") == p
    with pytest.raises(SourceError, match="on another host"):
        file_url_path("file://server/share/x")
    with pytest.raises(SourceError, match="not a file:// URL"):
        file_url_path("https://example.org/x")


def test_a_directory_reads_its_index_html_else_json(tmp_path: Path) -> None:
    page = tmp_path / "simple" / "proj"
    page.mkdir(parents=True)
    (page / "index.json").write_text('{"files": []}')
    url = page.as_uri() + "/"
    assert get_file_document(url) == (b'{"files": []}', "application/vnd.pypi.simple.v1+json")
    (page / "index.html").write_text("<html></html>")
    assert get_file_document(url) == (b"<html></html>", "text/html")
    assert get_file_document(page.as_uri()) == (b"<html></html>", "text/html")


def test_a_missing_page_is_a_404(tmp_path: Path) -> None:
    with pytest.raises(HttpError) as e:
        get_file_document((tmp_path / "nothing").as_uri() + "/")
    assert e.value.status == 404 and "no such file" in e.value.reason
    (tmp_path / "big.html").write_bytes(b"x" * 100)
    with pytest.raises(SourceError, match="too large"):
        get_file_document((tmp_path / "big.html").as_uri(), max_bytes=10)


def test_verified_file(tmp_path: Path) -> None:
    f = tmp_path / "x.whl"
    f.write_bytes(b"wheel")
    sha = hashlib.sha256(b"wheel").hexdigest()
    assert verified_file(f.as_uri(), sha) == f
    assert verified_file(f.as_uri(), sha.upper()) == f
    with pytest.raises(SourceError, match="sha256 mismatch"):
        verified_file(f.as_uri(), "0" * 64)
    with pytest.raises(SourceError, match=str(tmp_path / "gone.whl")):
        verified_file((tmp_path / "gone.whl").as_uri(), sha)
