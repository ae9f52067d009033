"""The product as a customer runs it (deploy/): nginx terminating TLS in front of
gunicorn, a Celery worker and beat, on the real PostgreSQL and Redis.

Started from the files in deploy/ themselves: deploy/nginx.conf with this
machine's paths and ports put in, deploy/gunicorn.conf.py as it is. Used by the
end-to-end, browser and schema tests and by tests/perf/bench_nginx.py.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests.conftest import ROOT, database_url, ensure_debian_packages, free_port, wait_for_port

DEPLOY = ROOT / "deploy"
SPEC_PORT = 8000
ACCEL_PREFIX = "/_protected/media/"


def port_is_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def self_signed_certificate(folder):
    """A certificate for localhost and 127.0.0.1, as an administrator would make one with openssl."""
    cert, key = folder / "biztel.crt", folder / "biztel.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def render_site(*, port, upstream_port, cert, key, media_root, static_root, log_dir, extra="", s3_endpoint=None):
    """deploy/nginx.conf with this run's paths and ports; refuses a file that no longer has them."""
    text = (DEPLOY / "nginx.conf").read_text()
    replacements = {
        "listen 8000 ssl http2;": f"listen {port} ssl http2;",
        "server 127.0.0.1:8001;": f"server 127.0.0.1:{upstream_port};",
        "/etc/biztel/tls/biztel.crt": str(cert),
        "/etc/biztel/tls/biztel.key": str(key),
        "alias /var/lib/biztel/media/;": f"alias {media_root}/;",
        "alias /var/lib/biztel/static/;": f"alias {static_root}/;",
        "/var/log/nginx/": f"{log_dir}/",
        "proxy_pass http://127.0.0.1:9000/;": f"proxy_pass {s3_endpoint or 'http://127.0.0.1:9'}/;",
    }
    for old, new in replacements.items():
        if old not in text:
            raise AssertionError(f"deploy/nginx.conf no longer contains {old!r}")
        text = text.replace(old, new)
    if extra:
        # A benchmark's extra location goes inside the server block; {media_root} is filled in.
        head, tail = text.rsplit("}", 1)
        text = head + extra.replace("{media_root}", str(media_root)) + "\n}" + tail
    return text


def nginx_main_config(folder, site_path):
    """The part Debian's /etc/nginx/nginx.conf plays, with everything under `folder`.
    Workers run as nobody, like www-data in production: stored files must be readable to them."""
    return f"""
user nobody nogroup;
worker_processes 2;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    sendfile on;
    tcp_nopush on;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    client_body_temp_path {folder}/tmp/body;
    proxy_temp_path {folder}/tmp/proxy;
    fastcgi_temp_path {folder}/tmp/fastcgi;
    uwsgi_temp_path {folder}/tmp/uwsgi;
    scgi_temp_path {folder}/tmp/scgi;
    gzip on;
    include {site_path};
}}
"""


@dataclass
class Stack:
    folder: Path
    port: int
    direct_port: int
    cert: Path
    media_root: Path
    env: dict
    processes: dict = field(default_factory=dict)

    @property
    def base_url(self):
        """What users reach: nginx, HTTPS."""
        return f"https://localhost:{self.port}"

    @property
    def direct_url(self):
        """gunicorn alone, answering downloads itself (no X-Accel-Redirect): the direct path."""
        return f"http://127.0.0.1:{self.direct_port}"

    def manage(self, *args, check=True, env=None):
        """Run a management command as the server's operator does; returns its stdout."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env={**self.env, **(env or {})},
            capture_output=True, text=True, timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def set_system(self, **values):
        self.manage("biztel_settings", *[a for k, v in values.items() for a in ("--set", f"{k}={v}")])
        # SPEC.md §4: in force for every web process within a second.
        time.sleep(1.1)

    def download_log(self):
        path = self.folder / "logs" / "biztel-download.log"
        return path.read_text() if path.exists() else ""

    def log(self, name):
        path = self.folder / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stored_file(self, name):
        """The file of that name in storage (exactly one)."""
        found = [p for p in self.media_root.rglob(name) if ".incoming" not in p.parts]
        assert len(found) == 1, f"{name}: {found}"
        return found[0]

    def stop(self):
        for name, process in reversed(list(self.processes.items())):
            if process.poll() is None:
                process.send_signal(signal.SIGQUIT if name == "nginx" else signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _start(stack, name, command, port=None):
    logfile = open(stack.folder / "logs" / f"{name}.log", "ab")
    process = subprocess.Popen(command, cwd=ROOT, env=stack.env, stdout=logfile, stderr=subprocess.STDOUT)
    stack.processes[name] = process
    if port is not None:
        try:
            wait_for_port(port, process, timeout=30)
        except RuntimeError as exc:
            raise RuntimeError(f"{name}: {exc}\n{stack.log(name)[-3000:]}") from None
    return process


def wait_for_log(stack, name, text, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in stack.log(name):
            return
        if stack.processes[name].poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not say {text!r}:\n{stack.log(name)[-3000:]}")


def start_stack(
    *, database_url, redis_url, extra_env=None, celery=True, static=False, web_workers=2, nginx_extra="", s3_endpoint=None
):
    """Start nginx (TLS), gunicorn behind it, a second gunicorn for the direct path,
    and (celery=True) a Celery worker and beat. web_workers=None keeps deploy/gunicorn.conf.py's
    number. With s3_endpoint, nginx's /_s3/ location proxies to it (extra_env names the bucket).
    Call .stop() when done."""
    ensure_debian_packages(("nginx", "nginx"), ("openssl", "openssl"))
    import redis

    if celery:
        # The Redis database is this run's alone: stale deliveries of an earlier run must not arrive.
        redis.Redis.from_url(redis_url).flushdb()

    # Under /tmp and not pytest's private folder, so nginx's unprivileged workers can read the files.
    folder = Path(tempfile.mkdtemp(prefix="biztel-stack-"))
    folder.chmod(0o755)
    for sub in ("logs", "tmp", "media", "static", "var", "tls"):
        (folder / sub).mkdir(mode=0o755)
    port = SPEC_PORT if port_is_free(SPEC_PORT) else free_port()
    web_port, direct_port = free_port(), free_port()
    cert, key = self_signed_certificate(folder / "tls")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "MEDIA_ROOT": str(folder / "media"),
        "STATIC_ROOT": str(folder / "static"),
        "BIZTEL_VAR_DIR": str(folder / "var"),
        "SECRET_KEY": "e2e-" + os.urandom(16).hex(),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "localhost,127.0.0.1",
        "DOWNLOAD_ACCEL_REDIRECT_PREFIX": ACCEL_PREFIX,
        "CALLACTION_ALLOWED_NETWORKS": "127.0.0.0/8",
        # Behind TLS as deploy/env.example sets it (SPEC.md §10).
        "SESSION_COOKIE_SECURE": "true",
        "CSRF_COOKIE_SECURE": "true",
        "SECURE_HSTS_SECONDS": "31536000",
        "GUNICORN_BIND": f"127.0.0.1:{web_port}",
        "GUNICORN_LOG_LEVEL": "warning",
        "GUNICORN_ACCESS_LOG": "",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    if web_workers is not None:
        env["GUNICORN_WORKERS"] = str(web_workers)
    stack = Stack(folder=folder, port=port, direct_port=direct_port, cert=cert, media_root=folder / "media", env=env)
    try:
        if static:
            stack.manage("collectstatic", "--noinput")
        site = folder / "biztel.conf"
        site.write_text(render_site(
            port=port, upstream_port=web_port, cert=cert, key=key, media_root=folder / "media",
            static_root=folder / "static", log_dir=folder / "logs", extra=nginx_extra, s3_endpoint=s3_endpoint,
        ))
        main = folder / "nginx.conf"
        main.write_text(nginx_main_config(folder, site))
        gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(DEPLOY / "gunicorn.conf.py")]
        _start(stack, "gunicorn", gunicorn, port=web_port)
        stack.env = {**env, "DOWNLOAD_ACCEL_REDIRECT_PREFIX": "", "GUNICORN_BIND": f"127.0.0.1:{direct_port}",
                     "GUNICORN_WORKERS": "1"}
        _start(stack, "gunicorn-direct", gunicorn, port=direct_port)
        stack.env = env
        _start(stack, "nginx", ["nginx", "-c", str(main), "-p", str(folder)], port=port)
        if celery:
            _start(stack, "worker", [sys.executable, "-m", "celery", "-A", "biztel", "worker",
                                     "--loglevel", "INFO", "--concurrency", "2", "--without-gossip", "--without-mingle"])
            _start(stack, "beat", [sys.executable, "-m", "celery", "-A", "biztel", "beat", "--loglevel", "INFO",
                                   "--schedule", str(folder / "var" / "celerybeat-schedule")])
            wait_for_log(stack, "worker", "ready.")
    except BaseException:
        stack.stop()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return stack


def ingest_stereo_call(stack, pbx_token, fields, seconds=3.0):
    """Post a stereo WAV call through nginx as the PBX does; returns the answer's JSON."""
    import requests

    from tests.media import tone, wav_bytes

    stereo = wav_bytes([tone(440, seconds), tone(1000, seconds)])
    answer = requests.post(
        f"{stack.base_url}/internal/api/v1/recordings",
        headers={"Authorization": f"Token {pbx_token}"},
        data=fields,
        files={"stereo": ("call.wav", stereo, "audio/wav")},
        verify=str(stack.cert),
        timeout=60,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


@contextmanager
def product_stack(django_db_blocker, **options):
    """The stack on pytest-django's test database, emptied afterwards for the tests that follow."""
    from django.core.management import call_command
    from django.db import connection

    with django_db_blocker.unblock():
        url = database_url(connection)
    stack = start_stack(database_url=url, redis_url=os.environ["REDIS_URL"], **options)
    try:
        yield stack
    finally:
        stack.stop()
        with django_db_blocker.unblock():
            call_command("flush", interactive=False, verbosity=0)
        shutil.rmtree(stack.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def receiver():
    """A local HTTP receiver for the call action's notifications (module-wide: the stack is too)."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.expect_request("/monitor_file_event").respond_with_data("OK")
    server.start()
    yield server
    server.clear()
    server.stop()
