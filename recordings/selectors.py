"""Reads of recordings."""

import re
from datetime import datetime

from django.db.models import Q, Sum
from django.utils import timezone

from recordings.models import ContentType, Recording, RecordingFile

_ID = re.compile(r"[0-9A-Za-z._-]{1,64}")


def _by_id(identifier, prefix=""):
    return Q(**{f"{prefix}request_id": identifier}) | Q(**{f"{prefix}unique_id": identifier})


def recording_by_id(identifier):
    """The recording with this request ID or unique ID, or None (also for a malformed ID)."""
    if not _ID.fullmatch(identifier or ""):
        return None
    return Recording.objects.filter(_by_id(identifier)).first()


def recording_and_file(identifier, content_type):
    """(recording, stored file) for a download; either may be None (no such call; file
    purged or never produced). One query in the usual case, where both exist."""
    if not _ID.fullmatch(identifier or ""):
        return None, None
    stored = (
        RecordingFile.objects.select_related("recording")
        .filter(_by_id(identifier, "recording__"), content_type=content_type, deleted_at__isnull=True)
        .first()
    )
    if stored is not None:
        return stored.recording, stored
    return recording_by_id(identifier), None


def month_bounds(year, month):
    """Start and end (exclusive) of a calendar month in the server's time zone."""
    start = timezone.make_aware(datetime(year, month, 1))
    end = timezone.make_aware(datetime(year + month // 12, month % 12 + 1, 1))
    return start, end


def recording_minutes_in_month(*, year, month):
    """Minutes of mixed (monaural) recordings of calls started in that month: the time
    that counts towards the contracted recording time. Separated legs do not count, and
    a purged file still counts: it was recorded."""
    start, end = month_bounds(year, month)
    seconds = RecordingFile.objects.filter(
        content_type=ContentType.MONAURAL, recording__started_at__gte=start, recording__started_at__lt=end
    ).aggregate(total=Sum("duration"))["total"]
    return round((seconds or 0) / 60, 1)
