"""When stored files fall due (SPEC.md §2.4)."""

from datetime import timedelta

from recordings.models import ContentType


def retention_days(content_type, settings_row):
    """Days a file of this kind is kept, or None for 'kept'."""
    if content_type == ContentType.MONAURAL:
        return settings_row.monaural_retention_days
    if settings_row.bulk_download:
        return settings_row.bulk_retention_days
    return settings_row.separated_retention_days


def expiry_for(content_type, stored_at, settings_row):
    days = retention_days(content_type, settings_row)
    return None if days is None else stored_at + timedelta(days=days)


def file_expires_at(stored, settings_row):
    """When the purge will delete this RecordingFile under these settings (None: kept); see recordings/purge.py."""
    return expiry_for(stored.content_type, stored.created_at, settings_row)
