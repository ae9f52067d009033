"""Real parts for the call-action tests: a threaded HTTP receiver, Celery workers on
Redis pointed at the test database, and waiting helpers."""

import os
import signal
import subprocess
import sys
import time

import pytest
from pytest_httpserver import HTTPServer

from tests.conftest import ROOT, database_url



class Worker:
    """`celery -A biztel worker` in its own process group, so kill -9 takes all of it."""

    def __init__(self, log_path, redis_url=None, concurrency=2, extra_env=None):
        self.log_path = log_path
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "REDIS_URL": redis_url or os.environ["REDIS_URL"],
            "CALLACTION_ALLOWED_NETWORKS": "127.0.0.0/8",
            "LOG_LEVEL": "INFO",
            **(extra_env or {}),
        }
        self.concurrency = concurrency
        self.process = None

    def start(self, timeout=30):
        self.log_path.write_text("")
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "biztel", "worker",
                "--pool", "prefork", "--concurrency", str(self.concurrency),
                "--without-gossip", "--without-mingle", "--without-heartbeat",
                "--loglevel", "INFO", "--hostname", f"callactions-{os.getpid()}-{time.monotonic_ns()}@%h",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log_path.read_text()[-3000:]}")
            if " ready." in self.log_path.read_text():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready: {self.log_path.read_text()[-3000:]}")

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()


def declare_queue():
    """The suite flushes the Redis database before each test (conftest), which also
    drops kombu's queue bindings; without them a message would go to no queue."""
    from biztel.celery import app

    with app.connection_for_write() as connection:
        for queue in app.amqp.queues.values():
            queue(connection.default_channel).declare()


class RedisServer:
    """A redis-server of our own on a free port, to stop and start at will."""

    def __init__(self, port, workdir):
        self.port, self.workdir, self.process = port, workdir, None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        from tests.conftest import wait_for_port

        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def wait_until(check, timeout=20, interval=0.05, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, tmp_path_factory):
    worker = Worker(tmp_path_factory.mktemp("worker") / "worker.log").start()
    yield worker
    worker.stop()


@pytest.fixture
def worker(celery_worker, transactional_db, settings):
    """The shared worker, with the queue declared and 127.0.0.1 allowed in this process too."""
    import ipaddress

    if celery_worker.process.poll() is not None:
        celery_worker.start()
    declare_queue()
    settings.CALLACTION_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    return celery_worker


@pytest.fixture
def receiver():
    """A real HTTP server on 127.0.0.1 answering concurrently."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()
