"""Recordings stored through the real ingest service."""

import io
import itertools

from recordings.services import recording_ingest
from tests.media import mp3_bytes, tone

_serial = itertools.count(1)


def call_fields(**overrides):
    n = next(_serial)
    fields = {
        "request_id": f"2106160000026800{n:04d}",
        "unique_id": f"1563433858.{n}",
        "started_at": "2019-07-18 16:10:58",
        "caller": "2006",
        "callee": "2002",
        "side": "SRC",
        "external_number": "0312345678",
        "extension": "2002",
        "tel": "09012345678",
        "group": "",
    }
    fields.update(overrides)
    return fields


def stored_recording(separated=True, seconds=1.0, **overrides):
    """Ingest a call from ready MP3s (440 Hz mix and left, 1 kHz right)."""
    files = {"mixed": io.BytesIO(mp3_bytes(tone(440, seconds)))}
    if separated:
        files["left"] = io.BytesIO(mp3_bytes(tone(440, seconds)))
        files["right"] = io.BytesIO(mp3_bytes(tone(1000, seconds)))
    recording, _ = recording_ingest(fields=call_fields(**overrides), **files)
    return recording
