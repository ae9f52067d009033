"""Reads of a whole day of recordings (the listing, the archive and the export)."""

from datetime import datetime, time, timedelta

from django.db.models import Case, Q, Value, When
from django.utils import timezone

from recordings.models import ContentType, Recording, RecordingFile


def day_bounds(day):
    """The first moment of a local calendar day and of the next one."""
    start = timezone.make_aware(datetime.combine(day, time.min))
    return start, timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


def day_recordings(day, *, after=None, limit, groups=()):
    """Up to `limit` recordings started that day, in (started_at, id) order, after the
    (started_at, id) key `after`; only the given groups when any are given."""
    start, end = day_bounds(day)
    recordings = Recording.objects.filter(started_at__gte=start, started_at__lt=end)
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
