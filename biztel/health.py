"""What an operator watches (SPEC.md §11): /healthz, /readyz, /metrics, and the
heartbeats of the Celery worker and beat that /readyz reads.

The worker and beat are told apart by where each heartbeat is written, not by a task:
the worker's comes from a step of its consumer (so only a worker connected to the
broker beats), every HEARTBEAT_SECONDS on the worker's own timer; beat's from its
scheduler's tick, in the beat process. Both go to the "heartbeats" cache (Redis, or
files in the embedded default), which every process sees.
"""

import ipaddress
import logging
import time

from celery import bootsteps
from celery.beat import PersistentScheduler
from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_safe
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from biztel import metrics

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15
WORKER_WITHIN_SECONDS = 60
BEAT_WITHIN_SECONDS = 90
# name -> function raising when the part is not fine; apps add theirs in ready()
# (recordings: the storage), so the platform imports no feature.
_checks = {}


def readiness_check_add(name, check):
    _checks[name] = check


def heartbeat_record(name):
    caches["heartbeats"].set(f"heartbeat:{name}", time.time(), timeout=None)


def heartbeat_age(name):
    """Seconds since `name` last beat, or None when it never did."""
    seen = caches["heartbeats"].get(f"heartbeat:{name}")
    return None if seen is None else max(0.0, time.time() - seen)


def _quietly_record(name):
    # A heartbeat that cannot be written (Redis down) must not stop the worker or beat:
    # the missing heartbeat is the report.
    try:
        heartbeat_record(name)
    except Exception as exc:
        log.warning("heartbeat %s not recorded: %s", name, exc)


class WorkerHeartbeat(bootsteps.StartStopStep):
    """A consumer step: it starts once the worker consumes from the broker and stops
    when the connection is lost (the consumer restarts its steps on reconnecting)."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.timer_entry = None

    def start(self, parent):
        _quietly_record("worker")
        self.timer_entry = parent.timer.call_repeatedly(HEARTBEAT_SECONDS, _quietly_record, ("worker",))

    def stop(self, parent):
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None

    shutdown = stop


class HeartbeatScheduler(PersistentScheduler):
    """Celery beat's file-backed scheduler that also records each tick
    (CELERY_BEAT_SCHEDULER), and ticks at least every HEARTBEAT_SECONDS."""

    _last_heartbeat = 0.0

    def tick(self, *args, **kwargs):
        if time.monotonic() - self._last_heartbeat >= HEARTBEAT_SECONDS:
            _quietly_record("beat")
            self._last_heartbeat = time.monotonic()
        return min(super().tick(*args, **kwargs), HEARTBEAT_SECONDS)


@require_safe
def healthz(request):
    return JsonResponse({"status": "ok"})


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _redis():
    from django_redis import get_redis_connection

    get_redis_connection("default").ping()


def _seen(name, within):
    def check():
        age = heartbeat_age(name)
        if age is None:
            raise LookupError(f"no {name} heartbeat yet")
        if age > within:
            raise LookupError(f"last {name} heartbeat {int(age)} s ago (more than {within} s)")
        return {"seen_seconds_ago": round(age, 1)}

    return check


def _run(check):
    try:
        return {"state": "ok", **(check() or {})}
    except Exception as exc:
        # The exception's type and, for our own checks, its text: never a URL or a password.
        detail = str(exc) if isinstance(exc, LookupError) else type(exc).__name__
        return {"state": "failing", "detail": detail}


@require_safe
def readyz(request):
    results = {"database": _run(_database)}
    results["redis"] = _run(_redis) if settings.REDIS_URL else {"state": "ok", "detail": "not used (embedded default)"}
    results.update({name: _run(check) for name, check in _checks.items()})
    results["worker"] = _run(_seen("worker", WORKER_WITHIN_SECONDS))
    results["beat"] = _run(_seen("beat", BEAT_WITHIN_SECONDS))
    ready = all(result["state"] == "ok" for result in results.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": results}, status=200 if ready else 503)


def _metrics_allowed(request):
    from biztel.public import client_ip

    address = client_ip(request)
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in network for network in settings.METRICS_ALLOWED_NETWORKS)


@require_safe
def metrics_view(request):
    if not _metrics_allowed(request):
        return HttpResponse("403 Forbidden: /metrics is readable only from METRICS_ALLOWED_NETWORKS.\n",
                            status=403, content_type="text/plain; charset=utf-8")
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
