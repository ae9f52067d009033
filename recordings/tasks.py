"""Periodic jobs of the recordings (scheduled in biztel/settings.py CELERY_BEAT_SCHEDULE)."""

from celery import shared_task

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
