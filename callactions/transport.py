"""Sending one rendered request, strictly.

- The destination's addresses are resolved and checked at send time: loopback,
  private, link-local and other non-public addresses (every IPv6 form that embeds an
  IPv4 address is checked as that address) are refused unless their network is in
  CALLACTION_ALLOWED_NETWORKS.
- The connection goes to the address that was checked (the Host header and the TLS
  server name stay the URL's host), so a second, different DNS answer cannot slip past.
- Redirects are not followed; at most 64 KB of the body is read; the whole exchange
  (connect, headers, body) ends at the action's timeout, however slowly the receiver
  trickles its answer.
- A TransportError says whether retrying can help (`permanent`).
"""

import ipaddress
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import urllib3
from django.conf import settings

MAX_BODY_BYTES = 64 * 1024
USER_AGENT = "biztel-callactions/1.0"
# NAT64 (RFC 6052 well-known and RFC 8215 local-use) and IPv4-translated (RFC 2765) prefixes.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.ip_network("::/96")


class TransportError(Exception):
    """No answer was had. permanent: the same request can never succeed (refused
    destination, malformed URL, unknown host), so the step fails without retries."""

    def __init__(self, message, elapsed_ms=None, permanent=False):
        super().__init__(message)
        self.message = message
        self.elapsed_ms = elapsed_ms
        self.permanent = permanent


@dataclass
class Response:
    status: int
    body: bytes
    elapsed_ms: int
    truncated: bool
    location: str = ""
    retry_after: float | None = None  # seconds the receiver asked us to wait (Retry-After)

    @property
    def text(self):
        return self.body.decode("utf-8", errors="replace")


def embedded_ipv4(ip):
    """The IPv4 address an IPv6 address stands for (mapped, translated, compatible,
    6to4, Teredo, NAT64), or None."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in _TRANSLATED or any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _COMPATIBLE and int(ip) > 1:  # ::a.b.c.d (deprecated, still routed by some stacks); not :: or ::1
        return ipaddress.IPv4Address(int(ip))
    return None


def _allowed(ip):
    return any(ip.version == net.version and ip in net for net in settings.CALLACTION_ALLOWED_NETWORKS)


def address_refusal(ip):
    """Why this address may not be a destination, or None when it may."""
    effective = embedded_ipv4(ip) or ip
    if effective.is_global and not effective.is_multicast:
        return None
    if _allowed(effective) or _allowed(ip):
        return None
    return "a loopback, private, link-local or otherwise non-public address not listed in CALLACTION_ALLOWED_NETWORKS"


def checked_address(host, port):
    """Resolve host now and return the address to connect to; refuse if any answer is refused."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        # "no such name" will not change on a retry; a DNS server that did not answer may
        permanent = exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME))
        raise TransportError(f"cannot resolve {host}: {exc}", permanent=permanent) from None
    except UnicodeError as exc:
        raise TransportError(f"cannot resolve {host}: {exc}", permanent=True) from None
    addresses = []
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if ip not in addresses:
            addresses.append(ip)
    for ip in addresses:
        refusal = address_refusal(ip)
        if refusal:
            raise TransportError(f"refused: {host} resolves to {ip}, {refusal}", permanent=True)
    first = addresses[0]
    return (first.version == 6 and first.ipv4_mapped) or first


class _Watchdog:
    """One thread per process that cuts the connections of attempts past their deadline
    (a timer thread per attempt would cost more than the rest of a local delivery)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._due = {}  # _Deadline -> monotonic time
        self._pid = None

    def watch(self, deadline, at):
        with self._cond:
            if self._pid != os.getpid():  # first use, or a forked worker child: no thread here yet
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="callaction-deadlines", daemon=True).start()
            earliest = min(self._due.values(), default=None)
            self._due[deadline] = at
            if earliest is None or at < earliest:
                self._cond.notify()

    def forget(self, deadline):
        with self._cond:
            self._due.pop(deadline, None)

    def _run(self):
        with self._cond:
            while True:
                now = time.monotonic()
                for deadline, at in list(self._due.items()):
                    if at <= now:
                        del self._due[deadline]
                        deadline.expire()
                self._cond.wait(min(self._due.values(), default=now + 60) - now)


_watchdog = _Watchdog()
os.register_at_fork(after_in_child=lambda: _watchdog.__init__())


class _Deadline:
    """Cuts the attempt's connection when its time is up, whatever the socket waits for:
    a per-read timeout alone lets a receiver that sends a byte a second hold us forever."""

    local = threading.local()

    def __init__(self, seconds):
        self.expired = False
        self._at = time.monotonic() + seconds
        self._connection = None
        self._lock = threading.Lock()

    def __enter__(self):
        _Deadline.local.current = self
        _watchdog.watch(self, self._at)
        return self

    def __exit__(self, *exc):
        _watchdog.forget(self)
        _Deadline.local.current = None

    def watch(self, connection):
        with self._lock:
            self._connection = connection
        if self.expired:
            self._cut()

    def expire(self):
        self.expired = True
        self._cut()

    def _cut(self):
        with self._lock:
            sock = getattr(self._connection, "sock", None)
        if sock is not None:
            try:
                # the plain socket's shutdown: it wakes a blocked read, TLS or not
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass


def _watched(connection_class):
    class Watched(connection_class):
        def request(self, *args, **kwargs):
            deadline = getattr(_Deadline.local, "current", None)
            if deadline is not None:
                deadline.watch(self)
            return super().request(*args, **kwargs)

    return Watched


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _watched(urllib3.connection.HTTPConnection)


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _watched(urllib3.connection.HTTPSConnection)


_pools = {}
_pools_lock = threading.Lock()


def _pool(scheme, ip, port, host):
    """A keep-alive pool per (checked address, host): it only ever connects to that address."""
    key = (scheme, str(ip), port, host)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            if len(_pools) >= 64:
                for old in _pools.values():
                    old.close()
                _pools.clear()
            if scheme == "https":
                pool = _HTTPSPool(
                    str(ip), port, maxsize=4, server_hostname=host, assert_hostname=host, cert_reqs="CERT_REQUIRED"
                )
            else:
                pool = _HTTPPool(str(ip), port, maxsize=4)
            _pools[key] = pool
        return pool


def _host_header(parts):
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return host if parts.port is None else f"{host}:{parts.port}"


def retry_after_seconds(value, now=None):
    """Seconds of a Retry-After header (delta-seconds or an HTTP date), or None."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(value) if len(value) < 10 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def send(*, method, url, headers, body, timeout):
    """Send and return Response (any status); TransportError when no answer was had."""
    start = time.monotonic()

    def elapsed():
        return int((time.monotonic() - start) * 1000)

    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http(s) URL with a host")
    except ValueError as exc:
        raise TransportError(f"malformed URL: {exc}", permanent=True) from None
    ip = checked_address(parts.hostname, port)
    pool = _pool(parts.scheme, ip, port, parts.hostname)
    request_headers = urllib3.HTTPHeaderDict({"User-Agent": USER_AGENT})
    for name, value in headers:
        if name.lower() != "host":
            request_headers.add(name, value)
    request_headers["Host"] = _host_header(parts)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    with _Deadline(timeout) as deadline:
        try:
            remaining = max(0.001, timeout - (time.monotonic() - start))
            response = pool.urlopen(
                method,
                target,
                body=body.encode("utf-8") if body else None,
                headers=request_headers,
                redirect=False,
                retries=False,
                assert_same_host=False,
                timeout=urllib3.Timeout(connect=remaining, read=remaining),
                preload_content=False,
                release_conn=False,
            )
        except (UnicodeError, ValueError) as exc:  # a header or target http.client cannot encode
            raise TransportError(f"cannot send the request: {exc}", elapsed(), permanent=True) from None
        except urllib3.exceptions.NewConnectionError as exc:  # a subclass of the timeout error, but not one
            if deadline.expired:
                raise TransportError(f"timed out after {timeout:g} s", elapsed()) from None
            raise TransportError(f"connection failed: {_reason(exc)}", elapsed()) from None
        except urllib3.exceptions.TimeoutError:
            raise TransportError(f"timed out after {timeout:g} s", elapsed()) from None
        except urllib3.exceptions.HTTPError as exc:
            if deadline.expired:
                raise TransportError(f"timed out after {timeout:g} s", elapsed()) from None
            raise TransportError(f"connection failed: {_reason(exc)}", elapsed()) from None

        if deadline.expired:
            # http.client takes the cut socket's end for the end of the headers
            response.close()
            response.release_conn()
            raise TransportError(f"timed out after {timeout:g} s", elapsed())
        chunks, size, truncated = [], 0, False
        reading_timeout = f"timed out after {timeout:g} s while reading the response"
        try:
            while True:
                if deadline.expired:
                    raise TransportError(reading_timeout, elapsed())
                chunk = response.read1(min(16384, MAX_BODY_BYTES + 1 - size))
                if not chunk:
                    if deadline.expired:
                        raise TransportError(reading_timeout, elapsed())
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    truncated = True
                    break
        except urllib3.exceptions.TimeoutError:
            response.close()
            raise TransportError(reading_timeout, elapsed()) from None
        except urllib3.exceptions.HTTPError as exc:
            response.close()
            if deadline.expired:
                raise TransportError(reading_timeout, elapsed()) from None
            raise TransportError(f"reading the response failed: {_reason(exc)}", elapsed()) from None
        except TransportError:
            response.close()
            raise
        finally:
            if truncated or deadline.expired:
                # The rest is never read (or the socket was cut): the connection cannot be reused.
                response.close()
            response.release_conn()
    return Response(
        status=response.status,
        body=b"".join(chunks)[:MAX_BODY_BYTES],
        elapsed_ms=elapsed(),
        truncated=truncated,
        location=response.headers.get("Location", ""),
        retry_after=retry_after_seconds(response.headers.get("Retry-After")),
    )


def _reason(exc):
    text = str(getattr(exc, "reason", None) or exc)
    return text.rsplit(": ", 1)[-1]
