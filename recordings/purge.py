"""Deleting what is past its retention (SPEC.md §2.4): stored files and day archives.

What is due is decided when the purge runs, from the time a file was stored and the
retention in force at that moment, so switching the bulk-download licence on or off,
or changing a retention period, applies to the files already stored as well.
Each file is deleted from storage first (its FLAC copy, then the MP3) and marked deleted
after; a file that cannot
be deleted stays unmarked and so stays due for the next run. A run that is
interrupted leaves at most some files gone but unmarked, which the next run marks
(deleting a missing file counts as done). The files of a recording under legal hold are
never due; the rows of recordings deleted on request go deleted_metadata_days later.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from biztel import config, metrics
from recordings import storage
from recordings.models import ContentType, DayArchive, Recording, RecordingFile
from recordings.retention import retention_days

log = logging.getLogger(__name__)

BATCH_SIZE = 500


@dataclass
class PurgeOutcome:
    files: int = 0
    archives: int = 0
    failed: int = 0
    recordings: int = 0


def due_cutoffs(*, now, settings_row):
    """(content type, stored at or before) pairs of the kinds that expire at all."""
    cutoffs = []
    for content_type in ContentType.values:
        days = retention_days(content_type, settings_row)
        if days is not None:
            cutoffs.append((content_type, now - timedelta(days=days)))
    return cutoffs


def _due_batches(content_type, cutoff, batch_size):
    # Keyset walk on (created_at, id) over the partial index file_stored_age_idx: a file
    # that failed is passed over, so a run ends even when the storage refuses everything.
    after = None
    while True:
        due = RecordingFile.objects.filter(
            content_type=content_type, created_at__lte=cutoff, deleted_at__isnull=True, recording__legal_hold=False
        )
        if after is not None:
            started, pk = after
            due = due.filter(Q(created_at__gt=started) | Q(created_at=started, pk__gt=pk), created_at__gte=started)
        batch = list(due.order_by("created_at", "pk").only("pk", "path", "created_at", "lossless_sha256")[:batch_size])
        if not batch:
            return
        yield batch
        after = (batch[-1].created_at, batch[-1].pk)


def _delete(relative, outcome, report):
    try:
        storage.delete(relative)
    except OSError as exc:
        outcome.failed += 1
        metrics.PURGED.labels(result="failed").inc()
        log.warning("purge: cannot delete %s, left due for the next run: %s", relative, exc)
        report("failed", relative, exc)
        return False
    report("deleted", relative, None)
    metrics.PURGED.labels(result="deleted").inc()
    return True


def _quiet(verb, relative, error):
    pass


def purge_due(*, now=None, dry_run=False, batch_size=BATCH_SIZE, report=_quiet):
    """Delete every file and archive due at `now` (default: the present).

    report(verb, relative_path, error) is called per item with verb "deleted",
    "would delete" (dry run) or "failed".
    """
    now = now or timezone.now()
    # Straight from the database: a licence switched a moment ago must count.
    settings_row = config.load()
    outcome = PurgeOutcome()
    for content_type, cutoff in due_cutoffs(now=now, settings_row=settings_row):
        for batch in _due_batches(content_type, cutoff, batch_size):
            if dry_run:
                for stored in batch:
                    for relative in stored.stored_paths:
                        report("would delete", relative, None)
                outcome.files += len(batch)
                continue
            deleted = [stored.pk for stored in batch if all(_delete(p, outcome, report) for p in stored.stored_paths)]
            RecordingFile.objects.filter(pk__in=deleted, deleted_at__isnull=True).update(deleted_at=timezone.now())
            outcome.files += len(deleted)

    archive_cutoff = now - timedelta(days=settings_row.bulk_retention_days)
    for archive in DayArchive.objects.filter(deleted_at__isnull=True, built_at__lte=archive_cutoff).order_by("day"):
        if dry_run:
            report("would delete", archive.path, None)
            outcome.archives += 1
        elif _delete(archive.path, outcome, report):
            DayArchive.objects.filter(pk=archive.pk, deleted_at__isnull=True).update(deleted_at=timezone.now())
            outcome.archives += 1
    outcome.recordings = _deleted_metadata_purge(now=now, settings_row=settings_row, dry_run=dry_run, report=report)
    return outcome


def _deleted_metadata_purge(*, now, settings_row, dry_run, report):
    """Remove the rows of recordings deleted on request deleted_metadata_days ago (SPEC.md §8);
    their files are gone already. The access log and audit trail keep the request ID as text."""
    cutoff = now - timedelta(days=settings_row.deleted_metadata_days)
    due = Recording.objects.filter(deleted_at__lte=cutoff, legal_hold=False)
    removed = 0
    for pk, request_id in due.values_list("pk", "request_id").iterator():
        if not dry_run and not Recording.objects.filter(pk=pk, deleted_at__lte=cutoff, legal_hold=False).delete()[0]:
            continue
        report("would delete" if dry_run else "deleted", f"recording {request_id} (metadata)", None)
        removed += 1
    return removed
