"""How a recording is shown as JSON (ingest answers, the command's output, the day listing,
GET /public/api/v1/recordings/<id>)."""

from django.db.models import prefetch_related_objects
from django.utils import timezone

from biztel import config
from recordings.models import ContentType
from recordings.retention import file_expires_at


def file_data(stored):
    expires_at = file_expires_at(stored, config.current())
    return {
        "name": stored.name,
        "bytes": stored.size,
        "sha256": stored.sha256,
        "duration": stored.duration,
        "audio_detected": stored.audio_detected,
        "created_at": timezone.localtime(stored.created_at).isoformat(),
        "expires_at": timezone.localtime(expires_at).isoformat() if expires_at else None,
        "exists": stored.deleted_at is None,
        "lossless": {"bytes": stored.lossless_size, "sha256": stored.lossless_sha256} if stored.lossless_sha256 else None,
    }


def recording_data(recording):
    prefetch_related_objects([recording], "files")  # one query for the entries and the status
    files = {f.content_type: f for f in recording.files.all()}
    return {
        "request_id": recording.request_id,
        "unique_id": recording.unique_id,
        "started_at": timezone.localtime(recording.started_at).strftime("%Y-%m-%d %H:%M:%S"),
        "caller": recording.caller,
        "callee": recording.callee,
        "side": recording.side,
        "external_number": recording.external_number,
        "extension": recording.extension,
        "tel": recording.tel,
        "group": recording.group,
        "duration": recording.duration,
        "end_cause": recording.end_cause,
        "status": recording.status,
        "deleted_at": timezone.localtime(recording.deleted_at).isoformat() if recording.deleted_at else None,
        "legal_hold": recording.legal_hold,
        "files": {ct: file_data(files[ct]) if ct in files else None for ct in ContentType.values},
    }
