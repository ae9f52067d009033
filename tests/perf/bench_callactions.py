"""Call-action delivery through the real Celery worker, against a bare requests loop.

1. Reference: a `requests.Session` loop sending GETs to the receiver, one after the other.
2. Throughput: 1,000 recordings (with their events) committed at once; notifications
   delivered per second by `celery -A biztel worker` (as deploy/ runs it) from the
   commit to the last receipt. Printed as a ratio to the reference.
3. Delay: recordings committed one at a time at 50 per second; p50/p99 of the time
   from each commit to the receiver having the notification.

The receiver is a minimal keep-alive HTTP server in its own process that notes the
arrival time of every request; everything stays on 127.0.0.1.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.conftest import ROOT, free_port, wait_for_port
from tests.perf.support import bench_database

EVENTS = 1000
REFERENCE_REQUESTS = 3000
RATE = 50
RATE_SECONDS = 10

RECEIVER = r"""
import asyncio, json, sys, time
from urllib.parse import parse_qs, urlsplit

log = []

class Receiver(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data):
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            target = head.split(b" ", 2)[1].decode()
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            self.buffer = self.buffer[length:]
            if target.startswith("/__log"):
                body = json.dumps(log).encode()
                log.clear()
            else:
                log.append((time.time(), parse_qs(urlsplit(target).query).get("ID", [""])[0]))
                body = b"ok"
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

async def main():
    server = await asyncio.get_running_loop().create_server(Receiver, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()

asyncio.run(main())
"""


def receipts(port):
    return json.loads(requests.get(f"http://127.0.0.1:{port}/__log").content)


def reference_rate(port):
    session = requests.Session()
    url = f"http://127.0.0.1:{port}/ref?ID=0"
    for _ in range(100):
        session.get(url)
    started = time.perf_counter()
    for _ in range(REFERENCE_REQUESTS):
        session.get(url)
    rate = REFERENCE_REQUESTS / (time.perf_counter() - started)
    receipts(port)
    return rate


def new_recording(number, commit_times=None):
    """A recording row and its event, committed together as the ingest does."""
    from django.db import transaction
    from django.utils import timezone

    from callactions.services import event_create_recording_completed
    from recordings.models import Recording

    request_id = f"{number:020d}"
    recording = Recording.objects.create(
        request_id=request_id, unique_id=f"bench.{number}", started_at=timezone.now(), caller="2006",
        callee="2002", side="SRC", external_number="0312345678", extension="2002", tel="09012345678", duration=60,
    )
    if commit_times is not None:
        # registered first, so it runs right after the commit, before the event is queued
        transaction.on_commit(lambda: commit_times.__setitem__(request_id, time.time()))
    event_create_recording_completed(recording=recording)


def wait_for_receipts(port, count, timeout):
    seen = []
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        time.sleep(0.05)
        seen += receipts(port)
    return seen


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main():
    from django.db import transaction

    from callactions.models import CallAction, Event, ExternalNumber

    receiver_port = free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(receiver_port)])
    log_file = Path(tempfile.mkstemp(prefix="bench-worker-", suffix=".log")[1])
    worker = None
    try:
        wait_for_port(receiver_port, receiver)
        reference = reference_rate(receiver_port)
        print(f"callactions reference: bare requests.Session loop {reference:.0f} requests/s", flush=True)
        with bench_database() as database_url:
            action = CallAction(name="bench", url=f"http://127.0.0.1:{receiver_port}/hook?ID={{ID}}&DATE={{DATE}}")
            action.full_clean()
            action.save()
            action.targets.set([ExternalNumber.objects.create(number="0312345678")])
            env = {
                **os.environ,
                "DATABASE_URL": database_url,
                "CALLACTION_ALLOWED_NETWORKS": "127.0.0.0/8",
                "LOG_LEVEL": "WARNING",
            }
            from biztel.celery import app

            app.control.purge()
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "biztel", "worker", "--loglevel", "INFO",
                 "--concurrency", "4", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=ROOT, env=env, stdout=open(log_file, "w"), stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + 60
            while " ready." not in log_file.read_text():
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker did not start: {log_file.read_text()[-2000:]}")
                time.sleep(0.1)

            # throughput: 1,000 events committed at once
            with transaction.atomic():
                for number in range(1, EVENTS + 1):
                    new_recording(number)
                committed = time.time()
            seen = wait_for_receipts(receiver_port, EVENTS, timeout=150)
            if len(seen) < EVENTS:
                raise RuntimeError(f"only {len(seen)} of {EVENTS} notifications arrived")
            delivered = EVENTS / (max(at for at, _ in seen) - committed)
            pending = Event.objects.exclude(status=Event.Status.DONE).count()
            print(f"callactions throughput: {delivered:.0f} notifications/s through the worker "
                  f"({len(seen)} received, {pending} events not done)")
            print(f"callactions throughput ratio: {delivered / reference:.3f} (worker / bare Session loop; target >= 0.25)")

            # delay: 50 events per second, each in its own transaction
            commit_times = {}
            started = time.monotonic()
            for index in range(RATE * RATE_SECONDS):
                due = started + index / RATE
                time.sleep(max(0.0, due - time.monotonic()))
                with transaction.atomic():
                    new_recording(EVENTS + 1 + index, commit_times)
            seen = wait_for_receipts(receiver_port, RATE * RATE_SECONDS, timeout=60)
            delays = [at - commit_times[request_id] for at, request_id in seen if request_id in commit_times]
            if len(delays) < RATE * RATE_SECONDS:
                raise RuntimeError(f"only {len(delays)} of {RATE * RATE_SECONDS} notifications arrived")
            p50, p99 = percentile(delays, 0.5) * 1000, percentile(delays, 0.99) * 1000
            print(f"callactions delay at {RATE} events/s: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
                  f"(commit -> receipt; target p99 < 250 ms)")
            worker.terminate()
            worker.wait(timeout=30)
            worker = None
            app.control.purge()
    finally:
        if worker is not None:
            worker.kill()
            worker.wait()
        receiver.terminate()
        receiver.wait()
        log_file.unlink(missing_ok=True)
