"""Reads of recordings."""

import re
from datetime import datetime, time, timedelta
from time import monotonic

from django.db.models import Case, Q, Sum, Value, When
from django.utils import timezone

from biztel.limits import month_bounds
from biztel.sql import fetch_one
from recordings.models import ContentType, Recording, RecordingFile

_ID = re.compile(r"[0-9A-Za-z._-]{1,64}")


# The download's lookup (biztel/sql.py). The rows built from it carry only these fields.
_RECORDING_AND_FILE = """
SELECT r.id, r.request_id, r."group", f.id, f.name, f.path, f.size, f.sha256, f.created_at,
       f.lossless_size, f.lossless_sha256
  FROM recordings_recording r
  LEFT JOIN recordings_recordingfile f
    ON f.recording_id = r.id AND f.content_type = %(content_type)s AND f.deleted_at IS NULL AND f.purging_at IS NULL
 WHERE r.request_id = %(id)s OR r.unique_id = %(id)s
 LIMIT 1
"""


# What the download's lookup found is kept by the process for less than this long, so a
# deletion or a purge made elsewhere is in force within a second; where the file is gone,
# the failed open says so at once (the download then looks again, recordings/views.py).
# A deletion or purge made by this process drops the copies at once. A call not found is
# not kept: a recording just stored can be downloaded at once.
REFRESH_SECONDS = 1.0
_downloads = {}  # (identifier, content_type) -> (monotonic time the lookup started, recording, stored file)
_DOWNLOADS_MAX = 10_000


def recording_and_file(identifier, content_type, *, fresh=False):
    """(recording, stored file) for a download; either may be None (no such call; file
    purged or never produced). From this process's copy of the last second unless fresh;
    else one query."""
    if not _ID.fullmatch(identifier or ""):
        return None, None
    key = (identifier, content_type)
    started = monotonic()
    kept = None if fresh else _downloads.get(key)
    if kept is not None and started - kept[0] < REFRESH_SECONDS:
        return kept[1], kept[2]
    recording, stored = _recording_and_file(identifier, content_type)
    if recording is None:
        _downloads.pop(key, None)
    else:
        if len(_downloads) >= _DOWNLOADS_MAX:
            _downloads.clear()
        _downloads[key] = (started, recording, stored)
    return recording, stored


def downloads_forget():
    """Drop this process's copies of download lookups (after a deletion or a purge)."""
    _downloads.clear()


def _recording_and_file(identifier, content_type):
    row = fetch_one(_RECORDING_AND_FILE, {"id": identifier, "content_type": content_type})
    if row is None:
        return None, None
    recording_id, request_id, group, file_id, name, path, size, sha256, created_at, lossless_size, lossless_sha256 = row
    recording = Recording(id=recording_id, request_id=request_id, group=group)
    if file_id is None:
        return recording, None
    stored = RecordingFile(
        id=file_id, recording=recording, content_type=content_type, name=name, path=path, size=size,
        sha256=sha256, created_at=created_at, lossless_size=lossless_size, lossless_sha256=lossless_sha256,
    )
    return recording, stored


def recording_minutes_in_month(*, year, month):
    """Minutes of mixed (monaural) recordings of calls started in that month: the time
    that counts towards the contracted recording time. Separated legs do not count, and
    a purged file still counts: it was recorded."""
    start = timezone.make_aware(datetime(year, month, 1))
    _, end = month_bounds(start)
    seconds = RecordingFile.objects.filter(
        content_type=ContentType.MONAURAL, recording__started_at__gte=start, recording__started_at__lt=end
    ).aggregate(total=Sum("duration"))["total"]
    return round((seconds or 0) / 60, 1)


def day_bounds(day):
    """The first moment of a local calendar day and of the next one."""
    start = timezone.make_aware(datetime.combine(day, time.min))
    return start, timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


def recordings_page(*, start, end, after=None, limit, groups=(), filters=None, include_deleted=False):
    """Up to `limit` recordings started in [start, end), in (started_at, id) order, after the
    (started_at, id) key `after`; only the given groups when any are given; `filters` maps
    fields to exact values; those deleted on request only with include_deleted."""
    recordings = Recording.objects.filter(started_at__gte=start, started_at__lt=end, **(filters or {}))
    if not include_deleted:
        recordings = recordings.filter(deleted_at__isnull=True)
    if groups:
        recordings = recordings.filter(group__in=groups)
    if after is not None:
        started_at, pk = after
        recordings = recordings.filter(Q(started_at__gt=started_at) | Q(started_at=started_at, pk__gt=pk))
    return list(recordings.order_by("started_at", "pk").prefetch_related("files")[:limit])


# mixed first, then the customer and the operator
_CONTENT_TYPE_ORDER = Case(
    *(When(content_type=ct, then=Value(n)) for n, ct in enumerate(ContentType.values)), default=Value(len(ContentType.values))
)


def day_files(day):
    """The still stored files of the recordings started that day, in call order (an iterator)."""
    start, end = day_bounds(day)
    return (
        RecordingFile.objects.filter(
            deleted_at__isnull=True, recording__started_at__gte=start, recording__started_at__lt=end
        )
        .select_related("recording")
        .order_by("recording__started_at", "recording_id", _CONTENT_TYPE_ORDER)
        .iterator(chunk_size=500)
    )


def day_files_stored_since(day, moment):
    """Whether a file of that day was stored at or after `moment`."""
    start, end = day_bounds(day)
    return RecordingFile.objects.filter(
        recording__started_at__gte=start, recording__started_at__lt=end, created_at__gte=moment
    ).exists()


def day_recordings_deleted_since(day, moment):
    """Whether a recording started that day was deleted on request at or after `moment`."""
    start, end = day_bounds(day)
    return Recording.objects.filter(started_at__gte=start, started_at__lt=end, deleted_at__gte=moment).exists()


def recording_by_id(identifier):
    """The recording with this request ID or unique ID (with its files), or None."""
    if not _ID.fullmatch(identifier or ""):
        return None
    return (
        Recording.objects.filter(Q(request_id=identifier) | Q(unique_id=identifier)).prefetch_related("files").first()
    )
