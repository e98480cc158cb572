"""Downloads pinned by sha256 into a content-addressed cache.

Every file that the runtime wheels are built from comes through :func:`fetch`: a URL and
the sha256 that the index (conda ``repodata.json``, the PyPI JSON or simple API) or the
recipe gives for it. The cache holds ``<cache>/downloads/<sha256>/<filename>``, so one
digest is one directory whatever URL it came from.

Guarantees:

- A file at a final cache path has been verified against its sha256 when it was written,
  and is verified again before every reuse; a corrupt entry is removed and downloaded
  again. A body whose sha256 differs is never published.
- The body is streamed into ``<filename>.<random>.partial`` next to the final path and
  published with :func:`os.replace`, so a reader never sees partial content at the final
  path, and two concurrent fetches of one file both succeed (the later rename replaces
  the earlier identical file). ``kill -9`` at any moment leaves at most a ``.partial``
  file; those older than :data:`STALE_PARTIAL_SECONDS` are removed by the next fetch into
  the same directory (the rule of :mod:`nativelib.leftovers`, shared with the wheel
  writer's temporary files and the build and repair trees). No lock is taken.
- Transient failures (connection errors, timeouts, HTTP 5xx, 408, 429, a body shorter
  than its ``Content-Length``, a broken chunked body) are retried with exponential
  backoff; other HTTP errors, a certificate that does not verify and a complete body with
  the wrong sha256 are not.
- Redirects are followed here, at most :data:`MAX_REDIRECTS`, and a redirect from
  ``https`` to ``http`` is refused. Credentials (the URL's ``user:password@`` or the
  ``.netrc`` entry for its host) are not sent to another origin.
- Bodies are asked for as served (``Accept-Encoding: identity``): the sha256 and the
  ``Content-Length`` are about those bytes.

The transport is :class:`~nativelib.net.http.HttpClient` (standard library only: a base
install resolves against an index without ``requests``). Calls given no ``client`` share
one, so consecutive downloads and index pages reuse their connections; pass your own for
other certificates (``verify``), proxies or no ``.netrc``.

Logs go through :mod:`logging` (``nativelib.net.download``): retries at INFO, cache hits
and redirects at DEBUG, corrupt cache entries at WARNING; ``nativelib -v`` shows INFO and
``-vv`` DEBUG. The progress line goes to stderr, on a TTY only unless
:attr:`DownloadPolicy.progress` says otherwise. An HTTP error status is raised as
:class:`~nativelib.errors.HttpError`, whose ``status`` callers branch on.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import re
import secrets
import ssl
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeVar
from urllib.parse import unquote, urljoin, urlsplit

from nativelib.archive.members import name_problem
from nativelib.digest import is_sha256
from nativelib.errors import HttpError, SourceError
from nativelib.leftovers import STALE_SECONDS, remove_stale
from nativelib.net.http import HttpClient, HttpResponse, default_client

__all__ = [
    "MAX_REDIRECTS",
    "STALE_PARTIAL_SECONDS",
    "DownloadPolicy",
    "HttpClient",
    "cache_dir",
    "fetch",
    "get_document",
]

#: Redirects followed for one request before giving up.
MAX_REDIRECTS = 10
#: A ``.partial`` file not modified for this long belongs to a download that died; a live
#: download writes at least every ``DownloadPolicy.timeout`` seconds or fails.
STALE_PARTIAL_SECONDS = STALE_SECONDS
#: Suffix of the temporary files that bodies are streamed into.
PARTIAL_SUFFIX = ".partial"

_CHUNK = 1 << 16
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_RETRY_STATUSES = frozenset({408, 429})
# What http.client raises when a proxy answers CONNECT with an error status.
_TUNNEL_RE = re.compile(r"Tunnel connection failed: (\d{3})")
# Room left in a 255-byte file name for ".<16 hex>.partial".
_MAX_NAME_BYTES = 200
_PROGRESS_INTERVAL = 0.1

_T = TypeVar("_T")
_log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """The cache root: ``$NATIVELIB_CACHE_DIR``, else ``$XDG_CACHE_HOME/nativelib``, else
    ``~/.cache/nativelib``.

    A relative ``$XDG_CACHE_HOME`` is ignored, as the XDG base directory specification
    says. Nothing is created here.
    """
    own = os.environ.get("NATIVELIB_CACHE_DIR")
    if own:
        return Path(own)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "nativelib"
    return Path.home() / ".cache" / "nativelib"


@dataclass(frozen=True)
class DownloadPolicy:
    """How hard :func:`fetch` tries.

    ``retries`` is the number of attempts after the first; the wait before retry ``n``
    (1-based) is ``backoff * 2 ** (n - 1)`` seconds. ``timeout`` bounds the connection and
    every single read, in seconds (not the whole download). ``progress``: ``True`` or
    ``False`` forces the progress line on or off; ``None`` shows it when stderr is a TTY.
    """

    retries: int = 4
    backoff: float = 0.5
    timeout: float = 60.0
    progress: bool | None = None

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, not {self.retries!r}")
        if self.backoff < 0:
            raise ValueError(f"backoff must be >= 0, not {self.backoff!r}")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be > 0, not {self.timeout!r}")


def fetch(
    url: str,
    sha256: str,
    *,
    filename: str | None = None,
    cache: Path | None = None,
    client: HttpClient | None = None,
    policy: DownloadPolicy = DownloadPolicy(),
) -> Path:
    """Return the path of the verified cached copy of ``url``, downloading it if needed.

    ``sha256`` is the expected digest (64 hex digits). The file is stored as
    ``<cache>/downloads/<sha256>/<filename>``, where ``filename`` defaults to the last
    component of the URL path. ``cache`` defaults to :func:`cache_dir`. ``client`` lets
    the caller set certificates (``verify``), proxies or credentials; the shared
    :func:`~nativelib.net.http.default_client` is used otherwise.

    Raises :class:`~nativelib.errors.SourceError` naming the URL and the reason: a bad
    ``sha256``, URL or file name (before any network access), an HTTP error, a refused
    redirect, a sha256 mismatch, or a transient failure that outlived every retry.
    """
    digest = _check_sha256(url, sha256)
    _check_url(url, url)
    name = _file_name(url, filename)
    root = cache if cache is not None else cache_dir()
    entry = root / "downloads" / digest
    final = entry / name
    _make_dirs(url, root, entry)
    _remove_stale_partials(entry)
    if _cached(url, final, digest):
        _log.info("%s: cache hit %s", url, final)
        return final
    _log.info("downloading %s", url)
    transport = client if client is not None else default_client()
    _with_retries(url, policy, lambda: _attempt(url, digest, final, transport, policy))
    return final


#: The largest index document get_document reads (Debian's Packages.xz is ~9 MB,
#: conda-forge's linux-64 repodata.json several hundred MB uncompressed).
MAX_DOCUMENT = 1 << 30
#: Accept header for index documents: PEP 691 JSON preferred, PEP 503 HTML accepted.
SIMPLE_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1, */*;q=0.01"


def get_document(
    url: str,
    *,
    client: HttpClient | None = None,
    policy: DownloadPolicy = DownloadPolicy(),
    accept: str = SIMPLE_ACCEPT,
    max_bytes: int = MAX_DOCUMENT,
) -> tuple[bytes, str]:
    """An index document that has no sha256 pin (a Packages index, repodata.json, a
    simple-API page): ``(body, content type)``. Same redirect and retry rules as
    :func:`fetch`; nothing is cached or written to disk. A body longer than ``max_bytes``
    is an error.
    """
    _check_url(url, url)
    transport = client if client is not None else default_client()

    def once() -> tuple[bytes, str]:
        response = _open(url, transport, policy, accept)
        with response:
            total = _content_length(response)
            if total is not None and total > max_bytes:
                raise SourceError(url, f"document of {total} bytes exceeds {max_bytes}")
            chunks: list[bytes] = []
            done = 0
            while True:
                try:
                    block = response.read1(_CHUNK)
                except (http.client.HTTPException, OSError, ValueError) as e:
                    why = (
                        f"read timed out after {policy.timeout:g} s"
                        if isinstance(e, TimeoutError)
                        else _why(e)
                    )
                    raise _Transient(f"connection broken after {done} bytes: {why}") from e
                if not block:
                    break
                done += len(block)
                if done > max_bytes:
                    raise SourceError(url, f"document exceeds {max_bytes} bytes")
                chunks.append(block)
            if total is not None and done != total:
                raise _Transient(f"body ended after {done} of {total} bytes")
            return b"".join(chunks), response.headers.get("Content-Type", "")

    return _with_retries(url, policy, once)


# -- validation ---------------------------------------------------------------------------


def _check_sha256(url: str, sha256: object) -> str:
    # Upper case is accepted here (and folded); an ASCII check first, so that no other
    # character can fold into a hex digit.
    if not isinstance(sha256, str) or not sha256.isascii() or not is_sha256(sha256.lower()):
        raise SourceError(url, f"sha256 must be 64 hexadecimal digits, not {sha256!r}")
    return sha256.lower()


def _check_url(url: str, candidate: str) -> None:
    """``candidate`` (``url`` itself or a redirect target) must be an http(s) URL."""
    what = "URL" if candidate == url else f"redirect target {candidate!r}"
    parts = urlsplit(candidate)
    if parts.scheme not in ("http", "https"):
        raise SourceError(url, f"{what} must be http:// or https://, not {parts.scheme!r}")
    if not parts.hostname:
        raise SourceError(url, f"{what} has no host")
    try:
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a valid number
    except ValueError as e:
        raise SourceError(url, f"{what} has a bad port: {e}") from e


def _name_problem(name: str) -> str | None:
    """A cache file name: one component that passes the one member-name rule."""
    if not name:
        return "empty"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if name.startswith("."):
        return "starts with '.'"
    problem = name_problem(name, canonical=True)
    if problem is not None:
        return problem
    if name.endswith(PARTIAL_SUFFIX):
        return f"ends with {PARTIAL_SUFFIX!r}, the suffix of temporary files"
    if len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
        return f"longer than {_MAX_NAME_BYTES} bytes"
    return None


def _file_name(url: str, filename: str | None) -> str:
    if filename is None:
        name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        problem = _name_problem(name)
        if problem:
            raise SourceError(
                url,
                f"cannot take a file name from the URL path ({name!r}: {problem}); pass filename=",
            )
        return name
    problem = _name_problem(filename)
    if problem:
        raise SourceError(url, f"bad file name {filename!r}: {problem}")
    return filename


# -- the cache ----------------------------------------------------------------------------


def _make_dirs(url: str, root: Path, entry: Path) -> None:
    try:
        os.makedirs(root, mode=0o755, exist_ok=True)
        for d in (entry.parent, entry):
            try:
                os.mkdir(d, 0o755)
            except FileExistsError:
                if not d.is_dir():
                    raise
    except OSError as e:
        raise SourceError(url, f"cannot create cache directory {str(entry)!r}: {e}") from e


def _remove_stale_partials(entry: Path) -> None:
    """Remove ``.partial`` files in ``entry`` left by downloads that died (the one rule of
    :mod:`nativelib.leftovers`; these names carry no owner pid, so their age decides)."""
    remove_stale(entry, ".+" + re.escape(PARTIAL_SUFFIX), STALE_PARTIAL_SECONDS)


def _cached(url: str, final: Path, digest: str) -> bool:
    """Whether ``final`` holds the right content; a wrong entry is removed."""
    try:
        fd = os.open(final, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError as e:
        # ELOOP: a symlink where a file should be; not ours, and not trusted.
        if os.path.islink(final):
            _log.warning("%s: cache entry %s is a symlink; removing it", url, final)
            _unlink_quietly(final)
            return False
        raise SourceError(url, f"cannot read cache entry {str(final)!r}: {e}") from e
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise SourceError(
            url, f"cache entry {str(final)!r} is not a regular file; remove it by hand"
        )
    with os.fdopen(fd, "rb") as f:
        h = hashlib.sha256()
        while block := f.read(_CHUNK):
            h.update(block)
    got = h.hexdigest()
    if got == digest:
        return True
    _log.warning(
        "%s: cached %s has sha256 %s, expected %s; downloading it again", url, final, got, digest
    )
    # Remove only the file that was checked: a concurrent fetch may have just published a
    # good copy at the same path.
    try:
        now = os.lstat(final)
    except FileNotFoundError:
        return False
    if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
        _unlink_quietly(final)
    return False


def _unlink_quietly(path: Path | str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# -- downloading --------------------------------------------------------------------------


class _Transient(Exception):
    """A failure worth another attempt; ``reason`` goes into the final error, and
    ``status`` is the HTTP status when the failure was one."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def _with_retries(url: str, policy: DownloadPolicy, once: Callable[[], _T]) -> _T:
    """``once()``, retried with exponential backoff while it fails transiently."""
    attempts = policy.retries + 1
    last = ""
    status: int | None = None
    for attempt in range(1, attempts + 1):
        try:
            return once()
        except _Transient as e:
            last, status = e.reason, e.status
        if attempt < attempts:
            delay = policy.backoff * 2 ** (attempt - 1)
            _log.info(
                "%s: attempt %d of %d failed: %s; retrying in %.2g s",
                url,
                attempt,
                attempts,
                last,
                delay,
            )
            time.sleep(delay)
    plural = "attempt" if attempts == 1 else "attempts"
    reason = f"failed after {attempts} {plural}; last error: {last}"
    hint = "the server or the network is failing: try again later, or use another index or mirror"
    if status is not None:
        raise HttpError(url, reason, status, hint=hint)
    raise SourceError(url, reason, hint=hint)


def _attempt(
    url: str, digest: str, final: Path, client: HttpClient, policy: DownloadPolicy
) -> None:
    response = _open(url, client, policy)
    with response:
        _receive(url, response, digest, final, policy)


def _origin(u: str) -> tuple[str, str, int | None]:
    parts = urlsplit(u)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _open(
    url: str, client: HttpClient, policy: DownloadPolicy, accept: str | None = None
) -> HttpResponse:
    """GET ``url``, following redirects; the open response of status 200."""
    current = url
    origin = _origin(url)
    authorization = client.credentials(url)
    # The bytes as served are what the sha256 and Content-Length are about.
    headers = {"Accept-Encoding": "identity", "Accept": accept or "*/*"}
    for _ in range(MAX_REDIRECTS + 1):
        try:
            response = client.get(
                current,
                headers,
                timeout=policy.timeout,
                authorization=authorization if _origin(current) == origin else None,
            )
        except ssl.SSLCertVerificationError as e:
            raise SourceError(
                url, f"TLS certificate verification failed for {current!r}: {e}"
            ) from e
        except ssl.SSLError as e:
            raise _Transient(f"TLS error from {current!r}: {e}") from e
        except TimeoutError as e:
            raise _Transient(f"timed out after {policy.timeout:g} s: {current!r}: {e}") from e
        except (ValueError, http.client.InvalidURL) as e:
            raise SourceError(url, f"request to {current!r} failed: {_why(e)}") from e
        except (OSError, http.client.HTTPException) as e:
            tunnel = _TUNNEL_RE.match(str(e))
            if tunnel and not _transient_status(int(tunnel.group(1))):
                raise SourceError(url, f"proxy refused {current!r}: {e} (not retried)") from e
            raise _Transient(f"connection failed: {current!r}: {_why(e)}") from e
        status = response.status
        if status in _REDIRECT_STATUSES:
            location = response.headers.get("Location")
            response.close()
            if not location:
                raise SourceError(url, f"HTTP {status} from {current!r} without a Location")
            target = urljoin(current, location)
            _check_url(url, target)
            if urlsplit(current).scheme == "https" and urlsplit(target).scheme == "http":
                raise SourceError(
                    url,
                    f"refusing redirect from {current!r} to {target!r}: "
                    "downgrade from https to http",
                )
            _log.debug("%s: HTTP %d redirect to %s", url, status, target)
            current = target
            continue
        if status == 200:
            return response
        response.close()
        where = "" if current == url else f" from {current!r}"
        reason = f"HTTP {status} {response.reason or ''}".rstrip() + where
        if _transient_status(status):
            raise _Transient(reason, status)
        raise HttpError(url, f"{reason} (not retried)", status, hint=_status_hint(status))
    raise SourceError(url, f"more than {MAX_REDIRECTS} redirects; the last was to {current!r}")


def _status_hint(status: int) -> str:
    if status in (401, 403):
        return "the server wants credentials: put them in ~/.netrc (or $NETRC) for its host"
    if status in (404, 410):
        return "the file is not (or no longer) there: check the URL, or the index it came from"
    return "check the URL"


def _transient_status(status: int) -> bool:
    return status >= 500 or status in _RETRY_STATUSES


def _why(e: BaseException) -> str:
    """``e`` in words: its message, else its type (``IncompleteRead`` has no message)."""
    return str(e) or type(e).__name__


def _content_length(response: HttpResponse) -> int | None:
    if "Transfer-Encoding" in response.headers:
        return None
    value = response.headers.get("Content-Length", "").strip()
    return int(value) if value.isdigit() else None


def _create_partial(url: str, final: Path) -> tuple[int, str]:
    # 64 random bits: concurrent fetches never pick the same name in practice, and O_EXCL
    # turns the impossible collision into an error rather than shared content.
    partial = f"{final}.{secrets.token_hex(8)}{PARTIAL_SUFFIX}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(partial, flags, 0o644), partial
    except OSError as e:
        raise SourceError(url, f"cannot create {partial!r}: {e}") from e


def _receive(
    url: str, response: HttpResponse, digest: str, final: Path, policy: DownloadPolicy
) -> None:
    total = _content_length(response)
    fd, partial = _create_partial(url, final)
    show = policy.progress if policy.progress is not None else _is_tty(sys.stderr)
    progress = _Progress(final.name, total, sys.stderr) if show else None
    published = False
    try:
        h = hashlib.sha256()
        done = 0
        while True:
            try:
                # read1 returns what has arrived, so a stalled body still counts what it sent.
                block = response.read1(_CHUNK)
            except (http.client.HTTPException, OSError, ValueError) as e:
                if isinstance(e, TimeoutError):
                    why = f"read timed out after {policy.timeout:g} s"
                else:
                    why = f"connection broken: {_why(e)}"
                if total is not None:
                    why = f"body ended after {done} of {total} bytes ({why})"
                raise _Transient(why) from e
            if not block:
                break
            _write_all(url, fd, partial, block)
            h.update(block)
            done += len(block)
            if progress:
                progress.update(done)
        try:
            os.close(fd)
        except OSError as e:
            raise SourceError(url, f"cannot write {partial!r}: {e}") from e
        finally:
            fd = -1
        if total is not None and done != total:
            raise _Transient(
                f"body ended after {done} of {total} bytes announced by Content-Length"
            )
        got = h.hexdigest()
        if got != digest:
            raise SourceError(
                url,
                f"sha256 mismatch: expected {digest}, got {got} "
                f"(complete body of {done} bytes; not retried)",
            )
        # No fsync: after a power loss an entry may be empty or garbled, but every entry is
        # verified again before it is used.
        try:
            os.replace(partial, final)
        except OSError as e:
            raise SourceError(url, f"cannot move {partial!r} to {str(final)!r}: {e}") from e
        published = True
    finally:
        if fd >= 0:
            os.close(fd)
        if progress:
            progress.finish()
        if not published:
            _unlink_quietly(partial)


def _write_all(url: str, fd: int, partial: str, data: bytes) -> None:
    """Write all of ``data`` (unbuffered, so that every error surfaces here)."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as e:
        raise SourceError(url, f"cannot write {partial!r}: {e}") from e


# -- progress -----------------------------------------------------------------------------


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


class _Progress:
    """One line on ``stream``, rewritten with ``\\r``: name, bytes done / total, percent."""

    def __init__(self, name: str, total: int | None, stream: TextIO) -> None:
        self.name = name
        self.total = total
        self.stream = stream
        self.done = 0
        self.width = 0
        self.last = 0.0
        self._draw()

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if now - self.last >= _PROGRESS_INTERVAL:
            self._draw()

    def finish(self) -> None:
        self._draw()
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self) -> None:
        self.last = time.monotonic()
        if self.total:
            pct = min(100, self.done * 100 // self.total)
            text = f"{self.name}: {_size(self.done)} / {_size(self.total)} ({pct}%)"
        else:
            text = f"{self.name}: {_size(self.done)}"
        pad = " " * max(0, self.width - len(text))
        self.width = len(text)
        self.stream.write(f"\r{text}{pad}")
        self.stream.flush()
