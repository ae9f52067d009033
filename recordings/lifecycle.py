"""The recording lifecycle of SPEC.md §8: delete on request, legal hold, the audit trail.

A delete removes every stored file of the call and the day archive that holds them,
keeps the row (status deleted) for deleted_metadata_days, and sends the
recording_deleted event (recordings/signals.py) in the same transaction. The files go first, under the row's
lock: a storage error leaves the row as it was, so a second DELETE finishes the job.
"""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from biztel.errors import Conflict
from recordings import storage
from recordings.models import AuditEntry, DayArchive, Recording
from recordings.selectors import downloads_forget
from recordings.signals import RECORDING_DELETED, recording_event_send

HELD_MESSAGE = "The recording is under legal hold."


@dataclass(frozen=True)
class Actor:
    """Who asked: an API token's account (via api) or an admin user (via admin)."""

    account: object
    via: str
    token: object = None


def recording_files_delete(files):
    """Delete every stored file of these RecordingFiles from storage (a file already gone
    counts as deleted). The one place that knows which stored objects a recording has."""
    for stored in files:
        for relative in stored.stored_paths:
            storage.delete(relative)


def day_archive_discard(day):
    """Delete the day's archive object; archive_for_day builds it again, without what is gone, when next asked."""
    archive = DayArchive.objects.select_for_update().filter(day=day, deleted_at__isnull=True).first()
    if archive is None:
        return
    storage.delete(archive.path)
    archive.deleted_at = timezone.now()
    archive.save(update_fields=["deleted_at"])


def _audit(*, recording, action, actor, detail=""):
    AuditEntry.objects.create(
        at=timezone.now(),
        action=action,
        recording=recording,
        request_id=recording.request_id,
        unique_id=recording.unique_id,
        account=actor.account,
        username=actor.account.get_username() if actor.account else "",
        token=actor.token,
        via=actor.via,
        detail=detail,
    )


def recording_delete(*, recording, actor):
    """Delete the recording's files and keep its metadata; returns the recording.

    Deleting a deleted recording changes nothing (no second event); one under legal hold
    raises Conflict."""
    with transaction.atomic():
        recording = Recording.objects.select_for_update().get(pk=recording.pk)
        if recording.legal_hold:
            raise Conflict(HELD_MESSAGE)
        if recording.deleted_at is not None:
            return recording
        now = timezone.now()
        files = list(recording.files.all())
        recording_files_delete(files)
        recording.files.filter(deleted_at__isnull=True).update(deleted_at=now)
        day_archive_discard(timezone.localtime(recording.started_at).date())
        recording.deleted_at = now
        recording.save(update_fields=["deleted_at"])
        names = ", ".join(f.name for f in files)
        _audit(recording=recording, action=AuditEntry.Action.DELETE, actor=actor, detail=f"files: {names}"[:500])
        recording_event_send(recording=recording, event_type=RECORDING_DELETED)
        transaction.on_commit(downloads_forget)  # this process's downloads see it at once
    return recording


def recording_hold_set(*, recording, held, actor):
    """Place (held=True) or lift the legal hold; recorded in the audit trail when it changes."""
    with transaction.atomic():
        recording = Recording.objects.select_for_update().get(pk=recording.pk)
        if recording.legal_hold != held:
            recording.legal_hold = held
            recording.save(update_fields=["legal_hold"])
            _audit(recording=recording, action=AuditEntry.Action.HOLD if held else AuditEntry.Action.LIFT, actor=actor)
    return recording
