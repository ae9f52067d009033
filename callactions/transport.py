"""Sending one rendered request, strictly.

- The destination's addresses are resolved and checked at send time: loopback,
  private, link-local and other non-public addresses (IPv4-mapped IPv6 and the other
  IPv6 forms that embed an IPv4 address included) are refused unless their network is
  in CALLACTION_ALLOWED_NETWORKS.
- The connection goes to the address that was checked (the Host header and the TLS
  server name stay the URL's host), so a second, different DNS answer cannot slip past.
- Redirects are not followed; at most 64 KB of the body is read; the whole exchange
  is bounded by the action's timeout.
"""

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from django.conf import settings

MAX_BODY_BYTES = 64 * 1024
USER_AGENT = "biztel-callactions/1.0"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class TransportError(Exception):
    def __init__(self, message, elapsed_ms=None):
        super().__init__(message)
        self.message = message
        self.elapsed_ms = elapsed_ms


@dataclass
class Response:
    status: int
    body: bytes
    elapsed_ms: int
    truncated: bool
    location: str = ""

    @property
    def text(self):
        return self.body.decode("utf-8", errors="replace")


def embedded_ipv4(ip):
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, Teredo, NAT64), or None."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
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
    except (socket.gaierror, UnicodeError) as exc:
        raise TransportError(f"cannot resolve {host}: {exc}") from None
    addresses = []
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if ip not in addresses:
            addresses.append(ip)
    for ip in addresses:
        refusal = address_refusal(ip)
        if refusal:
            raise TransportError(f"refused: {host} resolves to {ip}, {refusal}")
    first = addresses[0]
    return (first.version == 6 and first.ipv4_mapped) or first


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
                pool = urllib3.HTTPSConnectionPool(
                    str(ip), port, maxsize=4, server_hostname=host, assert_hostname=host, cert_reqs="CERT_REQUIRED"
                )
            else:
                pool = urllib3.HTTPConnectionPool(str(ip), port, maxsize=4)
            _pools[key] = pool
        return pool


def _host_header(parts):
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return host if parts.port is None else f"{host}:{parts.port}"


def send(*, method, url, headers, body, timeout):
    """Send and return Response (any status); TransportError when no answer was had."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    start = time.monotonic()
    deadline = start + timeout

    def elapsed():
        return int((time.monotonic() - start) * 1000)

    ip = checked_address(parts.hostname, port)
    pool = _pool(parts.scheme, ip, port, parts.hostname)
    request_headers = urllib3.HTTPHeaderDict({"User-Agent": USER_AGENT})
    for name, value in headers:
        if name.lower() != "host":
            request_headers.add(name, value)
    request_headers["Host"] = _host_header(parts)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        response = pool.urlopen(
            method,
            target,
            body=body.encode("utf-8") if body else None,
            headers=request_headers,
            redirect=False,
            retries=False,
            assert_same_host=False,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            preload_content=False,
            release_conn=False,
        )
    except urllib3.exceptions.NewConnectionError as exc:  # a subclass of the timeout error, but not one
        raise TransportError(f"connection failed: {_reason(exc)}", elapsed()) from None
    except urllib3.exceptions.TimeoutError:
        raise TransportError(f"timed out after {timeout:g} s", elapsed()) from None
    except urllib3.exceptions.HTTPError as exc:
        raise TransportError(f"connection failed: {_reason(exc)}", elapsed()) from None

    chunks, size, truncated = [], 0, False
    try:
        while True:
            if time.monotonic() > deadline:
                raise TransportError(f"timed out after {timeout:g} s while reading the response", elapsed())
            chunk = response.read1(min(16384, MAX_BODY_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                truncated = True
                break
    except urllib3.exceptions.TimeoutError:
        response.close()
        raise TransportError(f"timed out after {timeout:g} s while reading the response", elapsed()) from None
    except urllib3.exceptions.HTTPError as exc:
        response.close()
        raise TransportError(f"reading the response failed: {_reason(exc)}", elapsed()) from None
    except TransportError:
        response.close()
        raise
    finally:
        if truncated:
            # The rest is never read: the connection cannot be reused.
            response.close()
        response.release_conn()
    return Response(
        status=response.status,
        body=b"".join(chunks)[:MAX_BODY_BYTES],
        elapsed_ms=elapsed(),
        truncated=truncated,
        location=response.headers.get("Location", ""),
    )


def _reason(exc):
    text = str(getattr(exc, "reason", None) or exc)
    return text.rsplit(": ", 1)[-1]
