import os

from celery import Celery
from celery.signals import task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "biztel.settings")

app = Celery("biztel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The worker's heartbeat for /readyz (biztel/health.py), beating while it consumes.
app.steps["consumer"].add("biztel.health:WorkerHeartbeat")


@task_prerun.connect
def _usable_database_connection(sender=None, **kwargs):
    """CELERY_DB_REUSE_MAX keeps connections across tasks, so Celery no longer replaces
    one the database dropped: without this, every task after a restart or failover
    would fail on the dead connection until the worker restarts. Only a connection that
    saw an error is checked (one `SELECT 1`), so a healthy worker pays nothing per task.
    A task run eagerly, inside its caller's transaction, keeps the caller's connection,
    as Celery's own fixup does."""
    from django.db import connections

    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    for connection in connections.all(initialized_only=True):
        if connection.errors_occurred:
            connection.close_if_unusable_or_obsolete()
