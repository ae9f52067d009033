import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "biztel.settings")

app = Celery("biztel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The worker's heartbeat for /readyz (biztel/health.py), beating while it consumes.
app.steps["consumer"].add("biztel.health:WorkerHeartbeat")
