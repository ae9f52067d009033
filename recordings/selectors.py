"""Reads of recordings."""

import re

from django.db.models import Q

from recordings.models import Recording, RecordingFile

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
