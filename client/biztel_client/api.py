"""The server's public API as the client meets it: one session, the error contract,
and the one retry loop every request goes through (burst 429 → wait Retry-After,
connection errors and 5xx → back off, monthly 429 → stop)."""

from __future__ import annotations

import time
from urllib.parse import urljoin, urlsplit

import requests

from biztel_client import __version__

BACKOFF_FIRST = 1.0
BACKOFF_CAP = 30.0
MAX_FAILURES = 6  # 1+2+4+8+16 s of backoff before giving up on one request
MAX_BURST_WAITS = 600
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60


class ClientError(Exception):
    """Something the user must be told; the command fails (exit 1)."""


class ApiError(ClientError):
    """An error answer of the server (its six-key body), not worth repeating."""

    def __init__(self, status, type_="", message=""):
        self.status, self.type = status, type_
        super().__init__(f"HTTP {status} {type_}: {message}".rstrip(": ") if type_ else f"HTTP {status}: {message}")


class MonthlyLimitReached(ClientError):
    """The month's quota is used up (exit 3): nothing more can be fetched before the reset."""


class Transient(Exception):
    """Worth another try after a pause: the connection failed or broke, or the server answered 5xx."""


class BurstLimited(Exception):
    def __init__(self, retry_after):
        self.retry_after = retry_after
        super().__init__(f"burst limit, retry after {retry_after}s")


def error_of(response):
    """(type, message) of a six-key error body, ("", text) when the body is not one."""
    try:
        body = response.json()
        return str(body.get("type") or ""), str(body.get("message") or "")
    except ValueError:
        return "", (response.text or "")[:200].strip()


def retry_after_seconds(response, default=1.0):
    try:
        return max(0.0, float(response.headers.get("Retry-After", default)))
    except ValueError:
        return default


class Client:
    def __init__(self, *, server, token, cacert=None, sleep=time.sleep, max_failures=MAX_FAILURES):
        self.server = server.rstrip("/") + "/"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        self.session.headers["User-Agent"] = f"biztel-client/{__version__}"
        # per request, not session.verify: requests lets REQUESTS_CA_BUNDLE override the session's
        self.verify = cacert if cacert else True
        self.sleep = sleep
        self.max_failures = max_failures

    def url(self, path_or_url):
        """A path on the server; a URL the server gave (a listing's next) keeps only its path and
        query, so a server behind a proxy that names itself differently is still reached as --server."""
        parts = urlsplit(path_or_url)
        relative = parts.path.lstrip("/") + (f"?{parts.query}" if parts.query else "")
        return urljoin(self.server, relative)

    def send(self, method, path_or_url, *, headers=None, stream=False, ok=(200,)):
        """One request. Returns the response when its status is in `ok` (304 and 206 are the caller's
        to allow); raises BurstLimited, Transient, MonthlyLimitReached or ApiError otherwise."""
        try:
            response = self.session.request(
                method, self.url(path_or_url), headers=headers or {}, stream=stream,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), allow_redirects=False, verify=self.verify,
            )
        except requests.exceptions.SSLError as exc:
            raise ClientError(f"TLS: {exc} (is --cacert the server's certificate?)") from None
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            raise Transient(f"{method} {path_or_url}: {exc}") from None
        if response.status_code in ok:
            return response
        with response:
            if response.status_code == 429:
                kind, message = error_of(response)
                if kind == "MONTHLY_LIMIT_EXCEEDED":
                    reset = response.headers.get("Retry-After")
                    raise MonthlyLimitReached(
                        f"the month's quota is used up ({message or 'MONTHLY_LIMIT_EXCEEDED'}); "
                        + (f"it resets in {reset} s" if reset else "it resets next month")
                    )
                raise BurstLimited(retry_after_seconds(response))
            if response.status_code >= 500:
                raise Transient(f"{method} {path_or_url}: HTTP {response.status_code}")
            raise ApiError(response.status_code, *error_of(response))

    def retrying(self, operation, what="request"):
        """Run operation() until it returns; burst 429s are waited out, transient failures backed off."""
        failures = burst_waits = 0
        while True:
            try:
                return operation()
            except BurstLimited as exc:
                burst_waits += 1
                if burst_waits > MAX_BURST_WAITS:
                    raise ClientError(f"{what}: still burst-limited after {MAX_BURST_WAITS} waits") from None
                self.sleep(exc.retry_after)
            except Transient as exc:
                failures += 1
                if failures >= self.max_failures:
                    raise ClientError(f"{what}: gave up after {failures} attempts: {exc}") from None
                self.sleep(min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** (failures - 1)))

    def head(self, path_or_url):
        """The headers of a HEAD. Its error answers have no body, so on one the GET is asked for the message."""
        def attempt():
            try:
                with self.send("HEAD", path_or_url) as response:
                    return response.headers
            except ApiError:
                self.send("GET", path_or_url, stream=True).close()  # raises the error with its message
                raise

        return self.retrying(attempt, what=f"HEAD {path_or_url}")

    def get_json(self, path_or_url):
        def attempt():
            with self.send("GET", path_or_url) as response:
                try:
                    return response.json()
                except ValueError:
                    raise Transient(f"GET {path_or_url}: the answer is not JSON") from None

        return self.retrying(attempt, what=f"GET {path_or_url}")
