"""The client against the real product: nginx (TLS) in front of gunicorn, a direct gunicorn,
a Celery worker and beat, on the real PostgreSQL and Redis, started from deploy/ as the
server's own end-to-end tests do (tests/stack.py). One stack serves the whole session;
a day of calls is ingested through it as the PBX does."""

import functools
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import real_services  # noqa: F401 (the real services must be there, never skipped)
from tests.callactions_support import wait_until as server_wait_until
from tests.stack import ingest_stereo_call, product_stack

# The console script of this venv; BIZTEL_CLIENT names another build (e.g. one installed under Python 3.9).
CLIENT = Path(os.environ.get("BIZTEL_CLIENT") or Path(sys.executable).with_name("biztel-client"))
DAY = "2021-09-14"
PULL_NUMBER = "0501110000"
CALLS = [
    {
        "request_id": f"2109140000{n:04d}000010",
        "unique_id": f"1631600000.{n}",
        "started_at": f"{DAY} 10:{n:02d}:00",
        "caller": "03-1234-5678",
        "callee": "050-111-0000",
        "side": "DST",
        "external_number": PULL_NUMBER,
        "extension": "2001",
        "tel": "03-1234-5678",
        "group": "sales",
    }
    for n in (1, 2, 3)
]
CALL_SECONDS = 8.0


@pytest.fixture(scope="session")
def live(real_services, django_db_setup, django_db_blocker):
    with product_stack(django_db_blocker) as stack:
        stack.pbx_token = stack.manage("create_api_token", "--username", "pbx", "--role", "pbx").strip()
        stack.token = stack.manage("create_api_token", "--username", "puller", "--role", "administrator").strip()
        stack.day_calls = [ingest_stereo_call(stack, stack.pbx_token, call, seconds=CALL_SECONDS) for call in CALLS]
        stack.ingested_at = time.monotonic()
        yield stack


@pytest.fixture
def system(live):
    """system(name=value, ...) changes the server's settings for one test; the defaults come back after."""
    changed = {}

    def apply(**values):
        for name in values:
            changed.setdefault(name, DEFAULTS[name])
        live.set_system(**values)

    yield apply
    if changed:
        live.set_system(**changed)


DEFAULTS = {
    "burst_limit_per_second": 10, "monthly_request_limit": 100000, "bulk_download": "false",
    "stereo_file": "false", "keep_lossless": "false",
}


def run_client(live, *args, server=None, token=True, env=None, timeout=180, **kwargs):
    """biztel-client as a customer runs it (the console script), against nginx over TLS by default."""
    command = [str(CLIENT), *args, "--server", server or live.base_url]
    if server is None:
        command += ["--cacert", str(live.cert)]
    if token is True:
        command += ["--token", live.token]
    options = {"capture_output": True, "text": True, **kwargs}
    return subprocess.run(command, env={**os.environ, **(env or {})}, timeout=timeout, **options)


def day_files(live):
    """{name: stored bytes} of every file of the day's calls."""
    return {
        f["name"]: live.stored_file(f["name"]).read_bytes()
        for call in live.day_calls
        for f in call["files"].values()
        if f
    }


def last_log_id():
    from recordings.models import AccessLogEntry

    return AccessLogEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0


def log_since(before, **filters):
    from recordings.models import AccessLogEntry

    return list(AccessLogEntry.objects.filter(id__gt=before, **filters).order_by("id"))


class CuttingProxy:
    """A TCP relay to the server that drops each of its first `cuts` connections after
    `cut_after` bytes of answer, as a broken network does mid-file, and answers the first
    `failures` connections with a 503 of its own, as a gateway whose upstream is away does.
    Keeps what clients sent."""

    def __init__(self, upstream_port, *, cut_after=0, cuts=0, failures=0):
        self.upstream_port, self.cut_after, self.cuts_left = upstream_port, cut_after, cuts
        self.failures_left = failures
        self.sent = bytearray()
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.relay, args=(client,), daemon=True).start()

    def relay(self, client):
        with self.lock:
            fail = self.failures_left > 0
            self.failures_left -= fail
            cut = not fail and self.cuts_left > 0
            self.cuts_left -= cut
        if fail:
            self.sent += client.recv(65536)
            client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            client.close()
            return
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        threading.Thread(target=self.forward, args=(client, upstream), daemon=True).start()
        relayed = 0
        try:
            while data := upstream.recv(65536):
                if cut and relayed + len(data) >= self.cut_after:
                    client.sendall(data[: self.cut_after - relayed])
                    break
                client.sendall(data)
                relayed += len(data)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def forward(self, client, upstream):
        try:
            while data := client.recv(65536):
                with self.lock:
                    self.sent += data
                upstream.sendall(data)
        except OSError:
            pass

    def close(self):
        self.listener.close()


# The server's tests' helper, with the patience of a client pulling through a live stack.
wait_until = functools.partial(server_wait_until, timeout=60, interval=0.2)
