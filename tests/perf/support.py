"""What the benchmarks share: a throwaway database, the real servers, wrk."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import ROOT, database_url, free_port, wait_for_port


@contextmanager
def bench_database():
    """A fresh, migrated database (test_<name> of DATABASE_URL), dropped afterwards. Yields its URL."""
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    config = setup_databases(verbosity=0, interactive=False)
    url = database_url()
    try:
        yield url
    finally:
        connection.close()
        teardown_databases(config, verbosity=0)


@contextmanager
def media_root():
    folder = Path(tempfile.mkdtemp(prefix="biztel-bench-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def gunicorn(database_url, media, extra_env=None, app=None):
    """gunicorn as deployed (deploy/gunicorn.conf.py), without its access log; `app`
    replaces the product's WSGI application."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MEDIA_ROOT": str(media),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_ACCESS_LOG": "",
        "GUNICORN_LOG_LEVEL": "warning",
        **(extra_env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"), *([app] if app else [])],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_for_port(port, process)
        yield port, process
    finally:
        process.terminate()
        process.wait(timeout=15)


@contextmanager
def nginx(server_block):
    """nginx in the foreground with one server block; `{port}` in it is filled in."""
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="biztel-nginx-"))
    conf = folder / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    types {{ audio/mpeg mp3; }}
    {server_block.replace("{port}", str(port))}
}}
"""
    )
    process = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(folder)], stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def wrk(url, headers=None, seconds=5, connections=8, threads=2):
    """(requests per second, median latency in seconds) measured by wrk."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    value, unit = re.search(r"50%\s+([\d.]+)(us|ms|s|m)", output).groups()
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        raise RuntimeError(f"{url}: {non_2xx.group(1)} answers were not 2xx")
    return rate, float(value) * _UNITS[unit]


def peak_rss_kib(pid):
    """VmHWM: the most resident memory the process has had, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for {pid}")


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]
