"""Periodic jobs of the recordings (scheduled in biztel/settings.py CELERY_BEAT_SCHEDULE)."""

from datetime import timedelta

from celery import shared_task
from celery.signals import worker_ready
from django.utils import timezone

from recordings import storage
from recordings.archive import nightly_archive_build
from recordings.purge import purge_due


@shared_task
def purge_due_files():
    outcome = purge_due()
    return {"files": outcome.files, "archives": outcome.archives, "failed": outcome.failed}


@shared_task
def build_yesterdays_archive():
    archive = nightly_archive_build()
    return None if archive is None else archive.day.isoformat()


@worker_ready.connect
def sweep_debris_at_start(**kwargs):
    # A worker killed mid-ingest on this node left its temporary files; the hourly purge
    # would find them too, a restarted worker need not wait for it.
    storage.debris_remove(before=timezone.now() - timedelta(seconds=storage.DEBRIS_AGE_SECONDS))
