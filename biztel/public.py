"""Who the client of a request is: its address, or the one the local proxy names
(X-Real-IP). Used by the public API, the admin lockout (axes) and /metrics."""

import ipaddress

from biztel.errors import ValidationFailed


X_REAL_IP_MESSAGE = "The X-Real-IP header must be one IP address."


def _forwarded_by_local_proxy(request):
    """The X-Real-IP text when a proxy on this machine (deploy/nginx.conf) sent it, else ''.
    Only such a proxy is trusted to say who the client is."""
    remote = request.META.get("REMOTE_ADDR", "")
    forwarded = request.META.get("HTTP_X_REAL_IP", "")
    try:
        return forwarded if forwarded and remote and ipaddress.ip_address(remote).is_loopback else ""
    except ValueError:
        return ""


def _ip(text):
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def client_ip(request):
    forwarded = _forwarded_by_local_proxy(request)
    return (forwarded and _ip(forwarded)) or _ip(request.META.get("REMOTE_ADDR", "")) or None


def forwarded_ip_check(request):
    """A malformed X-Real-IP from the local proxy is a 400 naming it (never an access-log row it cannot fit)."""
    forwarded = _forwarded_by_local_proxy(request)
    if forwarded and _ip(forwarded) is None:
        raise ValidationFailed(X_REAL_IP_MESSAGE, messages={"X-Real-IP": [X_REAL_IP_MESSAGE]})
