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
While a batch is being deleted its rows carry `purging_at`, and downloads treat those
files as gone (404), never as a missing file (500).

Each run also sweeps what crashes leave: this node's temporary files older than an hour
(storage.debris_remove) and stored files or objects that no row names, once an hour old.
"""

import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePosixPath

from django.db.models import Q
from django.utils import timezone

from biztel import config, metrics
from recordings import storage
from recordings.models import ContentType, DayArchive, Recording, RecordingFile
from recordings.retention import retention_days
from recordings.selectors import downloads_forget

log = logging.getLogger(__name__)

BATCH_SIZE = 500
# What the product stores (recordings and their copies by day, archives by month); anything
# else someone keeps in the same folder or bucket is never swept as an orphan.
STORED_SHAPE = re.compile(r"[0-9]{4}/[0-9]{2}/[0-9]{2}/[^/]+|archives/[0-9]{4}/[0-9]{2}/[^/]+")


@dataclass
class PurgeOutcome:
    files: int = 0
    archives: int = 0
    failed: int = 0
    recordings: int = 0
    debris: int = 0
    orphans: int = 0


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
            # Marked first, so a download from here on answers 404 instead of finding the file gone;
            # a file that cannot be deleted is unmarked again and stays due.
            RecordingFile.objects.filter(pk__in=[s.pk for s in batch]).update(purging_at=timezone.now())
            downloads_forget()  # this process's; the others' open of a deleted file fails
            deleted, failed = [], []
            for stored in batch:
                gone = all(_delete(relative, outcome, report) for relative in stored.stored_paths)
                (deleted if gone else failed).append(stored.pk)
            RecordingFile.objects.filter(pk__in=deleted, deleted_at__isnull=True).update(deleted_at=timezone.now())
            RecordingFile.objects.filter(pk__in=failed).update(purging_at=None)
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
    downloads_forget()
    if not dry_run:
        outcome.debris = storage.debris_remove(before=now - timedelta(seconds=storage.DEBRIS_AGE_SECONDS), report=report)
        outcome.orphans = orphans_remove(now=now, outcome=outcome, report=report)
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


def _named(paths):
    """The paths among `paths` that a row names (deleted or not: a purged row's file was deleted
    by the purge itself, and an archive is rebuilt under the same path)."""
    named = set(RecordingFile.objects.filter(path__in=paths).values_list("path", flat=True))
    named |= set(DayArchive.objects.filter(path__in=paths).values_list("path", flat=True))
    return named


_ARCHIVE_DAY = re.compile(r"archives/[0-9]{4}/[0-9]{2}/recordings-([0-9]{4}-[0-9]{2}-[0-9]{2})[-.][^/]*")


def _archives_replaced_since(paths, cutoff):
    """The archive objects among `paths` whose day was rebuilt after `cutoff`. In a bucket a
    rebuild leaves the object it replaces (a download may be reading it), whose age is when
    it was written; it stopped being named at the rebuild, so the hour counts from there."""
    days = {path: match.group(1) for path in paths if (match := _ARCHIVE_DAY.fullmatch(path))}
    if not days:
        return set()
    rebuilt = {
        day.isoformat()
        for day in DayArchive.objects.filter(day__in=set(days.values()), built_at__gt=cutoff).values_list("day", flat=True)
    }
    return {path for path, day in days.items() if day in rebuilt}


def orphans_remove(*, now, outcome, report=_quiet, batch_size=1000):
    """Delete stored files that no row names once they are an hour old: what a crash between
    storing a file and committing its row left (SPEC.md §9). Returns how many."""
    cutoff = now - timedelta(seconds=storage.DEBRIS_AGE_SECONDS)
    removed = 0
    batch = []

    def sweep(batch):
        # A file stored beside a named one under the same stem (the lossless .flac of an .mp3)
        # belongs to that row.
        candidates = {path: {path, str(PurePosixPath(path).with_suffix(".mp3"))} for path in batch}
        named = _named({name for names in candidates.values() for name in names})
        replaced_lately = _archives_replaced_since(batch, cutoff)
        count = 0
        for path, names in candidates.items():
            if not names & named and path not in replaced_lately and _delete(path, outcome, report):
                count += 1
        return count

    try:
        for relative, modified in storage.listing():
            if modified <= cutoff and STORED_SHAPE.fullmatch(relative):
                batch.append(relative)
            if len(batch) >= batch_size:
                removed += sweep(batch)
                batch = []
    except OSError as exc:
        outcome.failed += 1
        log.warning("purge: cannot list the storage for files no row names: %s", exc)
        report("failed", "(listing the storage)", exc)
        return removed
    if batch:
        removed += sweep(batch)
    return removed
