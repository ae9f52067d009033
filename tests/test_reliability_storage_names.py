"""No stored file is ever replaced by another call's (issue 10 item 4): a unique path
and an ingest that refuses a name another call holds."""

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from callactions.models import Event
from recordings import storage
from recordings.models import Recording, RecordingFile
from tests.factories import call_fields
from tests.media import mp3_bytes, tone
from tests.test_ingest_http import SIX_KEYS

pytestmark = pytest.mark.django_db
INGEST = "/internal/api/v1/recordings"


def ingest(client, token, fields, audio):
    data = {**fields, "mixed": SimpleUploadedFile("m.mp3", audio)}
    return client.post(INGEST, data, HTTP_AUTHORIZATION=f"Token {token}")


def test_a_call_whose_file_name_another_call_holds_is_refused_and_the_stored_file_is_untouched(
    client, make_token, set_system, token
):
    pbx = make_token(role="pbx")
    old_audio, new_audio = mp3_bytes(tone(440, 0.5)), mp3_bytes(tone(1000, 0.5))
    # named by its unique ID (the default recording_key), which happens to be 20 digits
    old = call_fields(request_id="21061600000268000001", unique_id="21061600000268000777")
    assert ingest(client, pbx, old, old_audio).status_code == 201
    stored = RecordingFile.objects.get()
    set_system(recording_key="request_id")
    # a new call whose request ID is the old call's unique ID: same start second, numbers, side
    new = call_fields(request_id="21061600000268000777", unique_id="1563433858.999")
    response = ingest(client, pbx, new, new_audio)

    assert response.status_code == 409, response.content
    body = response.json()
    assert set(body) == SIX_KEYS and (body["name"], body["type"]) == ("ConflictException", "CONFLICT")
    assert body["message"] == (
        f"The file name {stored.name} is already used by the recording 21061600000268000001 "
        "(unique_id 21061600000268000777): storing this call would replace that call's file. "
        "This happens when recording_key was switched and this call's key equals the other call's; "
        "switch recording_key back or change this call's IDs."
    )
    assert body["reason"] == body["message"] and body["messages"] is None
    assert list(Recording.objects.values_list("request_id", flat=True)) == ["21061600000268000001"]
    assert Event.objects.count() == 1
    assert storage.full_path(stored.path).read_bytes() == old_audio
    download = client.get("/public/api/v1/monitor/21061600000268000001", HTTP_AUTHORIZATION=f"Token {token}")
    assert b"".join(download.streaming_content) == old_audio
    assert download["ETag"] == f'"{hashlib.sha256(old_audio).hexdigest()}"'


def test_the_database_refuses_two_files_with_one_path(db):
    from django.db import IntegrityError, transaction

    from tests.factories import stored_recording

    first = stored_recording(separated=False)
    second = stored_recording(separated=False)
    path = first.files.get().path
    with pytest.raises(IntegrityError), transaction.atomic():
        RecordingFile.objects.filter(recording=second).update(path=path)
