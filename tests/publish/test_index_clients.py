"""nativelib's own clients (resolve, requires, repair) read an index that ``nativelib
index`` wrote, as ``file://``, as a plain directory and over HTTP on 127.0.0.1 (offline:
the runtime wheels are built from this host's libraries; the downstream wheel is a real
OpenMP extension that the real auditwheel vendored libgomp into)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from nativelib.cli import main
from nativelib.publish.index import build_index
from nativelib_testing import auditwheel_repair, host_runtime_wheels, omp_wheel


class _Logged(http.server.SimpleHTTPRequestHandler):
    """Serves a directory and records every path asked for."""

    requests: list[str]

    def log_message(self, format: str, *args: object) -> None:
        type(self).requests.append(self.path)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("index-clients")
    runtimes = host_runtime_wheels(root / "runtimes")
    wheelhouse = runtimes[0].parent
    build_index(wheelhouse)
    vendored = auditwheel_repair(omp_wheel(root / "plain"), root / "auditwheel")
    return {"root": root, "wheelhouse": wheelhouse, "vendored": vendored}


@pytest.fixture(scope="module")
def served(built: dict[str, Path]) -> Iterator[tuple[str, list[str]]]:
    handler = type("Handler", (_Logged,), {"requests": []})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(built["wheelhouse"]))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple/", handler.requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATIVELIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NATIVELIB_CUDA_DRIVER", "none")


def _resolve(index_url: str, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    argv = ["resolve", "nativelib-gomp", "nativelib-cxx14>=12", "--index-url", index_url]
    assert main([*argv, "--glibc", "2.36", "--json"]) == 0
    resolved: list[dict[str, object]] = json.loads(capsys.readouterr().out)["resolved"]
    return resolved


def test_resolve_from_file_url_and_directory(
    built: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    simple = built["wheelhouse"] / "simple"
    for url in (simple.as_uri(), simple.as_uri() + "/", str(simple)):
        resolved = _resolve(url, capsys)
        assert [(r["name"], r["version"]) for r in resolved] == [
            ("nativelib-cxx14", "12.2.0"),
            ("nativelib-gomp", "12.2.0"),
        ]
        for r in resolved:
            wheel = Path(str(r["url"])[len("file://") :])
            assert wheel.parent == built["wheelhouse"]
            assert r["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    # The wheels are read in place (PEP 658 metadata, else the file): nothing is copied.
    assert not (tmp_path / "cache" / "downloads").exists()
    assert main(["requires", "nativelib-gomp", "--index-url", simple.as_uri()]) == 0
    assert re.fullmatch(r"Requires-Dist: nativelib-gomp>=[0-9.]+\n", capsys.readouterr().out)


def test_resolve_over_http_uses_the_metadata_files(
    served: tuple[str, list[str]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url, requests = served
    requests.clear()
    resolved = _resolve(url, capsys)
    assert [r["version"] for r in resolved] == ["12.2.0", "12.2.0"]
    assert any(p.endswith(".whl.metadata") for p in requests), requests
    assert not [p for p in requests if p.endswith(".whl")], requests  # PEP 658: no wheel
    assert not (tmp_path / "cache" / "downloads").exists()


def test_repair_from_a_file_index_as_from_find_links(
    built: dict[str, Path], tmp_path: Path
) -> None:
    by_dir, by_index = tmp_path / "find-links", tmp_path / "index"
    base = ["repair", str(built["vendored"]), "-w"]
    assert main([*base, str(by_dir), "--find-links", str(built["wheelhouse"])]) == 0
    url = (built["wheelhouse"] / "simple").as_uri()
    assert main([*base, str(by_index), "--index-url", url]) == 0
    (a,), (b,) = list(by_dir.glob("*.whl")), list(by_index.glob("*.whl"))
    assert a.name == b.name and a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///nonexistent/simple", "no such directory: '/nonexistent/simple'"),
        ("/nonexistent/simple", "no such directory"),
        ("file://server/share/simple", "on another host ('server') is not supported"),
        ("ftp://example.org/simple", "the scheme must be http, https or file, not 'ftp'"),
    ],
)
def test_bad_index_urls(url: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resolve", "nativelib-gomp", "--index-url", url]) == 2
    err = capsys.readouterr().err
    assert f"error: --index-url {url!r}: " in err and message in err and "Traceback" not in err


def test_a_remote_index_cannot_point_at_local_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], built: dict[str, Path]
) -> None:
    """Only a file:// index reads local files: an http page linking to file:// gets its
    link refused, as a redirect to file:// is."""
    gomp = next(built["wheelhouse"].glob("nativelib_gomp-*.whl"))
    sha = hashlib.sha256(gomp.read_bytes()).hexdigest()
    site = tmp_path / "site" / "simple" / "nativelib-gomp"
    site.mkdir(parents=True)
    (site / "index.html").write_text(f'<a href="{gomp.as_uri()}#sha256={sha}">{gomp.name}</a>\n')
    handler = type("Handler", (_Logged,), {"requests": []})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(tmp_path / "site"))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
        assert main(["resolve", "nativelib-gomp", "--index-url", url]) == 2
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert "must be http:// or https://, not 'file'" in err, err
