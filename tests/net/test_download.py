"""``nativelib.net.download.fetch`` against real HTTP(S) servers on 127.0.0.1.

Every server here is a keep-alive (HTTP/1.1) ``ThreadingHTTPServer`` in a thread whose
routes misbehave on purpose (short bodies, lying Content-Length, 5xx, hangs, redirects,
dropped connections); the TLS server uses a self-signed certificate made with the
``openssl`` command for the test session. A small forwarding proxy (absolute-URI requests
and ``CONNECT``) records what went through it.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import os
import re
import select
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from nativelib.errors import SourceError
from nativelib.net import download
from nativelib.net import http as _http
from nativelib.net.download import (
    MAX_REDIRECTS,
    STALE_PARTIAL_SECONDS,
    DownloadPolicy,
    HttpClient,
    cache_dir,
    fetch,
    get_document,
)
from nativelib.net.http import default_client

BODY = bytes(range(256)) * 400  # 102400 bytes
SHA = hashlib.sha256(BODY).hexdigest()
FAST = DownloadPolicy(retries=2, backoff=0.01, timeout=5, progress=False)
WAIT = 10.0  # upper bound on any wait in a test

Route = Callable[["_Handler", int], None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless a route closes the connection
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def do_GET(self) -> None:
        srv = self.server
        path = self.path.split("?", 1)[0]
        with srv.lock:
            srv.hits[path] += 1
            n = srv.hits[path]
            srv.seen.append((path, dict(self.headers)))
        route = srv.routes.get(path)
        if route is None:
            self.send_error(404)
        else:
            route(self, n)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.connections = 0  # TCP connections accepted
        self.closed = 0  # ... and closed by this side
        self.lock = threading.Lock()
        self.release = threading.Event()  # lets hanging handlers go at teardown

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        super().shutdown_request(request)
        with self.lock:
            self.closed += 1

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up mid-body (size limits, timeouts) is expected here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"


# -- routes -------------------------------------------------------------------------------


def ok(body: bytes = BODY, *, barrier: threading.Barrier | None = None) -> Route:
    """200 with Content-Length; with ``barrier``, the body is sent in slow pieces after
    all parties have arrived, so that concurrent downloads really overlap."""

    def route(h: _Handler, n: int) -> None:
        if barrier is not None:
            barrier.wait(WAIT)
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        step = len(body) // 8 if barrier is not None else len(body)
        for i in range(0, len(body), max(step, 1)):
            h.wfile.write(body[i : i + step])
            h.wfile.flush()
            if barrier is not None:
                time.sleep(0.01)

    return route


def status(code: int) -> Route:
    def route(h: _Handler, n: int) -> None:
        h.send_response(code)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return route


def short(body: bytes = BODY, sent: int = 1000) -> Route:
    """Announce the whole body, send ``sent`` bytes, close the connection."""

    def route(h: _Handler, n: int) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body[:sent])
        h.wfile.flush()
        h.close_connection = True

    return route


def hang(body: bytes = BODY, sent: int = 50_000) -> Route:
    """Announce the whole body, send ``sent`` bytes, then stall until teardown."""

    def route(h: _Handler, n: int) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body[:sent])
        h.wfile.flush()
        h.server.release.wait(WAIT)
        h.close_connection = True

    return route


def broken_chunked(body: bytes = BODY) -> Route:
    """HTTP/1.1 chunked body that stops after one chunk, without the last chunk."""

    def route(h: _Handler, n: int) -> None:
        piece = body[:1000]
        h.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        h.wfile.flush()
        h.close_connection = True

    return route


def redirect(location: str, code: int = 302) -> Route:
    def route(h: _Handler, n: int) -> None:
        h.send_response(code)
        if location:
            h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return route


def seq(*routes: Route) -> Route:
    """The n-th request gets the n-th route (the last one from then on)."""

    def route(h: _Handler, n: int) -> None:
        routes[min(n, len(routes)) - 1](h, n)

    return route


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No proxy for 127.0.0.1, no CA bundle variables, no .netrc: tests set their own."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


@pytest.fixture(autouse=True)
def _fresh_default_client() -> Iterator[None]:
    """No test reuses a connection that another test's server left in the shared pool."""
    default_client().close()
    yield
    default_client().close()


def _start(tls: ssl.SSLContext | None = None) -> _Server:
    srv = _Server(tls)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return srv


def _stop(srv: _Server) -> None:
    srv.release.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _start()
    yield srv
    _stop(srv)


@pytest.fixture
def other_server() -> Iterator[_Server]:
    srv = _start()
    yield srv
    _stop(srv)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-nodes", "-days", "2"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-keyout", str(key), "-out", str(crt)),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return crt, key


@pytest.fixture
def tls_server(cert: tuple[Path, Path]) -> Iterator[_Server]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert[0], cert[1])
    srv = _start(ctx)
    yield srv
    _stop(srv)


@pytest.fixture
def trusting(cert: tuple[Path, Path]) -> Iterator[HttpClient]:
    """A client that trusts the test certificate."""
    with HttpClient(verify=cert[0]) as client:
        yield client


def _entry(cache: Path, sha: str = SHA) -> Path:
    return cache / "downloads" / sha


def _partials(cache: Path, sha: str = SHA) -> list[Path]:
    d = _entry(cache, sha)
    return sorted(d.glob("*.partial")) if d.is_dir() else []


# -- the cache root and the policy --------------------------------------------------------


def test_cache_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NATIVELIB_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_dir() == tmp_path / "home" / ".cache" / "nativelib"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    assert cache_dir() == tmp_path / "home" / ".cache" / "nativelib"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "nativelib"
    monkeypatch.setenv("NATIVELIB_CACHE_DIR", str(tmp_path / "own"))
    assert cache_dir() == tmp_path / "own"
    assert not (tmp_path / "own").exists()


def test_fetch_uses_cache_dir_by_default(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NATIVELIB_CACHE_DIR", str(tmp_path / "env-cache"))
    server.routes["/f.bin"] = ok()
    assert fetch(server.url("/f.bin"), SHA, policy=FAST) == (
        _entry(tmp_path / "env-cache") / "f.bin"
    )


@pytest.mark.parametrize(
    ("field", "value"), [("retries", -1), ("backoff", -0.1), ("timeout", 0), ("timeout", -1)]
)
def test_policy_rejects_bad_values(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        DownloadPolicy(**{field: value})  # type: ignore[arg-type]


# -- happy path and the cache -------------------------------------------------------------


def test_download_then_cache_hit_without_request(server: _Server, tmp_path: Path) -> None:
    server.routes["/pkgs/libfoo-1.0.tar.bz2"] = ok()
    url = server.url("/pkgs/libfoo-1.0.tar.bz2")
    path = fetch(url, SHA, cache=tmp_path, policy=FAST)
    assert path == tmp_path / "downloads" / SHA / "libfoo-1.0.tar.bz2"
    assert path.read_bytes() == BODY
    assert server.hits["/pkgs/libfoo-1.0.tar.bz2"] == 1
    assert server.seen[0][1]["Accept-Encoding"] == "identity"
    assert server.seen[0][1]["User-Agent"].startswith("pynativelib/")
    umask = os.umask(0)
    os.umask(umask)
    for d in (tmp_path / "downloads", path.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o755 & ~umask
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 & ~umask
    assert fetch(url, SHA, cache=tmp_path, policy=FAST) == path
    assert server.hits["/pkgs/libfoo-1.0.tar.bz2"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["libfoo-1.0.tar.bz2"]


def test_explicit_filename_and_uppercase_sha(server: _Server, tmp_path: Path) -> None:
    server.routes["/download"] = ok()
    path = fetch(
        server.url("/download?id=3"), SHA.upper(), filename="pkg.whl", cache=tmp_path, policy=FAST
    )
    assert path == _entry(tmp_path) / "pkg.whl"
    assert path.read_bytes() == BODY


def test_filename_is_percent_decoded(server: _Server, tmp_path: Path) -> None:
    server.routes["/a%2Bb-1.0.conda"] = ok()
    path = fetch(server.url("/a%2Bb-1.0.conda"), SHA, cache=tmp_path, policy=FAST)
    assert path.name == "a+b-1.0.conda"


def test_corrupt_cache_entry_is_downloaded_again(
    server: _Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.routes["/f.bin"] = ok()
    final = _entry(tmp_path) / "f.bin"
    final.parent.mkdir(parents=True)
    final.write_bytes(BODY[:-1] + b"X")
    assert fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=FAST) == final
    assert final.read_bytes() == BODY
    assert server.hits["/f.bin"] == 1
    assert "downloading it again" in caplog.text


def test_symlink_in_cache_is_replaced_not_followed(server: _Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = ok()
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"sentinel")
    cache = tmp_path / "cache"
    final = _entry(cache) / "f.bin"
    final.parent.mkdir(parents=True)
    final.symlink_to(outside)
    assert fetch(server.url("/f.bin"), SHA, cache=cache, policy=FAST) == final
    assert not final.is_symlink()
    assert final.read_bytes() == BODY
    assert outside.read_bytes() == b"sentinel"


def test_directory_at_cache_path_is_an_error(server: _Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = ok()
    (_entry(tmp_path) / "f.bin").mkdir(parents=True)
    with pytest.raises(SourceError, match="not a regular file"):
        fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=FAST)
    assert server.hits["/f.bin"] == 0


def test_unreadable_cache_entry_is_an_error(server: _Server, tmp_path: Path) -> None:
    # A UNIX socket at the cache path: open() fails with ENXIO. Bound at a short path
    # (sun_path holds 108 bytes), then moved into place.
    server.routes["/f.bin"] = ok()
    final = _entry(tmp_path) / "f.bin"
    final.parent.mkdir(parents=True)
    short_dir = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(short_dir / "s"))
            os.rename(short_dir / "s", final)
            with pytest.raises(
                SourceError, match=r"cannot read cache entry .*f\.bin.*No such device"
            ):
                fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=FAST)
    finally:
        shutil.rmtree(short_dir)
    assert server.hits["/f.bin"] == 0


def test_cache_that_cannot_be_created(server: _Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = ok()
    (tmp_path / "file").write_text("")
    with pytest.raises(SourceError, match="cannot create cache directory") as e:
        fetch(server.url("/f.bin"), SHA, cache=tmp_path / "file" / "cache", policy=FAST)
    assert e.value.source == server.url("/f.bin")


# -- wrong content, short bodies, retries -------------------------------------------------


def test_hash_mismatch_is_not_published_nor_retried(server: _Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = ok(BODY[:-1] + b"X")
    url = server.url("/f.bin")
    with pytest.raises(SourceError) as e:
        fetch(url, SHA, cache=tmp_path, policy=FAST)
    got = hashlib.sha256(BODY[:-1] + b"X").hexdigest()
    assert e.value.source == url
    assert e.value.reason.startswith(f"sha256 mismatch: expected {SHA}, got {got}")
    assert "not retried" in e.value.reason
    assert url in str(e.value)
    assert server.hits["/f.bin"] == 1
    assert list(_entry(tmp_path).iterdir()) == []


def test_short_body_is_retried(server: _Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = seq(short(), ok())
    path = fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=FAST)
    assert path.read_bytes() == BODY
    assert server.hits["/f.bin"] == 2
    assert _partials(tmp_path) == []


def test_lying_content_length_gives_up_naming_attempts(server: _Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = short(sent=4096)
    url = server.url("/f.bin")
    with pytest.raises(SourceError) as e:
        fetch(url, SHA, cache=tmp_path, policy=FAST)
    assert e.value.source == url
    assert "failed after 3 attempts" in e.value.reason
    assert f"body ended after 4096 of {len(BODY)} bytes" in e.value.reason
    assert server.hits["/f.bin"] == 3
    assert list(_entry(tmp_path).iterdir()) == []


def test_broken_chunked_body_is_retried(server: _Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = seq(broken_chunked(), ok())
    assert fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=FAST).read_bytes() == BODY
    assert server.hits["/f.bin"] == 2


@pytest.mark.parametrize("code", [500, 502, 503, 408, 429])
def test_transient_status_then_success(
    server: _Server, tmp_path: Path, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="nativelib")
    server.routes["/f.bin"] = seq(status(code), status(code), ok())
    assert fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=FAST).read_bytes() == BODY
    assert server.hits["/f.bin"] == 3
    assert f"attempt 1 of 3 failed: HTTP {code}" in caplog.text
    assert "attempt 2 of 3 failed" in caplog.text


def test_server_error_every_time(server: _Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = status(500)
    url = server.url("/f.bin")
    policy = DownloadPolicy(retries=3, backoff=0.01, timeout=5, progress=False)
    t0 = time.monotonic()
    with pytest.raises(SourceError) as e:
        fetch(url, SHA, cache=tmp_path, policy=policy)
    assert time.monotonic() - t0 >= 0.01 + 0.02 + 0.04  # exponential backoff was waited
    assert e.value.source == url
    assert e.value.reason.startswith("failed after 4 attempts; last error: HTTP 500")
    assert server.hits["/f.bin"] == 4


def test_no_retries_says_one_attempt(server: _Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = status(503)
    policy = DownloadPolicy(retries=0, backoff=0.01, timeout=5, progress=False)
    with pytest.raises(SourceError, match="failed after 1 attempt; last error: HTTP 503"):
        fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=policy)
    assert server.hits["/f.bin"] == 1


@pytest.mark.parametrize("code", [400, 403, 404, 410])
def test_client_error_is_not_retried(server: _Server, tmp_path: Path, code: int) -> None:
    if code != 404:
        server.routes["/f.bin"] = status(code)
    url = server.url("/f.bin")
    with pytest.raises(SourceError) as e:
        fetch(url, SHA, cache=tmp_path, policy=FAST)
    assert e.value.source == url
    assert e.value.reason.startswith(f"HTTP {code} ")
    assert "not retried" in e.value.reason
    assert server.hits["/f.bin"] == 1


def test_connection_refused_is_retried(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/f.bin"
    with pytest.raises(SourceError) as e:
        fetch(url, SHA, cache=tmp_path, policy=FAST)
    assert "failed after 3 attempts; last error: connection failed" in e.value.reason
    assert list(_entry(tmp_path).iterdir()) == []


def test_no_response_times_out(server: _Server, tmp_path: Path) -> None:
    def silent(h: _Handler, n: int) -> None:
        h.server.release.wait(WAIT)

    server.routes["/f.bin"] = silent
    policy = DownloadPolicy(retries=1, backoff=0.01, timeout=0.2, progress=False)
    with pytest.raises(
        SourceError, match=r"failed after 2 attempts; last error: timed out after 0.2 s"
    ):
        fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=policy)
    assert server.hits["/f.bin"] == 2


def test_tls_error_is_retried(server: _Server, tmp_path: Path) -> None:
    # https:// to a plain HTTP server: the handshake fails, but not on the certificate.
    url = server.url("/f.bin").replace("http://", "https://")
    with pytest.raises(SourceError, match="failed after 3 attempts; last error: TLS error"):
        fetch(url, SHA, cache=tmp_path, policy=FAST)


def test_stalled_body_times_out_then_rerun_succeeds(server: _Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = hang()
    url = server.url("/f.bin")
    policy = DownloadPolicy(retries=1, backoff=0.01, timeout=0.3, progress=False)
    with pytest.raises(SourceError) as e:
        fetch(url, SHA, cache=tmp_path, policy=policy)
    assert "failed after 2 attempts" in e.value.reason
    assert "read timed out after 0.3 s" in e.value.reason
    assert "body ended after 50000 of 102400 bytes" in e.value.reason
    assert list(_entry(tmp_path).iterdir()) == []
    server.routes["/f.bin"] = ok()
    assert fetch(url, SHA, cache=tmp_path, policy=policy).read_bytes() == BODY


# -- kill -9 and concurrent fetches -------------------------------------------------------

_CHILD = """
import sys
from pathlib import Path
from nativelib.net.download import DownloadPolicy, fetch
url, sha, cache = sys.argv[1:4]
print(fetch(url, sha, cache=Path(cache), policy=DownloadPolicy(retries=0, timeout=30)))
"""


def _child(url: str, cache: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, url, SHA, str(cache)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_kill_9_mid_download_then_rerun(server: _Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = hang(sent=50_000)
    url = server.url("/f.bin")
    proc = _child(url, tmp_path)
    try:
        deadline = time.monotonic() + WAIT
        while not any(p.stat().st_size >= 50_000 for p in _partials(tmp_path)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the child never wrote its partial file"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=WAIT)
    assert proc.returncode == -signal.SIGKILL
    final = _entry(tmp_path) / "f.bin"
    assert not final.exists()
    [dead] = _partials(tmp_path)
    assert dead.name.startswith("f.bin.")
    # An hour later, the dead download's partial is stale; a live one is left alone.
    old = time.time() - STALE_PARTIAL_SECONDS - 60
    os.utime(dead, (old, old))
    live = final.parent / "f.bin.0123456789abcdef.partial"
    live.write_bytes(b"in progress")
    server.routes["/f.bin"] = ok()
    assert fetch(url, SHA, cache=tmp_path, policy=FAST) == final
    assert final.read_bytes() == BODY
    assert _partials(tmp_path) == [live]


def test_stale_partials_are_removed_on_cache_hit(server: _Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = ok()
    final = fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=FAST)
    stale = final.parent / "f.bin.00000000deadbeef.partial"
    stale.write_bytes(b"x")
    old = time.time() - 2 * STALE_PARTIAL_SECONDS
    os.utime(stale, (old, old))
    assert fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=FAST) == final
    assert not stale.exists()
    assert server.hits["/f.bin"] == 1


def test_concurrent_threads_and_a_reader(server: _Server, tmp_path: Path) -> None:
    n = 6
    server.routes["/f.bin"] = ok(barrier=threading.Barrier(n))
    url = server.url("/f.bin")
    final = _entry(tmp_path) / "f.bin"
    results: list[Path] = []
    errors: list[BaseException] = []
    torn: list[int] = []
    done = threading.Event()

    def worker() -> None:
        try:
            results.append(fetch(url, SHA, cache=tmp_path, policy=FAST))
        except BaseException as e:
            errors.append(e)

    def reader() -> None:
        while not done.is_set():
            try:
                data = final.read_bytes()
            except FileNotFoundError:
                continue
            if data != BODY:
                torn.append(len(data))

    threads = [threading.Thread(target=worker) for _ in range(n)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    done.set()
    watcher.join(WAIT)
    assert errors == []
    assert results == [final] * n
    assert torn == [], "a reader saw partial or wrong content at the final path"
    assert server.hits["/f.bin"] == n
    assert final.read_bytes() == BODY
    assert _partials(tmp_path) == []


def test_two_processes_at_once(server: _Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = ok(barrier=threading.Barrier(2))
    url = server.url("/f.bin")
    procs = [_child(url, tmp_path), _child(url, tmp_path)]
    outs = [p.communicate(timeout=WAIT) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    final = _entry(tmp_path) / "f.bin"
    assert [o[0].strip() for o in outs] == [str(final)] * 2
    assert final.read_bytes() == BODY
    assert server.hits["/f.bin"] == 2
    assert _partials(tmp_path) == []


def test_cache_dir_removed_before_the_body(server: _Server, tmp_path: Path) -> None:
    # Someone wipes the cache while the request is in flight: no partial can be created.
    def wipe_then_serve(h: _Handler, n: int) -> None:
        shutil.rmtree(tmp_path / "downloads")
        ok()(h, n)

    server.routes["/f.bin"] = wipe_then_serve
    with pytest.raises(SourceError, match=r"cannot create '.*/f\.bin\.[0-9a-f]{16}\.partial'"):
        fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=FAST)
    assert server.hits["/f.bin"] == 1


def test_cache_dir_removed_during_the_body(server: _Server, tmp_path: Path) -> None:
    # ... or while the body streams into the partial file: it cannot be published.
    def serve_then_wipe(h: _Handler, n: int) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(BODY)))
        h.end_headers()
        h.wfile.write(BODY[:1000])
        h.wfile.flush()
        deadline = time.monotonic() + WAIT
        while not _partials(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.01)
        shutil.rmtree(tmp_path / "downloads")
        h.wfile.write(BODY[1000:])

    server.routes["/f.bin"] = serve_then_wipe
    with pytest.raises(SourceError, match=r"cannot move '.*\.partial' to '.*/f\.bin'"):
        fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=FAST)
    assert not (tmp_path / "downloads").exists()


_CHILD_FSIZE = """
import resource, signal, sys
from pathlib import Path
from nativelib.errors import SourceError
from nativelib.net.download import DownloadPolicy, fetch
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (10000, 10000))
try:
    fetch(sys.argv[1], sys.argv[2], cache=Path(sys.argv[3]), policy=DownloadPolicy(timeout=30))
except SourceError as e:
    print(e.reason)
"""


def test_write_failure_is_reported_and_cleaned_up(server: _Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = ok()
    out = subprocess.run(
        [sys.executable, "-c", _CHILD_FSIZE, server.url("/f.bin"), SHA, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("cannot write "), out.stdout
    assert ".partial" in out.stdout
    assert server.hits["/f.bin"] == 1
    assert list(_entry(tmp_path).iterdir()) == []


# -- redirects and TLS --------------------------------------------------------------------


def test_redirects_are_followed(server: _Server, other_server: _Server, tmp_path: Path) -> None:
    server.routes["/a/b/start.bin"] = redirect("../c/next", 301)  # relative
    server.routes["/a/c/next"] = redirect("/abs", 307)  # absolute path
    server.routes["/abs"] = redirect(other_server.url("/real/file"), 308)  # another origin
    other_server.routes["/real/file"] = ok()
    path = fetch(server.url("/a/b/start.bin"), SHA, cache=tmp_path, policy=FAST)
    assert path == _entry(tmp_path) / "start.bin"
    assert path.read_bytes() == BODY
    assert [p for p, _ in server.seen] == ["/a/b/start.bin", "/a/c/next", "/abs"]
    assert other_server.hits["/real/file"] == 1


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_credentials_stay_with_their_origin(
    server: _Server, other_server: _Server, tmp_path: Path
) -> None:
    # user:password@ in the URL: sent to the origin (also after a redirect within it), not
    # to another origin, and never as userinfo on the wire.
    server.routes["/f.bin"] = redirect("/g.bin")
    server.routes["/g.bin"] = redirect(other_server.url("/f.bin"))
    other_server.routes["/f.bin"] = ok()
    url = server.url("/f.bin").replace("://", "://alice:s%40cret@")
    fetch(url, SHA, cache=tmp_path, policy=FAST)
    assert [h.get("Authorization") for _, h in server.seen] == [_basic("alice", "s@cret")] * 2
    assert server.seen[0][1]["Host"] == f"127.0.0.1:{server.port}"
    assert "Authorization" not in other_server.seen[0][1]


def test_netrc_credentials_stay_with_their_origin(
    server: _Server, other_server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The .netrc entry is for the host 127.0.0.1, which both servers are on: only the
    # origin of the URL asked for (scheme, host and port) gets it.
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login bob password hunter2\n")
    monkeypatch.setenv("NETRC", str(netrc))
    server.routes["/f.bin"] = redirect(other_server.url("/f.bin"))
    other_server.routes["/f.bin"] = ok()
    server.routes["/page"] = ok(b"page")
    fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=FAST)
    assert server.seen[0][1].get("Authorization") == _basic("bob", "hunter2")
    assert "Authorization" not in other_server.seen[0][1]
    # The URL's own credentials win over .netrc; netrc=False turns .netrc off.
    get_document(server.url("/page").replace("://", "://carol:x@"), policy=FAST)
    assert server.seen[-1][1].get("Authorization") == _basic("carol", "x")
    with HttpClient(netrc=False) as client:
        get_document(server.url("/page"), client=client, policy=FAST)
    assert "Authorization" not in server.seen[-1][1]


def test_too_many_redirects(server: _Server, tmp_path: Path) -> None:
    server.routes["/loop"] = redirect("/loop")
    with pytest.raises(SourceError, match=f"more than {MAX_REDIRECTS} redirects"):
        fetch(server.url("/loop"), SHA, filename="f.bin", cache=tmp_path, policy=FAST)
    assert server.hits["/loop"] == MAX_REDIRECTS + 1


def test_redirect_without_location(server: _Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = redirect("")
    with pytest.raises(SourceError, match=r"HTTP 302 from .* without a Location"):
        fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=FAST)
    assert server.hits["/f.bin"] == 1


def test_redirect_to_another_scheme_is_refused(server: _Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = redirect("file:///etc/passwd")
    with pytest.raises(SourceError, match=r"redirect target 'file:///etc/passwd' must be http"):
        fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=FAST)


def test_redirect_to_a_bad_port_is_refused(server: _Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = redirect("http://127.0.0.1:99999/f.bin")
    with pytest.raises(SourceError, match=r"redirect target .* has a bad port"):
        fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=FAST)
    assert server.hits["/f.bin"] == 1


def test_request_that_cannot_be_made_is_not_retried(server: _Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = redirect("http://.invalid/f.bin")
    with pytest.raises(SourceError, match=r"request to 'http://\.invalid/f\.bin' failed") as e:
        fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=FAST)
    assert "attempts" not in e.value.reason
    assert server.hits["/f.bin"] == 1


def test_https_download_and_https_redirect(
    tls_server: _Server, trusting: HttpClient, tmp_path: Path
) -> None:
    tls_server.routes["/start.bin"] = redirect("/real.bin")
    tls_server.routes["/real.bin"] = ok()
    url = tls_server.url("/start.bin")
    path = fetch(url, SHA, cache=tmp_path, client=trusting, policy=FAST)
    assert path.read_bytes() == BODY
    assert tls_server.hits["/real.bin"] == 1
    assert tls_server.connections == 1  # the redirect was followed on the same connection


def test_https_to_http_redirect_is_refused(
    tls_server: _Server, server: _Server, trusting: HttpClient, tmp_path: Path
) -> None:
    server.routes["/f.bin"] = ok()
    tls_server.routes["/f.bin"] = redirect(server.url("/f.bin"))
    url = tls_server.url("/f.bin")
    with pytest.raises(SourceError) as e:
        fetch(url, SHA, cache=tmp_path, client=trusting, policy=FAST)
    assert e.value.source == url
    assert "downgrade from https to http" in e.value.reason
    assert server.url("/f.bin") in e.value.reason
    assert tls_server.hits["/f.bin"] == 1
    assert server.hits["/f.bin"] == 0
    assert list(_entry(tmp_path).iterdir()) == []


def test_untrusted_certificate_is_not_retried(tls_server: _Server, tmp_path: Path) -> None:
    tls_server.routes["/f.bin"] = ok()
    with pytest.raises(SourceError, match="TLS certificate verification failed") as e:
        fetch(tls_server.url("/f.bin"), SHA, cache=tmp_path, policy=FAST)
    assert "attempts" not in e.value.reason
    assert tls_server.hits["/f.bin"] == 0


# -- bad arguments: rejected before any network -------------------------------------------


@pytest.mark.parametrize(
    "sha",
    ["", "abc", "g" * 64, SHA + "0", SHA[:-1], f" {SHA[:-1]}", "sha256:" + SHA, None, SHA.encode()],
)
def test_invalid_sha256(server: _Server, tmp_path: Path, sha: object) -> None:
    server.routes["/f.bin"] = ok()
    with pytest.raises(SourceError, match="sha256 must be 64 hexadecimal digits") as e:
        fetch(server.url("/f.bin"), sha, cache=tmp_path, policy=FAST)  # type: ignore[arg-type]
    assert e.value.source == server.url("/f.bin")
    assert server.hits["/f.bin"] == 0
    assert not (tmp_path / "downloads").exists()


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("..", "starts with '.'"),
        (".", "starts with '.'"),
        (".hidden", "starts with '.'"),
        ("a\x00b", "control character"),
        ("a\nb", "control character"),
        ("f.bin.partial", "suffix of temporary files"),
        ("n" * 201, "longer than 200 bytes"),
    ],
)
def test_bad_filename(server: _Server, tmp_path: Path, name: str, problem: str) -> None:
    server.routes["/f.bin"] = ok()
    with pytest.raises(SourceError, match=f"bad file name .*{re.escape(problem)}"):
        fetch(server.url("/f.bin"), SHA, filename=name, cache=tmp_path, policy=FAST)
    assert server.hits["/f.bin"] == 0
    assert not (tmp_path / "downloads").exists()


@pytest.mark.parametrize("path", ["/dir/", "/a%2Fb", "/..", "/x/%2E%2E", "/f%0A"])
def test_bad_filename_from_url(server: _Server, tmp_path: Path, path: str) -> None:
    with pytest.raises(SourceError, match="cannot take a file name from the URL path"):
        fetch(server.url(path), SHA, cache=tmp_path, policy=FAST)
    assert server.hits == Counter()
    assert not (tmp_path / "downloads").exists()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://127.0.0.1/f.bin", "must be http:// or https://, not 'ftp'"),
        ("file:///etc/passwd", "must be http:// or https://, not 'file'"),
        ("/local/path/f.bin", "must be http:// or https://, not ''"),
        ("http:///f.bin", "has no host"),
        ("http://127.0.0.1:99999/f.bin", "has a bad port"),
        ("https://127.0.0.1:x/f.bin", "has a bad port"),
    ],
)
def test_bad_url(tmp_path: Path, url: str, problem: str) -> None:
    with pytest.raises(SourceError, match=problem) as e:
        fetch(url, SHA, cache=tmp_path, policy=FAST)
    assert e.value.source == url
    assert not (tmp_path / "downloads").exists()


# -- progress -----------------------------------------------------------------------------


def test_progress_line_when_forced(
    server: _Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.routes["/f.bin"] = ok()
    policy = DownloadPolicy(retries=0, timeout=5, progress=True)
    fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=policy)
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("\rf.bin: 0 B / 100.0 KiB (0%)")
    assert err.rstrip(" ").endswith("\rf.bin: 100.0 KiB / 100.0 KiB (100%)\n")
    assert err.count("\n") == 1


def test_no_progress_when_stderr_is_not_a_tty(
    server: _Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.routes["/f.bin"] = ok()
    fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=DownloadPolicy(retries=0))
    assert capsys.readouterr() == ("", "")


def test_progress_on_a_tty_by_default(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    master, slave = os.openpty()
    try:
        with open(slave, "w", closefd=True) as tty, monkeypatch.context() as m:
            m.setattr(sys, "stderr", tty)
            server.routes["/f.bin"] = ok()
            fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=DownloadPolicy(retries=0))
        data = ""
        deadline = time.monotonic() + WAIT
        while not data.endswith("\n") and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                data += os.read(master, 65536).decode()
    finally:
        os.close(master)
    assert data.startswith("\rf.bin: ")
    assert "(100%)" in data
    assert data.endswith("\n")  # the tty may translate it to "\r\n"


def test_progress_without_content_length(
    server: _Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_length(h: _Handler, n: int) -> None:
        h.send_response(200)
        h.end_headers()
        h.wfile.write(BODY)
        h.close_connection = True

    server.routes["/f.bin"] = no_length
    fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=DownloadPolicy(progress=True))
    err = capsys.readouterr().err
    assert err.rstrip(" \n").endswith("\rf.bin: 100.0 KiB")
    assert "%" not in err


def test_size_units() -> None:
    assert download._size(0) == "0 B"
    assert download._size(1023) == "1023 B"
    assert download._size(1536) == "1.5 KiB"
    assert download._size(5 * 1024**3) == "5.0 GiB"
    assert download._size(2048 * 1024**4) == "2048.0 TiB"


# -- index documents (no sha256 pin) ------------------------------------------------------


def test_get_document_sends_accept_and_returns_type(server: _Server) -> None:
    def page(h: _Handler, n: int) -> None:
        body = b'{"files": []}'
        h.send_response(200)
        h.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    server.routes["/simple/x/"] = page
    body, content_type = get_document(server.url("/simple/x/"), policy=FAST)
    assert (body, content_type) == (b'{"files": []}', "application/vnd.pypi.simple.v1+json")
    assert "application/vnd.pypi.simple.v1+json" in server.seen[-1][1]["Accept"]


def test_get_document_retries_then_succeeds(server: _Server) -> None:
    server.routes["/repodata.json"] = seq(status(503), short(BODY, sent=10), ok(BODY))
    body, _ = get_document(server.url("/repodata.json"), policy=FAST)
    assert body == BODY and server.hits["/repodata.json"] == 3


def test_get_document_errors(server: _Server) -> None:
    server.routes["/gone"] = status(404)
    with pytest.raises(SourceError, match="HTTP 404"):
        get_document(server.url("/gone"), policy=FAST)
    assert server.hits["/gone"] == 1
    server.routes["/big"] = ok(BODY)
    with pytest.raises(SourceError, match="exceeds 1000"):
        get_document(server.url("/big"), policy=FAST, max_bytes=1000)
    with pytest.raises(SourceError):
        get_document("ftp://example.org/x", policy=FAST)


def test_get_document_through_redirect_to_another_origin(
    server: _Server, other_server: _Server
) -> None:
    server.routes["/simple/x/"] = redirect(other_server.url("/mirror/x/"), 301)
    other_server.routes["/mirror/x/"] = ok(b"<html></html>")
    assert get_document(server.url("/simple/x/"), policy=FAST)[0] == b"<html></html>"


# -- connections: keep-alive, reconnects --------------------------------------------------


def _page(body: bytes = b"page") -> Route:
    def route(h: _Handler, n: int) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return route


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_request_target_is_percent_encoded(server: _Server) -> None:
    # Spaces and non-ASCII are encoded as UTF-8; what is already encoded stays as it is.
    server.routes["/a%20b/%C3%BC/x%2By"] = _page()
    body, _ = get_document(server.url("/a b/\u00fc/x%2By?q=a b#frag"), policy=FAST)
    assert body == b"page"
    assert server.seen[0][0] == "/a%20b/%C3%BC/x%2By"


def test_one_connection_for_many_requests(server: _Server, tmp_path: Path) -> None:
    server.routes["/simple/x/"] = _page()
    server.routes["/empty"] = _page(b"")
    server.routes["/f.bin"] = ok()
    server.routes["/moved"] = redirect("/simple/x/")
    with HttpClient() as client:
        for _ in range(5):
            assert get_document(server.url("/simple/x/"), client=client, policy=FAST) == (
                b"page",
                "text/html",
            )
        assert get_document(server.url("/empty"), client=client, policy=FAST)[0] == b""
        assert get_document(server.url("/moved"), client=client, policy=FAST)[0] == b"page"
        fetch(server.url("/f.bin"), SHA, cache=tmp_path, client=client, policy=FAST)
        assert len(server.seen) == 9
        assert server.connections == 1
    _wait_for(lambda: server.closed == 1)  # close() closed the idle connection


def test_shared_client_reuses_connections(server: _Server, tmp_path: Path) -> None:
    # Calls given no client share one: index pages then downloads, one connection.
    server.routes["/simple/x/"] = _page()
    server.routes["/f.bin"] = ok()
    for _ in range(3):
        get_document(server.url("/simple/x/"), policy=FAST)
    fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=FAST)
    assert len(server.seen) == 4
    assert server.connections == 1


def test_connections_are_reused_over_tls(tls_server: _Server, trusting: HttpClient) -> None:
    tls_server.routes["/simple/x/"] = _page()
    for _ in range(4):
        get_document(tls_server.url("/simple/x/"), client=trusting, policy=FAST)
    assert tls_server.connections == 1


def test_kept_alive_connection_does_not_wait_for_delayed_acks(server: _Server) -> None:
    # The test server writes headers and body separately without TCP_NODELAY, as
    # Python's http.server does: unless the client ACKs at once, each request on a
    # kept-alive connection waits 40 ms for a delayed ACK (50 requests: 2 s or more).
    server.routes["/simple/x/"] = _page(b"x" * 3000)
    with HttpClient() as client:
        t0 = time.monotonic()
        for _ in range(50):
            get_document(server.url("/simple/x/"), client=client, policy=FAST)
        elapsed = time.monotonic() - t0
    assert server.connections == 1
    assert elapsed < 1.5, f"50 requests took {elapsed:.2f} s"


def test_reconnect_after_server_closed_idle_connection(
    server: _Server, caplog: pytest.LogCaptureFixture
) -> None:
    # The server answers without saying it will close, then closes the idle connection
    # (a keep-alive timeout): the next request goes on a new connection, no retry spent.
    def then_close(h: _Handler, n: int) -> None:
        _page()(h, n)
        h.close_connection = True

    server.routes["/a"] = then_close
    server.routes["/b"] = _page()
    with HttpClient() as client:
        get_document(server.url("/a"), client=client, policy=FAST)
        _wait_for(lambda: server.closed == 1)
        assert get_document(server.url("/b"), client=client, policy=FAST)[0] == b"page"
    assert server.connections == 2
    assert server.hits["/b"] == 1
    assert "attempt" not in caplog.text


def test_reconnect_when_reused_connection_drops_the_request(
    server: _Server, caplog: pytest.LogCaptureFixture
) -> None:
    # The race that no check before sending can see: the server closes the reused
    # connection on receiving the request. Sent again once on a new connection; that is
    # no attempt of the retry policy.
    def drop(h: _Handler, n: int) -> None:
        h.close_connection = True

    server.routes["/a"] = _page()
    server.routes["/b"] = seq(drop, _page())
    policy = DownloadPolicy(retries=0, timeout=5, progress=False)
    with HttpClient() as client:
        get_document(server.url("/a"), client=client, policy=policy)
        with caplog.at_level(logging.DEBUG, logger="nativelib.net.http"):
            assert get_document(server.url("/b"), client=client, policy=policy)[0] == b"page"
    assert server.hits["/b"] == 2
    assert server.connections == 2
    assert "closed by the server; reconnecting" in caplog.text
    assert "attempt" not in caplog.text


def test_dropped_request_on_a_new_connection_is_a_retried_failure(
    server: _Server, caplog: pytest.LogCaptureFixture
) -> None:
    def drop(h: _Handler, n: int) -> None:
        h.close_connection = True

    caplog.set_level(logging.INFO, logger="nativelib")
    server.routes["/b"] = seq(drop, _page())
    with HttpClient() as client:
        assert get_document(server.url("/b"), client=client, policy=FAST)[0] == b"page"
    assert "attempt 1 of 3 failed: connection failed" in caplog.text
    policy = DownloadPolicy(retries=0, timeout=5, progress=False)
    server.routes["/c"] = drop
    with pytest.raises(SourceError, match="failed after 1 attempt; last error: connection failed"):
        get_document(server.url("/c"), policy=policy)


def test_interrupted_response_does_not_poison_the_pool(server: _Server, tmp_path: Path) -> None:
    # A body abandoned half-way (size limit) or broken: its connection is not reused.
    server.routes["/big"] = ok(BODY)
    server.routes["/simple/x/"] = _page()
    with HttpClient() as client:
        with pytest.raises(SourceError, match="exceeds 1000"):
            get_document(server.url("/big"), client=client, policy=FAST, max_bytes=1000)
        assert get_document(server.url("/simple/x/"), client=client, policy=FAST)[0] == b"page"
    assert server.connections == 2


def test_client_is_usable_after_close(server: _Server) -> None:
    server.routes["/simple/x/"] = _page()
    client = HttpClient()
    get_document(server.url("/simple/x/"), client=client, policy=FAST)
    client.close()
    get_document(server.url("/simple/x/"), client=client, policy=FAST)
    client.close()
    assert server.connections == 2


# -- TLS settings --------------------------------------------------------------------------


def test_ca_bundle_from_requests_variable(
    tls_server: _Server, cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    tls_server.routes["/simple/x/"] = _page()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert[0]))
    with HttpClient() as client:
        assert get_document(tls_server.url("/simple/x/"), client=client, policy=FAST)[0] == (
            b"page"
        )
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.setenv("CURL_CA_BUNDLE", str(cert[0].parent / "missing.pem"))
    with HttpClient() as client, pytest.raises(SourceError) as e:
        get_document(tls_server.url("/simple/x/"), client=client, policy=FAST)
    assert "cannot load CA certificates from" in e.value.reason
    assert "attempts" not in e.value.reason
    # An explicit verify= beats the environment; verify=False checks nothing.
    with HttpClient(verify=cert[0]) as client:
        get_document(tls_server.url("/simple/x/"), client=client, policy=FAST)
    with HttpClient(verify=False) as client:
        get_document(tls_server.url("/simple/x/"), client=client, policy=FAST)


def test_ssl_context_is_used_as_given(tls_server: _Server, cert: tuple[Path, Path]) -> None:
    tls_server.routes["/simple/x/"] = _page()
    context = ssl.create_default_context(cafile=str(cert[0]))
    with HttpClient(ssl_context=context, verify=False) as client:
        assert client.ssl_context() is context
        get_document(tls_server.url("/simple/x/"), client=client, policy=FAST)
    with (
        HttpClient(ssl_context=ssl.create_default_context()) as client,
        pytest.raises(SourceError, match="TLS certificate verification failed"),
    ):
        get_document(tls_server.url("/simple/x/"), client=client, policy=FAST)


# -- proxies -------------------------------------------------------------------------------


class _ProxyHandler(BaseHTTPRequestHandler):
    """Forwards absolute-URI GETs and tunnels CONNECT; records every request."""

    protocol_version = "HTTP/1.1"
    server: _Proxy

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def _record(self) -> None:
        with self.server.lock:
            self.server.seen.append((self.command, self.path, dict(self.headers)))

    def do_GET(self) -> None:
        self._record()
        parts = urlsplit(self.path)
        if not parts.scheme:  # an origin-form request: a client that forgot it is proxied
            self.send_error(400)
            return
        upstream = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=WAIT)
        drop = {"proxy-authorization", "connection", "host"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in drop}
        upstream.request(
            "GET", parts.path + (f"?{parts.query}" if parts.query else ""), None, headers
        )
        response = upstream.getresponse()
        body = response.read()
        upstream.close()
        self.send_response(response.status, response.reason)
        for k, v in response.getheaders():
            if k.lower() not in {
                "content-length",
                "transfer-encoding",
                "connection",
                "server",
                "date",
            }:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_CONNECT(self) -> None:
        self._record()
        if self.server.refuse:
            self.send_error(self.server.refuse)
            return
        host, _, port = self.path.rpartition(":")
        upstream = socket.create_connection((host, int(port)), timeout=WAIT)
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        ends = [self.connection, upstream]
        try:
            while not self.server.release.is_set():
                ready, _, _ = select.select(ends, [], [], 0.1)
                for end in ready:
                    data = end.recv(65536)
                    if not data:
                        return
                    (upstream if end is self.connection else self.connection).sendall(data)
        except OSError:
            pass
        finally:
            upstream.close()
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.connections = 0
        self.refuse = 0  # the status to answer CONNECT with, instead of a tunnel
        self.lock = threading.Lock()
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def proxy() -> Iterator[_Proxy]:
    srv = _Proxy()
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


def test_http_through_proxy_from_environment(
    server: _Server, proxy: _Proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lower case beats upper case: no_proxy="" lifts the NO_PROXY=127.0.0.1 of the fixture.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")
    monkeypatch.setenv("http_proxy", proxy.url.replace("://", "://pat:pw%3A1@"))
    monkeypatch.setenv("no_proxy", "")
    server.routes["/simple/x/"] = _page()
    server.routes["/f.bin"] = ok()
    url = server.url("/simple/x/?q=1").replace("://", "://alice:pw@")
    assert get_document(url, policy=FAST) == (b"page", "text/html")
    path = fetch(server.url("/f.bin"), SHA, cache=tmp_path, policy=FAST)
    assert path.read_bytes() == BODY
    assert [(m, p) for m, p, _ in proxy.seen] == [
        ("GET", server.url("/simple/x/?q=1")),  # absolute URI, no userinfo
        ("GET", server.url("/f.bin")),
    ]
    headers = proxy.seen[0][2]
    assert headers["Proxy-Authorization"] == _basic("pat", "pw:1")
    assert headers["Authorization"] == _basic("alice", "pw")
    assert headers["Host"] == f"127.0.0.1:{server.port}"
    assert proxy.connections == 1  # the connection to the proxy is kept alive
    assert server.hits["/f.bin"] == 1
    assert all("Proxy-Authorization" not in h for _, h in server.seen)


def test_no_proxy_bypass(server: _Server, proxy: _Proxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.setenv("no_proxy", f"example.org, localhost:{server.port}")
    server.routes["/simple/x/"] = _page()
    get_document(server.url("/simple/x/", host="localhost"), policy=FAST)
    assert proxy.seen == []
    assert server.hits["/simple/x/"] == 1
    get_document(server.url("/simple/x/"), policy=FAST)  # 127.0.0.1 is not exempt
    assert [p for _, p, _ in proxy.seen] == [server.url("/simple/x/")]
    # proxies= given to the client replaces the environment.
    with HttpClient(proxies={}) as client:
        get_document(server.url("/simple/x/"), client=client, policy=FAST)
    with HttpClient(proxies={"all": proxy.url}) as client:
        get_document(server.url("/simple/x/", host="localhost"), client=client, policy=FAST)
    assert len(proxy.seen) == 2
    assert server.hits["/simple/x/"] == 4


def test_https_through_proxy_uses_connect(
    tls_server: _Server, proxy: _Proxy, cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("://", "://pat:pw@"))
    monkeypatch.setenv("no_proxy", "")
    tls_server.routes["/simple/x/"] = _page()
    with HttpClient(verify=cert[0]) as client:
        for _ in range(3):
            assert get_document(tls_server.url("/simple/x/"), client=client, policy=FAST)[0] == (
                b"page"
            )
    [(method, target, headers)] = proxy.seen  # one tunnel for the three requests
    assert (method, target) == ("CONNECT", f"127.0.0.1:{tls_server.port}")
    assert headers["Proxy-Authorization"] == _basic("pat", "pw")
    assert tls_server.connections == 1
    assert "Proxy-Authorization" not in tls_server.seen[0][1]


def test_proxy_refusing_connect_is_not_retried(
    tls_server: _Server, proxy: _Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy.refuse = 407
    monkeypatch.setenv("https_proxy", proxy.url)
    monkeypatch.setenv("no_proxy", "")
    with pytest.raises(SourceError, match=r"proxy refused .*: 407 .*\(not retried\)"):
        get_document(tls_server.url("/simple/x/"), policy=FAST)
    assert len(proxy.seen) == 1
    assert tls_server.connections == 0


def test_unsupported_proxy_is_an_error(server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("all_proxy", "socks5://127.0.0.1:1080")
    monkeypatch.setenv("no_proxy", "")
    with pytest.raises(SourceError, match=r"unsupported proxy 'socks5://127\.0\.0\.1:1080'") as e:
        get_document(server.url("/simple/x/"), policy=FAST)
    assert "attempts" not in e.value.reason
    assert server.hits["/simple/x/"] == 0


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "bypass"),
    [
        ("example.org", 80, "*", True),
        ("example.org", 80, "", False),
        ("example.org", 80, "example.org", True),
        ("pypi.example.org", 443, "example.org", True),
        ("pypi.example.org", 443, ".example.org", True),
        ("pypi.example.org", 443, "*.example.org", True),
        ("badexample.org", 80, "example.org", False),
        ("example.org", 80, "other.net , example.org", True),
        ("example.org", 80, "other.net example.org", True),
        ("example.org", 8080, "example.org:8080", True),
        ("example.org", 80, "example.org:8080", False),
        ("10.1.2.3", 80, "10.0.0.0/8", True),
        ("11.1.2.3", 80, "10.0.0.0/8", False),
        ("example.org", 80, "10.0.0.0/8", False),
        ("::1", 80, "::1", True),
        ("::1", 8080, "[::1]:8080", True),
        ("::1", 80, "[::1]:8080", False),
        ("127.0.0.1", 80, "127.0.0.1,localhost", True),
    ],
)
def test_no_proxy_matching(host: str, port: int, no_proxy: str, bypass: bool) -> None:
    assert _http._bypass(host, port, no_proxy) is bypass


def test_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://upper:1")
    monkeypatch.setenv("https_proxy", "http://lower:2")
    monkeypatch.setenv("ALL_PROXY", "http://all:3")
    monkeypatch.setenv("HTTP_PROXY", "http://cgi:4")
    monkeypatch.setenv("REQUEST_METHOD", "GET")  # in a CGI script HTTP_PROXY is a header
    found = _http._environment_proxies()
    assert (found["https"], found["all"], found["no"]) == (
        "http://lower:2",
        "http://all:3",
        "127.0.0.1,localhost",
    )
    assert "http" not in found


# -- no requests needed ---------------------------------------------------------------------

_CHILD_NO_REQUESTS = """
import sys
from pathlib import Path
for name in ("requests", "urllib3", "certifi"):
    sys.modules[name] = None  # "import requests" raises ImportError
from nativelib.net.download import DownloadPolicy, fetch, get_document
from nativelib.resolver import candidates
page, digest, cache = sys.argv[1:4]
policy = DownloadPolicy(retries=0, timeout=30)
body, content_type = get_document(page, policy=policy)
path = fetch(page.replace("/simple/x/", "/f.bin"), digest, cache=Path(cache), policy=policy)
print(len(body), content_type, path.stat().st_size)
"""


def test_no_requests_needed(server: _Server, tmp_path: Path) -> None:
    server.routes["/simple/x/"] = _page()
    server.routes["/f.bin"] = ok()
    out = subprocess.run(
        [sys.executable, "-c", _CHILD_NO_REQUESTS, server.url("/simple/x/"), SHA, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["4", "text/html", str(len(BODY))]


# -- the command line shows retries with -v -----------------------------------------------


@pytest.mark.parametrize("verbose", [True, False])
def test_cli_verbose_shows_a_retry(
    server: _Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    verbose: bool,
) -> None:
    from nativelib.cli import main  # noqa: PLC0415

    monkeypatch.setenv("NATIVELIB_CACHE_DIR", str(tmp_path / "cache"))
    server.routes["/libgomp1.deb"] = seq(status(503), ok())
    url = server.url("/libgomp1.deb")
    argv = ["build", "gomp", "--from", f"deb:{url}#sha256={SHA}", "-w", str(tmp_path / "out")]
    # The body is no .deb: the build fails after the download, which is what is looked at.
    assert main(["-v", *argv] if verbose else argv) == 2
    err = capsys.readouterr().err
    assert server.hits["/libgomp1.deb"] == 2
    retry = f"{url}: attempt 1 of 5 failed: HTTP 503"
    assert (retry in err) is verbose
    assert ("downloading " + url in err) is verbose
    assert "error: nativelib-gomp: " in err
