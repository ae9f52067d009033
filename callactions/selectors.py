"""Reads for call actions."""

from datetime import timedelta

from django.db.models import Q, prefetch_related_objects
from django.utils import timezone

from callactions.models import CallAction, Event


def actions_for(*, event_type, external_number):
    """The enabled actions of an event whose targets tick this external number, in order."""
    return list(
        CallAction.objects.filter(enabled=True, event_type=event_type, targets__number=external_number).order_by(
            "order", "name"
        )
    )


def duration_text(seconds):
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def event_variables(event, files=True):
    """The built-in variables of SPEC.md §5 and §8 for this event's recording (those that
    read the files — FILE_, AUDIO_, STATUS — left empty when files is false: nobody needs
    them and they cost a query). AUDIO_ of a file the call does not have is false."""
    recording = event.recording
    if files:
        prefetch_related_objects([recording], "files")  # one query for the names and STATUS
    files = {f.content_type: f for f in recording.files.all()} if files else {}
    names = {content_type: f.name for content_type, f in files.items()}
    audio = {content_type: "true" if f.audio_detected else "false" for content_type, f in files.items()}
    return {
        "ID": recording.request_id,
        "UNIQUEID": recording.unique_id,
        "TEL": recording.tel,
        "EXT": recording.extension,
        "CALLER": recording.caller,
        "CALLEE": recording.callee,
        "EXTERNAL_NUMBER": recording.external_number,
        "SIDE": recording.side,
        "DURATION": duration_text(recording.duration),
        # processing time: when the event was written, so every retry says the same
        "DATE": timezone.localtime(event.created_at).strftime("%Y-%m-%d %H:%M:%S"),
        "FILE_MONAURAL": names.get("monaural", ""),
        "FILE_LEFT": names.get("left", ""),
        "FILE_RIGHT": names.get("right", ""),
        "FILE_STEREO": names.get("stereo", ""),
        "STATUS": recording.status if files else "",
        "END_CAUSE": recording.end_cause,
        "AUDIO_MONAURAL": audio.get("monaural", "false"),
        "AUDIO_LEFT": audio.get("left", "false"),
        "AUDIO_RIGHT": audio.get("right", "false"),
    }


def events_to_requeue(*, now, grace_seconds, limit):
    """Pending events due now that nobody holds and that are not (recently) in the queue."""
    stale = now - timedelta(seconds=grace_seconds)
    return list(
        Event.objects.filter(status=Event.Status.PENDING, next_attempt_at__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .filter(Q(queued_at__isnull=True) | Q(queued_at__lt=stale))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


# The keys of the import/export file (SPEC.md §5), in this order.
FILE_KEYS = (
    "name",
    "event_type",
    "order",
    "condition_code",
    "condition_pattern",
    "integration_type",
    "url",
    "method",
    "headers",
    "body",
    "timeout",
    "extraction_pattern",
    "memo",
    "error_pattern",
    "retry_count",
    "retry_interval",
    "targets",
    "enabled",
    "signing_secret",
)


def callactions_export():
    """Every action as the list of objects import_callactions reads."""
    exported = []
    for action in CallAction.objects.prefetch_related("targets").order_by("event_type", "order", "name"):
        item = {key: getattr(action, key) for key in FILE_KEYS if key != "targets"}
        item["targets"] = sorted(number.number for number in action.targets.all())
        exported.append({key: item[key] for key in FILE_KEYS})
    return exported
