"""Shared fixtures. Tests that use the database or Redis run on real PostgreSQL and
Redis (DATABASE_URL, REDIS_URL, set by `make test`) and fail loudly when they are not
there; tests of pure functions (naming, rendering, patterns, audio) need neither."""

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _reachable(url, default_port):
    parts = urlparse(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=3):
            return True
    except OSError:
        return False


def _services_missing():
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    problems = []
    if not database_url.startswith(("postgres://", "postgresql://")):
        problems.append("DATABASE_URL must name the PostgreSQL server (make test sets it)")
    elif not _reachable(database_url, 5432):
        problems.append(f"PostgreSQL is unreachable at {database_url}")
    if not redis_url.startswith("redis://"):
        problems.append("REDIS_URL must name the Redis server (make test sets it)")
    elif not _reachable(redis_url, 6379):
        problems.append(f"Redis is unreachable at {redis_url}")
    return problems


@pytest.fixture(scope="session")
def real_services():
    problems = _services_missing()
    if problems:
        # Never skip: a test that cannot reach its services has not tested anything.
        pytest.fail("real services missing: " + "; ".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def django_db_setup(real_services, django_db_setup):
    """Every test that uses the database (db, transactional_db) comes through here, so
    the services are checked then, not at start: the pure tests run anywhere."""
    return django_db_setup


@pytest.fixture(autouse=True)
def _isolated(request, settings, tmp_path):
    """Each test gets its own storage, fresh settings and empty counters."""
    from django.core.cache import cache

    from biztel import config

    settings.MEDIA_ROOT = tmp_path / "media"
    config.forget()
    _per_process_copies_forget()
    if not settings.REDIS_URL:
        cache.clear()  # in-process
    elif "django_db_setup" in request.fixturenames:
        # A test using the services (a pure one has no counters to empty and may have no Redis).
        from django_redis import get_redis_connection

        # Only the cache's own keys: a FLUSHDB would also drop Celery's queue bindings.
        client = get_redis_connection("default")
        for key in client.scan_iter(match=cache.make_key("*")):
            client.delete(key)
    yield
    config.forget()
    _per_process_copies_forget()


def _per_process_copies_forget():
    """The token and download lookups each process keeps for a second (like the settings)."""
    from biztel import tokens
    from recordings.selectors import downloads_forget

    tokens.forget()
    downloads_forget()


@pytest.fixture
def make_token(db):
    """make_token(role=..., groups=...) -> plain token of a new account."""
    from biztel.models import Account
    from biztel.tokens import token_issue

    counter = iter(range(1, 10_000))

    def make(role="administrator", groups="", username=None):
        account = Account.objects.create(username=username or f"user{next(counter)}", role=role, visible_groups=groups)
        return token_issue(account=account, name="test")[1]

    return make


@pytest.fixture
def token(make_token):
    return make_token()


@pytest.fixture
def set_system(db):
    """set_system(name="value", ...) changes licences/settings as biztel_settings --set does."""
    from biztel import config

    def apply(**values):
        return config.settings_update(**{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()})

    return apply


def database_url(connection=None):
    """The URL of the database Django is using (the test database, in tests), for child processes."""
    from django.db import connection as default_connection

    db = (connection or default_connection).settings_dict
    host = quote(db["HOST"] or "127.0.0.1", safe="")  # a Unix socket directory is a path
    return f"postgres://{db['USER'] or 'postgres'}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


def ensure_debian_packages(*commands_and_packages):
    """ensure_debian_packages(("nginx", "nginx"), ...): install what is missing (the Makefile does it first)."""
    missing = [package for command, package in commands_and_packages if not shutil.which(command)]
    if missing:
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, capture_output=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, process, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


@contextmanager
def serving(command, port, *, timeout=20, stop_timeout=10, **popen):
    """A server process of ours (`command`, started with subprocess.Popen's `popen`) that
    listens on `port`: yields its base URL once it answers, and stops it afterwards."""
    process = subprocess.Popen(command, **popen)
    try:
        wait_for_port(port, process, timeout=timeout)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=stop_timeout)


def gunicorn_command(port, *, workers=2, threads=4):
    """gunicorn serving the product on loopback, as the tests run it (not deploy/'s settings)."""
    return [
        sys.executable, "-m", "gunicorn", "biztel.wsgi:application", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread", "--log-level", "warning",
    ]


@pytest.fixture
def gunicorn_server(transactional_db, settings):
    """The real web server (gunicorn, 2 worker processes) on the test database.

    Yields its base URL. Data must be committed to be seen, hence transactional_db.
    """
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "DOWNLOAD_ACCEL_REDIRECT_PREFIX": "",
        **settings_env(settings),
    }
    with serving(gunicorn_command(port), port, cwd=ROOT, env=env) as url:
        yield url


# The S3-compatible server and the disk/bucket parametrisation (tests/s3.py).
from tests.s3 import s3_bucket, s3_endpoint, settings_env, storage_backend  # noqa: E402,F401
