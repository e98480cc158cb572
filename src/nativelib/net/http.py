"""A small HTTP/1.1 client on the standard library: keep-alive, TLS, proxies, credentials.

:class:`HttpClient` is the transport under :mod:`nativelib.net.download`. It
sends one ``GET`` and hands back the open response; it follows no redirects and retries
nothing, so that the caller decides where credentials go and what is worth another
attempt. What it owns:

- A pool of persistent connections, keyed by (scheme, host, port, proxy). A connection
  goes back to the pool only when its response was read to the end and the server did not
  ask to close it. An idle connection that the server closed meanwhile is replaced
  transparently, once, before any byte of the response: servers close idle connections
  whenever they like, so that is not a failure of the request.
- The TLS context: ``ssl.create_default_context()`` (which honours ``SSL_CERT_FILE`` and
  ``SSL_CERT_DIR``), or the bundle that ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` names,
  or what the caller gives (``verify``, ``ssl_context``). Made at the first ``https`` URL.
- Proxies from the environment (``http_proxy``, ``https_proxy``, ``all_proxy``,
  ``no_proxy``, either case, lower case winning), read at every request. Plain ``http``
  goes to the proxy as an absolute-URI request; ``https`` through a ``CONNECT`` tunnel.
  Only ``http://`` proxies are supported.
- Credentials: the URL's ``user:password@``, else the ``~/.netrc`` (or ``$NETRC``) entry
  for its host, as Basic auth: :meth:`HttpClient.credentials` finds them and the caller
  passes them to :meth:`HttpClient.get` for the requests that go to their origin.

Thread-safe: connections are taken from the pool under a lock and used by one thread at
a time. After a fork the child does not touch the parent's pooled connections.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import logging
import os
import select
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

from nativelib import __version__

if TYPE_CHECKING:
    from netrc import netrc as Netrc
    from urllib.parse import SplitResult

__all__ = ["HttpClient", "HttpResponse", "default_client"]

#: Idle connections kept per (scheme, host, port, proxy).
MAX_IDLE = 8
#: Bytes of an unread body (a redirect or error page) read so that its connection can be
#: reused; a longer rest closes the connection instead.
_DRAIN = 1 << 16
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Reused connections that fail with these before the response starts were closed by the
# server while idle.
_STALE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
# Characters left as they are in a request target besides letters, digits and "-._~":
# RFC 3986 sub-delims, ":@/?" and "%" (a URL arrives already percent-encoded, or not).
_TARGET_SAFE = "!$&'()*+,;=:@/?%"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Proxy:
    host: str
    port: int
    auth: str | None  # the Proxy-Authorization value


_Key = tuple[str, str, int, "_Proxy | None"]


class HttpResponse:
    """An open response: ``status``, ``reason``, ``headers``; the body through
    :meth:`read1`. :meth:`close` (or leaving the ``with`` block) gives the connection back
    to its pool when it can serve another request, and closes it otherwise.
    """

    def __init__(
        self,
        client: HttpClient,
        key: _Key,
        conn: http.client.HTTPConnection,
        raw: http.client.HTTPResponse,
    ) -> None:
        self.status = raw.status
        self.reason = raw.reason
        self.headers = raw.headers
        self._client = client
        self._key = key
        self._conn: http.client.HTTPConnection | None = conn
        self._raw = raw
        self._broken = False

    def read1(self, n: int) -> bytes:
        """Up to ``n`` bytes of the body, with at most one read from the socket; ``b""``
        at its end (or where the server closed a body without a declared length)."""
        try:
            return self._raw.read1(n)
        except BaseException:
            self._broken = True
            raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        raw = self._raw
        reusable = not raw.will_close and not self._broken
        if reusable and not raw.isclosed():
            try:
                reusable = _drain(raw)
            except (OSError, http.client.HTTPException, ValueError):
                reusable = False
        raw.close()
        if reusable:
            self._client._checkin(self._key, conn)
        else:
            conn.close()

    def __enter__(self) -> HttpResponse:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _drain(raw: http.client.HTTPResponse) -> bool:
    """Read the rest of a short body; whether it ended (so the connection can be reused).

    Also for a body already read to its ``Content-Length``: ``read1`` never marks that
    one as finished, ``read`` does.
    """
    if raw.length is not None:
        if raw.length > _DRAIN:
            return False
        raw.read()
        return raw.isclosed()
    left = _DRAIN
    while left > 0 and not raw.isclosed():
        block = raw.read1(left)
        if not block:
            break
        left -= len(block)
    return raw.isclosed()


class HttpClient:
    """Keep-alive HTTP(S) connections, TLS settings, proxies and credentials.

    ``verify``: ``True`` (the default) checks certificates against the default CA store
    or ``$REQUESTS_CA_BUNDLE`` / ``$CURL_CA_BUNDLE``; a path names a CA bundle file or a
    directory of hashed certificates instead; ``False`` checks nothing. ``ssl_context``,
    when given, is used as it is and ``verify`` is ignored. ``proxies`` maps a scheme
    (``"http"``, ``"https"``, ``"all"``) to a proxy URL and ``"no"`` to a ``no_proxy``
    list; ``None`` reads them from the environment at each request. ``netrc``: whether
    :meth:`credentials` looks in ``$NETRC`` or ``~/.netrc`` (read again when it changes).
    The TLS context, and so ``$REQUESTS_CA_BUNDLE``, is settled at the first ``https`` URL.

    :meth:`close` closes the idle connections; the client stays usable.
    """

    def __init__(
        self,
        *,
        verify: str | Path | bool = True,
        ssl_context: ssl.SSLContext | None = None,
        proxies: Mapping[str, str] | None = None,
        netrc: bool = True,
        user_agent: str = f"pynativelib/{__version__}",
    ) -> None:
        self.verify = verify
        self.proxies = proxies
        self.netrc = netrc
        self.user_agent = user_agent
        self._context = ssl_context
        self._lock = threading.Lock()
        self._idle: dict[_Key, list[http.client.HTTPConnection]] = {}
        self._pid = os.getpid()
        self._netrc_stamp: tuple[str, int, int] | None = None
        self._netrc_data: Netrc | None = None

    # -- requests -------------------------------------------------------------------------

    def get(
        self,
        url: str,
        headers: Mapping[str, str] = {},
        *,
        timeout: float,
        authorization: str | None = None,
    ) -> HttpResponse:
        """Send ``GET url`` and return the response once its headers have arrived.

        ``timeout`` bounds the connection and every read, in seconds. ``authorization``
        is sent as the ``Authorization`` header (see :meth:`credentials`); the URL's own
        ``user:password@`` is never sent by itself. Raises what :mod:`http.client`,
        :mod:`socket` and :mod:`ssl` raise (:class:`OSError`, :class:`ssl.SSLError`,
        :class:`http.client.HTTPException`), and :class:`ValueError` for a URL or proxy
        setting that no request can be made with.
        """
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname
        if scheme not in _DEFAULT_PORTS or not host:
            raise ValueError(f"not an http(s) URL with a host: {url!r}")
        port = parts.port or _DEFAULT_PORTS[scheme]
        proxy = self._proxy(scheme, host, port)
        target = quote(parts.path or "/", safe=_TARGET_SAFE)
        if parts.query:
            target += "?" + quote(parts.query, safe=_TARGET_SAFE)
        send = {"User-Agent": self.user_agent, **headers}
        if authorization is not None:
            send["Authorization"] = authorization
        if proxy is not None and scheme == "http":
            target = f"http://{parts.netloc.rpartition('@')[2]}{target}"
            if proxy.auth is not None:
                send["Proxy-Authorization"] = proxy.auth
        key: _Key = (scheme, host, port, proxy)
        conn = self._checkout(key)
        if conn is not None:
            try:
                return self._send(key, conn, target, send, timeout)
            except _STALE:
                _log.debug("%s: idle connection was closed by the server; reconnecting", url)
        return self._send(key, self._connect(key, timeout), target, send, timeout)

    def _send(
        self,
        key: _Key,
        conn: http.client.HTTPConnection,
        target: str,
        headers: Mapping[str, str],
        timeout: float,
    ) -> HttpResponse:
        if conn.sock is not None:
            conn.timeout = timeout
            conn.sock.settimeout(timeout)
        try:
            conn.request("GET", target, headers=headers)
            _quick_ack(conn)
            raw = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        return HttpResponse(self, key, conn, raw)

    def credentials(self, url: str) -> str | None:
        """The ``Authorization`` value for ``url``: Basic auth from its ``user:password@``,
        else from the netrc entry for its host (when ``netrc`` is on); ``None`` without."""
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:
            user, password = unquote(parts.username or ""), unquote(parts.password or "")
        else:
            found = self._from_netrc(parts)
            if found is None:
                return None
            user, password = found
        return _basic(user, password)

    # -- the pool ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close every idle connection (responses still open close theirs themselves)."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _checkout(self, key: _Key) -> http.client.HTTPConnection | None:
        with self._lock:
            if self._pid != os.getpid():
                # A forked child: the sockets are shared with the parent; leave them to it.
                self._idle, self._pid = {}, os.getpid()
            idle = self._idle.get(key)
            while idle:
                conn = idle.pop()
                if _idle_and_open(conn):
                    return conn
                conn.close()
        return None

    def _checkin(self, key: _Key, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if self._pid == os.getpid() and len(idle) < MAX_IDLE:
                idle.append(conn)
                return
        conn.close()

    def _connect(self, key: _Key, timeout: float) -> http.client.HTTPConnection:
        scheme, host, port, proxy = key
        if scheme == "http":
            if proxy is None:
                return http.client.HTTPConnection(host, port, timeout=timeout)
            return http.client.HTTPConnection(proxy.host, proxy.port, timeout=timeout)
        context = self.ssl_context()
        if proxy is None:
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        conn = http.client.HTTPSConnection(proxy.host, proxy.port, timeout=timeout, context=context)
        tunnel = {"Proxy-Authorization": proxy.auth} if proxy.auth is not None else None
        conn.set_tunnel(host, port, headers=tunnel)
        return conn

    # -- TLS, proxies, netrc ----------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context of every ``https`` connection (made at the first call).

        Raises :class:`ValueError` when the CA bundle named by ``verify`` or by the
        environment cannot be loaded.
        """
        with self._lock:
            if self._context is None:
                self._context = _make_context(self.verify)
            return self._context

    def _proxy(self, scheme: str, host: str, port: int) -> _Proxy | None:
        table = self.proxies if self.proxies is not None else _environment_proxies()
        url = table.get(scheme) or table.get("all")
        if not url or _bypass(host.lower(), port, table.get("no", "")):
            return None
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"unsupported proxy {url!r}: only http://HOST[:PORT] proxies work")
        auth = None
        if parts.username is not None:
            auth = _basic(unquote(parts.username), unquote(parts.password or ""))
        return _Proxy(parts.hostname, parts.port or 80, auth)

    def _from_netrc(self, parts: SplitResult) -> tuple[str, str] | None:
        if not self.netrc or not parts.hostname:
            return None
        path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
        try:
            st = os.stat(path)
        except OSError:
            return None
        stamp = (path, st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._netrc_stamp:
                import netrc  # noqa: PLC0415 -- only when there is one

                try:
                    self._netrc_data = netrc.netrc(path)
                except (OSError, netrc.NetrcParseError) as e:
                    _log.warning("ignoring %s: %s", path, e)
                    self._netrc_data = None
                self._netrc_stamp = stamp
            data = self._netrc_data
        entry = data.authenticators(parts.hostname) if data is not None else None
        if not entry or not (entry[0] or entry[2]):
            return None
        return entry[0] or "", entry[2] or ""


_default: HttpClient | None = None
_default_lock = threading.Lock()


def default_client() -> HttpClient:
    """The client shared by calls that are given none, so that they reuse connections."""
    global _default  # noqa: PLW0603 -- made at first use
    with _default_lock:
        if _default is None:
            _default = HttpClient()
        return _default


def _basic(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def _idle_and_open(conn: http.client.HTTPConnection) -> bool:
    """Whether a pooled connection is still open and has nothing to read.

    Readable means the server closed it (EOF) or sent bytes no request asked for, so it
    is of no use, except over TLS 1.3, where session tickets arrive after the handshake:
    a non-blocking read consumes those and finds no data.
    """
    sock = conn.sock
    if sock is None:
        return False
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        if not poller.poll(0):
            return True
        if not isinstance(sock, ssl.SSLSocket):
            return False
        sock.setblocking(False)
        try:
            sock.recv(1)
        except ssl.SSLWantReadError:
            return True
        finally:
            sock.settimeout(conn.timeout)
        return False
    except (OSError, ValueError):
        return False


def _quick_ack(conn: http.client.HTTPConnection) -> None:
    """ACK the response's first segments at once (Linux; a hint, so errors are ignored).

    A server that writes the headers and then a small body without ``TCP_NODELAY``
    (Python's ``http.server`` does) holds the body back until the headers are ACKed, and
    on a kept-alive connection the kernel delays that ACK by 40 ms: every request would
    wait that long.
    """
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if quickack is not None and conn.sock is not None:
        with contextlib.suppress(OSError):
            conn.sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)


def _make_context(verify: str | Path | bool) -> ssl.SSLContext:
    if verify is True:
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    if isinstance(verify, bool):
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    else:
        path = os.fspath(verify)
        try:
            if os.path.isdir(path):
                context = ssl.create_default_context(capath=path)
            else:
                context = ssl.create_default_context(cafile=path)
        except (OSError, ssl.SSLError) as e:
            raise ValueError(f"cannot load CA certificates from {path!r}: {e}") from e
    context.set_alpn_protocols(["http/1.1"])
    return context


def _environment_proxies() -> dict[str, str]:
    """``{"http": ..., "https": ..., "all": ..., "no": ...}`` from ``*_proxy`` variables;
    a lower-case variable beats its upper-case twin."""
    found: dict[str, str] = {}
    cgi = "REQUEST_METHOD" in os.environ
    for name, value in os.environ.items():
        lower = name.lower()
        if not lower.endswith("_proxy"):
            continue
        if name == "HTTP_PROXY" and cgi:
            continue  # a CGI script's HTTP_PROXY comes from a request header ("httpoxy")
        scheme = lower[: -len("_proxy")]
        if name == lower or scheme not in found:
            found[scheme] = value
    return found


def _bypass(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``no_proxy`` (comma- or space-separated: ``*``, host names that also match
    their subdomains, with or without a leading ``.`` or ``*.``, IP addresses, CIDR
    blocks, each with an optional ``:port``) covers ``host:port``."""
    host = host.strip("[]")
    for item in no_proxy.replace(" ", ",").split(","):
        entry = item.strip().lower()
        if entry == "*":
            return True
        want: int | None = None
        if entry.startswith("["):
            entry, _, rest = entry[1:].partition("]")
            want = int(rest[1:]) if rest[:1] == ":" and rest[1:].isdigit() else None
        elif entry.count(":") == 1:
            name, _, number = entry.partition(":")
            if number.isdigit():
                entry, want = name, int(number)
        if not entry or (want is not None and want != port):
            continue
        if "/" in entry:
            if _in_network(host, entry):
                return True
            continue
        entry = entry.removeprefix("*").removeprefix(".")
        if host == entry or host.endswith(f".{entry}"):
            return True
    return False


def _in_network(host: str, cidr: str) -> bool:
    import ipaddress  # noqa: PLC0415 -- only for a CIDR entry

    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
