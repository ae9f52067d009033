"""Reads of recordings."""

import re

from django.db.models import Q

from recordings.models import Recording, RecordingFile

_ID = re.compile(r"[0-9A-Za-z._-]{1,64}")


def recording_by_id(identifier):
    """The recording with this request ID or unique ID, or None (also for a malformed ID)."""
    if not _ID.fullmatch(identifier or ""):
        return None
    return Recording.objects.filter(Q(request_id=identifier) | Q(unique_id=identifier)).first()


def recording_file(recording, content_type):
    """The stored file of that content type, or None when purged or never produced."""
    return RecordingFile.objects.filter(
        recording=recording, content_type=content_type, deleted_at__isnull=True
    ).first()
