"""gunicorn for the gateway: `gunicorn -c deploy/gunicorn.conf.py biztel.wsgi:application`.

Behind nginx (deploy/nginx.conf) it listens on loopback only. Each value can be
overridden from the environment (deploy/env.example).
"""

import multiprocessing
import os

wsgi_app = "biztel.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8001")
# Downloads are sent by nginx, so a worker is busy only for the database work of
# a request; uploads from the PBX are the long requests, hence threads.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 4))
# A whole call uploaded over a slow PBX link must not be cut off.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 300))
graceful_timeout = 30
keepalive = 5
# nginx on the same machine is the only client; it says who the real client is.
forwarded_allow_ips = "127.0.0.1,::1"
# Empty: no access log (nginx keeps one).
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")


# Metrics (README → Operations): with PROMETHEUS_MULTIPROC_DIR each worker keeps its
# values in files there and /metrics adds them up.
def on_starting(server):
    """Make the folder and drop the files of processes that are gone. Files of running
    ones (Celery workers sharing the folder) stay: a web restart resets only its own."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        pid = name.removesuffix(".db").rpartition("_")[2]
        if name.endswith(".db") and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            os.remove(os.path.join(folder, name))


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
