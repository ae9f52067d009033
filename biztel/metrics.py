"""Every Prometheus metric of the product (SPEC.md §11), and GET /metrics.

The definitions import nothing of the product, so every layer may count here:
recordings (ingest, purge), call actions (attempts, commit-to-send), the public API
(downloads). What is read from the database when Prometheus scrapes (pending events,
the month's quota) is yielded by collectors each app registers with
`scrape_collector_add` in its AppConfig.ready(), so this module imports no feature.

With PROMETHEUS_MULTIPROC_DIR set, prometheus-client keeps each process's values in
files there and the scrape adds them up: every gunicorn worker and every Celery
worker process on the machine counts into the same totals.
"""

import logging
import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess

log = logging.getLogger(__name__)

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if MULTIPROC_DIR:
    # A manage.py command run by hand counts too (an ingest): its files need the folder.
    os.makedirs(MULTIPROC_DIR, exist_ok=True)

INGESTS = Counter("biztel_ingests", "Ingest requests by outcome: stored, duplicate, rejected, failed.", ["outcome"])
INGEST_AUDIO_SECONDS = Counter("biztel_ingest_audio_seconds", "Seconds of call audio stored.")
INGEST_ENCODE_SECONDS = Histogram(
    "biztel_ingest_encode_seconds", "Time spent encoding one call's MP3 files.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
DOWNLOADS = Counter(
    "biztel_downloads", "Public API answers by HTTP status and content type (empty: not a file).",
    ["status", "content_type"],
)
DOWNLOAD_BYTES = Counter("biztel_download_bytes", "Bytes sent by the public API (body, as in the access log).")
CALLACTION_ATTEMPTS = Counter(
    "biztel_callaction_attempts", "Call-action attempts by outcome: succeeded, failed (tests included).", ["outcome"]
)
COMMIT_TO_SEND_SECONDS = Histogram(
    "biztel_callaction_commit_to_send_seconds",
    "From a recording's event committed to its first call-action attempt sent.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
PURGED = Counter("biztel_purge_files", "Stored files and day archives the purge handled, by result.", ["result"])

# Collectors here are run at each scrape only (never at registration: they read the database).
_scrape_registry = CollectorRegistry()


def scrape_collector_add(collector):
    """collector: an object with collect() yielding metric families, run at each scrape."""
    _scrape_registry.register(collector)


def ingest_observed(ingest):
    """Wraps recording_ingest(...) -> (recording, created) to count its outcome."""
    from biztel.errors import Conflict, ValidationFailed

    def counted(*args, **kwargs):
        try:
            recording, created = ingest(*args, **kwargs)
        except (ValidationFailed, Conflict):
            INGESTS.labels(outcome="rejected").inc()
            raise
        except Exception:
            INGESTS.labels(outcome="failed").inc()
            raise
        INGESTS.labels(outcome="stored" if created else "duplicate").inc()
        if created:
            INGEST_AUDIO_SECONDS.inc(float(recording.duration or 0))
        return recording, created

    counted.__name__, counted.__doc__, counted.__wrapped__ = ingest.__name__, ingest.__doc__, ingest
    return counted


def download_observed(entry):
    """entry: the access-log entry of a public API answer (recordings/access_log.py)."""
    DOWNLOADS.labels(status=str(entry["status"]), content_type=entry["content_type"] or "").inc()
    DOWNLOAD_BYTES.inc(entry["bytes_sent"] or 0)


def exposition():
    """The whole scrape: counters of every process, then the values read from the database now."""
    if MULTIPROC_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=MULTIPROC_DIR)
    else:
        registry = REGISTRY
    try:
        from_database = generate_latest(_scrape_registry)
    except Exception as exc:
        # The database is down: the counters are still worth reading (and /readyz says why).
        log.warning("metrics read from the database left out: %s", exc)
        from_database = b""
    return generate_latest(registry) + from_database


class QuotaCollector:
    """The month's quota: what is used and the licence's limits (SPEC.md §3.4)."""

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        from biztel import config
        from biztel.limits import quota_standing

        cfg = config.current()
        standing = quota_standing(
            request_limit=cfg.monthly_request_limit, object_limit=cfg.monthly_response_object_limit
        )
        for name, text, value in (
            ("biztel_quota_requests_used", "Requests counted against this month.", standing.requests_used),
            ("biztel_quota_requests_limit", "monthly_request_limit.", standing.request_limit),
            ("biztel_quota_objects_used", "Response objects counted against this month.", standing.objects_used),
            ("biztel_quota_objects_limit", "monthly_response_object_limit.", standing.object_limit),
        ):
            yield GaugeMetricFamily(name, text, value=value)


scrape_collector_add(QuotaCollector())
