"""Licences and system settings (SPEC.md §4): read, validated change, and the
per-process copy that keeps the download hot path off the database."""

import time

from django.core.exceptions import ValidationError

from biztel.models import SystemSettings

# SPEC.md: a change is in force for every web process within a second.
REFRESH_SECONDS = 1.0
LICENCES = ("recording", "recording_file_api", "voice_file_separation", "call_action", "bulk_download")
_shared = {"value": None, "read_at": 0.0}


def setting_names():
    return [f.name for f in SystemSettings._meta.concrete_fields if f.name not in ("id", "updated_at")]


def load():
    """The settings row, straight from the database (created with defaults on first use)."""
    return SystemSettings.objects.get_or_create(pk=1)[0]


def current():
    value, read_at = _shared["value"], _shared["read_at"]
    if value is None or time.monotonic() - read_at >= REFRESH_SECONDS:
        value = load()
        _shared.update(value=value, read_at=time.monotonic())
    return value


def forget():
    _shared.update(value=None, read_at=0.0)


def parse_value(name, raw):
    """Turn the text of `--set NAME=VALUE` into the field's value, or raise ValidationError."""
    field = SystemSettings._meta.get_field(name)
    raw = raw.strip()
    if field.get_internal_type() == "BooleanField":
        if raw not in ("true", "false"):
            raise ValidationError({name: "must be true or false"})
        return raw == "true"
    if field.get_internal_type() == "PositiveIntegerField":
        if field.null and raw.lower() in ("", "null", "none"):
            return None
        try:
            return int(raw)
        except ValueError:
            raise ValidationError({name: "must be a whole number"}) from None
    return raw


def settings_update(**raw_values):
    """Apply NAME=text changes with the same validation as admin; all or nothing."""
    unknown = sorted(set(raw_values) - set(setting_names()))
    if unknown:
        raise ValidationError({name: "unknown setting" for name in unknown})
    row = load()
    for name, raw in raw_values.items():
        setattr(row, name, parse_value(name, raw))
    row.full_clean()
    row.save()
    forget()
    return row


def display_value(row, name):
    value = getattr(row, name)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
