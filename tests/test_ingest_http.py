"""POST /internal/api/v1/recordings through the real Django stack with real multipart uploads."""

import struct

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from callactions.models import Event
from recordings import storage
from recordings.models import ContentType, Recording, RecordingFile
from tests.audio_helpers import assert_nothing_left_behind
from tests.factories import call_fields
from tests.media import mp3_bytes, tone, wav_bytes

URL = "/internal/api/v1/recordings"
pytestmark = pytest.mark.django_db

SIX_KEYS = {"name", "type", "exception_id", "message", "messages", "reason"}


@pytest.fixture
def pbx(make_token):
    return make_token(role="pbx")


def stereo_wav(seconds=1.0, rate=8000, codec="pcm16"):
    return wav_bytes([tone(440, seconds, rate), tone(1000, seconds, rate)], rate=rate, codec=codec)


def post(client, token, fields=None, **files):
    data = dict(call_fields() if fields is None else fields)
    for name, content in files.items():
        data[name] = SimpleUploadedFile(f"{name}.bin", content)
    headers = {"HTTP_AUTHORIZATION": f"Token {token}"} if token else {}
    return client.post(URL, data, **headers)


def patched_fmt(data, *, tag=None, rate=None, bits=None):
    """The WAV with its fmt chunk's fields changed (offsets of a canonical header)."""
    data = bytearray(data)
    if tag is not None:
        data[20:22] = struct.pack("<H", tag)
    if rate is not None:
        data[24:28] = struct.pack("<I", rate)
    if bits is not None:
        channels = struct.unpack("<H", data[22:24])[0]
        data[32:34] = struct.pack("<H", channels * bits // 8)
        data[34:36] = struct.pack("<H", bits)
    return bytes(data)


def assert_validation_error(response, field, fragment, status=400):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == SIX_KEYS
    assert (body["name"], body["type"]) == ("ValidateException", "VALIDATE_ERROR")
    assert body["reason"] == body["message"]
    assert field in body["messages"], body["messages"]
    assert any(fragment in message for message in body["messages"][field]), body["messages"]


# --- success -----------------------------------------------------------------------------


def test_a_stereo_wav_is_stored_as_three_mp3s_and_answered_with_201(client, pbx):
    fields = call_fields()
    response = post(client, pbx, fields, stereo=stereo_wav(2.0))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["request_id"] == fields["request_id"]
    assert body["started_at"] == fields["started_at"]
    assert body["duration"] == pytest.approx(2.0, abs=0.05)
    key = fields["unique_id"]
    assert body["files"]["monaural"]["name"] == f"20190718161058-2006-2002-{key}-SRC.mp3"
    assert body["files"]["left"]["name"] == f"20190718161058-2006-2002-{key}-SRC_l.mp3"
    assert body["files"]["right"]["name"] == f"20190718161058-2006-2002-{key}-SRC_r.mp3"
    assert body["files"]["stereo"] is None  # the setting stereo_file is off by default
    for content_type in (ContentType.MONAURAL, ContentType.LEFT, ContentType.RIGHT):
        stored = RecordingFile.objects.get(content_type=content_type)
        assert storage.full_path(stored.path).is_file()
        assert body["files"][content_type]["bytes"] == stored.size
        assert body["files"][content_type]["sha256"] == stored.sha256


def test_a_stored_call_writes_one_recording_completed_event(client, pbx):
    post(client, pbx, stereo=stereo_wav())
    recording = Recording.objects.get()
    assert list(Event.objects.values_list("event_type", "recording")) == [("recording_completed", recording.pk)]


def test_numbers_are_stored_without_hyphens(client, pbx):
    response = post(client, pbx, call_fields(callee="070-1234-5678", tel="090-1111-2222"), stereo=stereo_wav())
    assert response.status_code == 201
    assert (response.json()["callee"], response.json()["tel"]) == ("07012345678", "09011112222")
    assert "-07012345678-" in response.json()["files"]["monaural"]["name"]


def test_wav_legs_and_a_ready_mixed_mp3_are_accepted(client, pbx):
    response = post(
        client, pbx, left=wav_bytes([tone(440, 1)]), right=wav_bytes([tone(1000, 1)]), mixed=mp3_bytes(tone(440, 1))
    )
    assert response.status_code == 201, response.content
    assert all(response.json()["files"][ct] for ct in (ContentType.MONAURAL, ContentType.LEFT, ContentType.RIGHT))


def test_only_the_mixed_mp3_is_stored_when_only_it_is_given(client, pbx):
    response = post(client, pbx, mixed=mp3_bytes(tone(440, 1)))
    assert response.status_code == 201
    files = response.json()["files"]
    assert files["monaural"] and files["left"] is None and files["right"] is None


# --- idempotency and conflicts ----------------------------------------------------------------


def test_the_same_call_posted_twice_answers_200_with_the_stored_recording_and_no_second_event(client, pbx):
    fields = call_fields()
    first = post(client, pbx, fields, stereo=stereo_wav())
    again = post(client, pbx, fields, stereo=stereo_wav())
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert Recording.objects.count() == 1
    assert RecordingFile.objects.count() == 3
    assert Event.objects.count() == 1
    assert list((storage.root() / storage.INCOMING).iterdir()) == []


def test_the_same_unique_id_with_another_request_id_is_a_409(client, pbx):
    fields = call_fields()
    post(client, pbx, fields, stereo=stereo_wav())
    other = {**fields, "request_id": "99999999999999999999"}
    response = post(client, pbx, other, stereo=stereo_wav())
    assert response.status_code == 409
    body = response.json()
    assert set(body) == SIX_KEYS
    assert (body["name"], body["type"]) == ("ConflictException", "CONFLICT")
    assert Recording.objects.count() == 1 and Event.objects.count() == 1
    assert RecordingFile.objects.count() == 3


def test_the_same_request_id_with_another_unique_id_is_a_409(client, pbx):
    fields = call_fields()
    post(client, pbx, fields, stereo=stereo_wav())
    response = post(client, pbx, {**fields, "unique_id": "1999999999.1"}, stereo=stereo_wav())
    assert response.status_code == 409
    assert Recording.objects.count() == 1 and Event.objects.count() == 1


# --- separation --------------------------------------------------------------------------


def stored_types(response):
    assert response.status_code == 201, response.content
    return {ct for ct, f in response.json()["files"].items() if f}


def test_legs_are_not_stored_when_the_separation_licence_is_off(client, pbx, set_system):
    set_system(voice_file_separation=False)
    assert stored_types(post(client, pbx, stereo=stereo_wav())) == {"monaural"}
    assert_files_on_disk(1)


def test_legs_are_not_stored_for_an_external_number_that_is_not_a_target(client, pbx, set_system):
    set_system(separation_targets="0311112222,0322223333")
    response = post(client, pbx, call_fields(external_number="03-1234-5678"), stereo=stereo_wav())
    assert stored_types(response) == {"monaural"}


def test_legs_are_stored_for_an_external_number_that_is_a_target(client, pbx, set_system):
    set_system(separation_targets="03-1234-5678")
    response = post(client, pbx, call_fields(external_number="0312345678"), stereo=stereo_wav())
    assert stored_types(response) == {"monaural", "left", "right"}


def test_legs_are_stored_for_every_number_when_there_are_no_targets(client, pbx, set_system):
    set_system(separation_targets="")
    response = post(client, pbx, call_fields(external_number="0598765432"), stereo=stereo_wav())
    assert stored_types(response) == {"monaural", "left", "right"}


def assert_files_on_disk(count):
    root = storage.root()
    files = [p for p in root.rglob("*.mp3") if storage.INCOMING not in p.parts]
    assert len(files) == count


# --- authentication ----------------------------------------------------------------------


def test_no_token_is_a_401_invalid_request(client):
    response = post(client, None, stereo=stereo_wav())
    assert response.status_code == 401
    assert response.json()["message"] == "Unauthenticated: method=personal_token, cause=invalid request"
    assert_nothing_left_behind()


def test_an_unknown_token_is_a_401_invalid_token(client, db):
    response = post(client, "0" * 80, stereo=stereo_wav())
    assert response.status_code == 401
    assert response.json()["message"] == "Unauthenticated: method=personal_token, cause=invalid token."
    assert_nothing_left_behind()


@pytest.mark.parametrize("role", ["administrator", "supervisor", "operator"])
def test_a_token_of_another_role_than_pbx_is_a_403(client, make_token, role):
    response = post(client, make_token(role=role), stereo=stereo_wav())
    assert response.status_code == 403
    body = response.json()
    assert (body["name"], body["type"], body["message"]) == (
        "AuthorizationException", "FORBIDDEN", "This action is unauthorized."
    )
    assert_nothing_left_behind()


# --- bad input: a clear 400 and nothing left behind ------------------------------------------

BAD_FILES = {
    "not audio": ({"stereo": b"Hello, this is not a recording at all.\n" * 10}, "stereo", "Not an audio file"),
    "empty file": ({"stereo": b""}, "stereo", "empty"),
    "mono file as stereo": ({"stereo": wav_bytes([tone(440, 1)])}, "stereo", "2 channels"),
    "stereo file as a leg": (
        {"left": wav_bytes([tone(440, 1), tone(440, 1)]), "right": wav_bytes([tone(1000, 1)])},
        "left",
        "1 channel",
    ),
    "three channels": ({"stereo": wav_bytes([tone(440, 1)] * 3)}, "stereo", "2 channels"),
    "mp3 as stereo": ({"stereo": mp3_bytes(tone(440, 1))}, "stereo", "2-channel WAV"),
    "float samples": ({"stereo": patched_fmt(wav_bytes([tone(440, 1)] * 2), tag=3)}, "stereo", "Unsupported WAV encoding"),
    "8-bit pcm": ({"stereo": patched_fmt(wav_bytes([tone(440, 1)] * 2), bits=8)}, "stereo", "sample size"),
    "44.1 kHz": ({"stereo": patched_fmt(stereo_wav(), rate=44100)}, "stereo", "Unsupported sample rate"),
    "truncated data": ({"stereo": stereo_wav()[:-1000]}, "stereo", "truncated"),
    "truncated header": ({"stereo": stereo_wav()[:30]}, "stereo", "truncated"),
    "half a sample": ({"stereo": wav_bytes([tone(440, 1)] * 2, data_bytes=32001) + b"\0"}, "stereo", "truncated"),
    "no samples": ({"stereo": wav_bytes([np.zeros(0, np.int16)] * 2)}, "stereo", "no audio samples"),
    "truncated mp3": ({"mixed": mp3_bytes(tone(440, 1))[:-50]}, "mixed", "Not a valid MP3"),
    "garbage after an mp3 header": ({"mixed": b"\xff\xfb\x90\x00" + b"\x00" * 20}, "mixed", "Not a valid MP3"),
    "no file": ({}, "mixed", "Give the stereo file"),
    "left without right": ({"left": wav_bytes([tone(440, 1)])}, "right", "required"),
    "stereo and legs": (
        {"stereo": stereo_wav(), "left": wav_bytes([tone(440, 1)]), "right": wav_bytes([tone(440, 1)])},
        "stereo",
        "not both",
    ),
    "mp3 legs without a mix": (
        {"left": mp3_bytes(tone(440, 1)), "right": mp3_bytes(tone(1000, 1))},
        "mixed",
        "required when the legs are MP3",
    ),
    "legs at different rates": (
        {"left": wav_bytes([tone(440, 1)]), "right": wav_bytes([tone(440, 1, 16000)], rate=16000)},
        "right",
        "same sample rate",
    ),
    "a bad mp3 leg after a good mix": (
        {"mixed": mp3_bytes(tone(440, 1)), "left": mp3_bytes(tone(440, 1)), "right": b"\xff\xfb\x90\x00" + b"\0" * 999},
        "right",
        "Not a valid MP3",
    ),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_bad_audio_is_a_400_that_leaves_nothing_behind(client, pbx, case):
    files, field, fragment = BAD_FILES[case]
    response = post(client, pbx, **files)
    assert_validation_error(response, field, fragment)
    assert_nothing_left_behind()


BAD_FIELDS = {
    "missing request_id": ({"request_id": ""}, "request_id", "required"),
    "missing unique_id": ({"unique_id": None}, "unique_id", "required"),
    "missing started_at": ({"started_at": None}, "started_at", "required"),
    "missing side": ({"side": None}, "side", "required"),
    "short request_id": ({"request_id": "2106160000"}, "request_id", "20 digits"),
    "odd unique_id": ({"unique_id": "15634/33858"}, "unique_id", "may contain only"),
    "bad side": ({"side": "BOTH"}, "side", "SRC or DST"),
    "letters in a number": ({"caller": "abc"}, "caller", "phone number"),
    "bad date": ({"started_at": "2019-02-30 10:00:00"}, "started_at", "YYYY-MM-DD HH:MM:SS"),
    "date in another format": ({"started_at": "18/07/2019 16:10"}, "started_at", "YYYY-MM-DD HH:MM:SS"),
}


@pytest.mark.parametrize("case", BAD_FIELDS, ids=list(BAD_FIELDS))
def test_bad_call_fields_are_a_400_that_leaves_nothing_behind(client, pbx, case):
    overrides, field, fragment = BAD_FIELDS[case]
    fields = {k: v for k, v in {**call_fields(), **overrides}.items() if v is not None}
    response = post(client, pbx, fields, stereo=stereo_wav())
    assert_validation_error(response, field, fragment)
    assert_nothing_left_behind()


def test_every_bad_field_and_file_is_reported_at_once(client, pbx):
    fields = {**call_fields(), "side": "X", "started_at": "yesterday"}
    response = post(client, pbx, fields, stereo=b"not audio")
    assert response.status_code == 400
    assert set(response.json()["messages"]) == {"side", "started_at", "stereo"}
    assert_nothing_left_behind()


def test_a_request_that_is_not_multipart_is_a_400(client, pbx):
    response = client.post(URL, {"x": 1}, content_type="application/json", HTTP_AUTHORIZATION=f"Token {pbx}")
    assert response.status_code == 400
    assert set(response.json()) == SIX_KEYS
    assert_nothing_left_behind()


# --- size limit --------------------------------------------------------------------------


def test_an_upload_beyond_the_limit_is_a_413_that_leaves_nothing_behind(client, pbx, settings):
    settings.INGEST_MAX_UPLOAD_BYTES = 20_000
    response = post(client, pbx, stereo=stereo_wav(2.0))  # 64 kB
    assert_validation_error(response, "upload", "20000 bytes", status=413)
    assert_nothing_left_behind()


def test_an_upload_just_under_the_limit_is_accepted(client, pbx, settings):
    data = stereo_wav(1.0)
    settings.INGEST_MAX_UPLOAD_BYTES = len(data) + 4000  # room for the form fields
    assert post(client, pbx, stereo=data).status_code == 201


def test_the_upload_limit_also_counts_the_bytes_as_they_arrive(settings, rf):
    # Content-Length can be absent or wrong behind some proxies; the parser's handler
    # counts what actually arrives.
    from io import BytesIO

    from django.http.multipartparser import MultiPartParser

    from biztel.errors import PayloadTooLarge
    from recordings.ingest_views import UploadLimit

    body = (
        b"--B\r\nContent-Disposition: form-data; name=\"stereo\"; filename=\"a.wav\"\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n" + b"x" * 50_000 + b"\r\n--B--\r\n"
    )
    meta = {"CONTENT_TYPE": "multipart/form-data; boundary=B", "CONTENT_LENGTH": str(len(body))}
    request = rf.post("/")
    parser = MultiPartParser(meta, BytesIO(body), [UploadLimit(request, 10_000)])
    with pytest.raises(PayloadTooLarge):
        parser.parse()
