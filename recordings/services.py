"""Writes to recordings: ingest (SPEC.md §2.3)."""

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.db import IntegrityError, transaction
from django.utils import timezone

from biztel import config
from biztel.errors import Conflict, ValidationFailed
from callactions.services import event_create_recording_completed
from recordings import mp3, naming, storage
from recordings.models import ContentType, Recording, RecordingFile
from recordings.retention import expiry_for

CALL_FIELDS = (
    "request_id",
    "unique_id",
    "started_at",
    "caller",
    "callee",
    "side",
    "external_number",
    "extension",
    "tel",
    "group",
)
REQUIRED_FIELDS = CALL_FIELDS[:-1]
REQUEST_ID = re.compile(r"[0-9]{20}")
UNIQUE_ID = re.compile(r"[0-9A-Za-z._-]{1,64}")
NUMBER_FIELDS = ("caller", "callee", "external_number", "extension", "tel")


def call_fields_clean(raw):
    """Validate the call's metadata; returns the cleaned dict or raises ValidationFailed
    with every bad field and its messages."""
    errors = {}
    cleaned = {}
    for name in CALL_FIELDS:
        value = (raw.get(name) or "").strip()
        if not value and name in REQUIRED_FIELDS:
            errors[name] = [f"The {name} field is required."]
        cleaned[name] = value
    if cleaned["request_id"] and not REQUEST_ID.fullmatch(cleaned["request_id"]):
        errors["request_id"] = ["The request_id must be a string of 20 digits."]
    if cleaned["unique_id"] and not UNIQUE_ID.fullmatch(cleaned["unique_id"]):
        errors["unique_id"] = ["The unique_id may contain only letters, digits, '.', '_' and '-'."]
    if cleaned["side"] and cleaned["side"] not in naming.SIDES:
        errors["side"] = ["The side must be SRC or DST."]
    for name in NUMBER_FIELDS:
        if cleaned[name]:
            try:
                cleaned[name] = naming.normalize_number(cleaned[name])
            except ValueError:
                errors[name] = [f"The {name} must be a phone number (digits and hyphens)."]
    if cleaned["started_at"]:
        try:
            local = datetime.strptime(cleaned["started_at"], "%Y-%m-%d %H:%M:%S")
            cleaned["started_at"] = timezone.make_aware(local)
        except ValueError:
            errors["started_at"] = ["The started_at must be a date of the form YYYY-MM-DD HH:MM:SS."]
    if errors:
        raise ValidationFailed(messages=errors)
    return cleaned


@dataclass
class PreparedFile:
    """An audio file ready to be stored: written to a temporary path, measured."""

    content_type: str
    temp_path: Path
    size: int
    sha256: str
    duration: float
    audio_detected: bool = True


def prepare_mp3(content_type, source):
    """Copy an MP3 handed over as it is; refuse anything that is not a complete MP3."""
    temp_path, size, sha256 = storage.copy_to_temp(source)
    try:
        info = mp3.inspect(temp_path)
    except mp3.NotMp3 as exc:
        storage.discard(temp_path)
        raise ValidationFailed(messages={content_type_field(content_type): [f"Not a valid MP3 file: {exc}."]})
    return PreparedFile(content_type, temp_path, size, sha256, info.duration)


def content_type_field(content_type):
    return "mixed" if content_type == ContentType.MONAURAL else content_type


def separation_applies(settings_row, external_number):
    if not settings_row.voice_file_separation:
        return False
    targets = settings_row.separation_target_list()
    return not targets or external_number in targets


def recording_ingest(*, fields, mixed=None, left=None, right=None):
    """Store one call handed over by the PBX. Returns (recording, created).

    mixed/left/right are open binary files of ready MP3s. Idempotent on request_id;
    on any failure nothing is left behind: no file, no row, no event.
    """
    call = call_fields_clean(fields)
    existing = _existing(call)
    if existing is not None:
        return existing, False
    if mixed is None and (left is None or right is None):
        raise ValidationFailed(messages={"mixed": ["Give the mixed file, or the left and right legs."]})

    settings_row = config.current()
    prepared = []
    try:
        if mixed is not None:
            prepared.append(prepare_mp3(ContentType.MONAURAL, mixed))
        if left is not None and right is not None and separation_applies(settings_row, call["external_number"]):
            prepared.append(prepare_mp3(ContentType.LEFT, left))
            prepared.append(prepare_mp3(ContentType.RIGHT, right))
        return recording_store(call=call, prepared=prepared, settings_row=settings_row), True
    except IntegrityError:
        # The PBX retried while the first upload was still being stored.
        existing = _existing(call)
        if existing is None:
            raise
        return existing, False
    finally:
        for item in prepared:
            storage.discard(item.temp_path)


def _existing(call):
    recording = Recording.objects.filter(request_id=call["request_id"]).first()
    if recording is not None:
        return recording
    if Recording.objects.filter(unique_id=call["unique_id"]).exists():
        raise Conflict()
    return None


def recording_store(*, call, prepared, settings_row):
    """Rows, event and files in one transaction; files move in last, and out again if the commit fails."""
    now = timezone.now()
    local_start = timezone.localtime(call["started_at"])
    key = call[settings_row.recording_key]
    duration = next(
        (p.duration for p in prepared if p.content_type == ContentType.MONAURAL),
        max((p.duration for p in prepared), default=0),
    )
    placements = []
    moved = []
    try:
        with transaction.atomic():
            recording = Recording.objects.create(**call, duration=round(duration, 3))
            for item in prepared:
                name = naming.file_name(
                    started_at=local_start,
                    caller=call["caller"],
                    callee=call["callee"],
                    key=key,
                    side=call["side"],
                    content_type=item.content_type,
                )
                relative = f"{naming.day_folder(local_start)}/{name}"
                placements.append((item.temp_path, relative))
                RecordingFile.objects.create(
                    recording=recording,
                    content_type=item.content_type,
                    name=name,
                    path=relative,
                    size=item.size,
                    sha256=item.sha256,
                    duration=round(item.duration, 3),
                    audio_detected=item.audio_detected,
                    created_at=now,
                    expires_at=expiry_for(item.content_type, now, settings_row),
                )
            event_create_recording_completed(recording=recording)
            for temp_path, relative in placements:
                storage.move_into_place(temp_path, relative)
                moved.append(relative)
    except BaseException:
        for relative in moved:
            storage.delete(relative)
        raise
    return recording
