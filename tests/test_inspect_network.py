"""``inspect`` on a real binary wheel from PyPI gives the same facts as its extracted files."""

from __future__ import annotations

import hashlib
import json
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from nativelib.cli import main
from nativelib.net.download import DownloadPolicy, fetch, get_document

pytestmark = pytest.mark.network

PROJECT, VERSION = "markupsafe", "3.0.2"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def _index_files(text: str, content_type: str) -> list[tuple[str, str, str]]:
    """(filename, url, sha256) from a PEP 691 JSON or PEP 503 HTML project page."""
    if content_type.startswith("application/vnd.pypi.simple.v1+json"):
        return [(f["filename"], f["url"], f["hashes"]["sha256"]) for f in json.loads(text)["files"]]
    links = _Links()
    links.feed(text)
    out = []
    for href in links.hrefs:
        url, _, fragment = href.partition("#sha256=")
        out.append((url.rsplit("/", 1)[-1], url, fragment))
    return out


def _download_wheel(dest: Path) -> Path:
    """One small binary wheel, found through PyPI's simple API (with our own client)."""
    policy = DownloadPolicy(retries=2, timeout=120, progress=False)
    body, content_type = get_document(f"https://pypi.org/simple/{PROJECT}/", policy=policy)
    files = [
        f
        for f in _index_files(body.decode(), content_type)
        if f[0].lower().startswith(f"{PROJECT}-{VERSION}-cp311-cp311-manylinux")
        and f[0].endswith("x86_64.whl")
    ]
    assert files, f"no cp311 manylinux x86_64 wheel of {PROJECT} {VERSION} on PyPI"
    filename, url, sha256 = files[0]
    assert len(sha256) == 64, f"the index gave no sha256 for {filename}"
    path = fetch(url, sha256, cache=dest / "cache", policy=policy)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    return path


def test_wheel_facts_equal_extracted_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = _download_wheel(tmp_path)
    assert main(["inspect", "--json", str(wheel)]) == 0
    from_wheel = json.loads(capsys.readouterr().out)["files"]
    assert from_wheel, "no ELF member found in a binary wheel"
    extracted = tmp_path / "extracted"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(extracted)
    assert main(["inspect", "--json", str(extracted)]) == 0
    from_disk = json.loads(capsys.readouterr().out)["files"]

    def key(entry: dict[str, object], prefix: str) -> str:
        return str(entry["path"])[len(prefix) :]

    wheel_by_member = {key(f, f"{wheel}!"): {**f, "path": None} for f in from_wheel}
    disk_by_member = {key(f, f"{extracted}/"): {**f, "path": None} for f in from_disk}
    assert wheel_by_member == disk_by_member
    speedups = wheel_by_member["markupsafe/_speedups.cpython-311-x86_64-linux-gnu.so"]
    assert "libc.so.6" in speedups["needed"]
