"""A successful download, as §3.2 and the HTTP RFCs say."""

import pytest
from django.utils.http import http_date

from biztel.models import MonthlyUsage
from recordings.models import AccessLogEntry
from recordings import storage
from tests.factories import stored_recording

URL = "/public/api/v1/monitor/{}"


@pytest.fixture
def recording(db, storage_backend):
    """A stored call, on the disk and (a second run) in a bucket."""
    return stored_recording()


@pytest.fixture
def auth(token):
    return {"HTTP_AUTHORIZATION": f"Token {token}"}


def stored_bytes(recording, content_type):
    stored = recording.files.get(content_type=content_type)
    with storage.open_for_read(stored.path) as f:
        return stored, f.read()


def body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.parametrize("content_type", ["monaural", "left", "right"])
def test_each_content_type_downloads_its_own_mp3(client, recording, auth, content_type):
    stored, data = stored_bytes(recording, content_type)
    response = client.get(URL.format(recording.request_id), {"content_type": content_type}, **auth)
    assert response.status_code == 200
    assert body(response) == data
    assert response["Content-Type"] == "audio/mpeg"
    assert response["Content-Length"] == str(len(data))
    assert response["Content-Disposition"] == f'attachment; filename="{stored.name}"'
    assert response["ETag"] == f'"{stored.sha256}"'
    assert response["Last-Modified"] == http_date(stored.created_at.timestamp())
    assert response["Accept-Ranges"] == "bytes"


def test_content_type_defaults_to_monaural(client, recording, auth):
    stored, data = stored_bytes(recording, "monaural")
    response = client.get(URL.format(recording.request_id), **auth)
    assert body(response) == data
    assert stored.name.endswith("-SRC.mp3")


def test_the_unique_id_is_accepted_as_well(client, recording, auth):
    _, data = stored_bytes(recording, "right")
    response = client.get(URL.format(recording.unique_id), {"content_type": "right"}, **auth)
    assert body(response) == data


def test_head_answers_the_headers_without_a_body(client, recording, auth):
    stored, data = stored_bytes(recording, "left")
    response = client.head(URL.format(recording.request_id), {"content_type": "left"}, **auth)
    assert response.status_code == 200
    assert body(response) == b""
    assert response["Content-Length"] == str(len(data))
    assert response["ETag"] == f'"{stored.sha256}"'


def test_a_range_answers_206_with_those_bytes(client, recording, auth):
    _, data = stored_bytes(recording, "monaural")
    response = client.get(URL.format(recording.request_id), HTTP_RANGE="bytes=100-199", **auth)
    assert response.status_code == 206
    assert body(response) == data[100:200]
    assert response["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert response["Content-Length"] == "100"


def test_an_open_ended_and_a_suffix_range(client, recording, auth):
    _, data = stored_bytes(recording, "monaural")
    tail = client.get(URL.format(recording.request_id), HTTP_RANGE="bytes=-50", **auth)
    assert body(tail) == data[-50:]
    rest = client.get(URL.format(recording.request_id), HTTP_RANGE=f"bytes={len(data) - 10}-", **auth)
    assert body(rest) == data[-10:]
    assert rest["Content-Range"] == f"bytes {len(data) - 10}-{len(data) - 1}/{len(data)}"


def test_a_range_beyond_the_end_is_416_with_the_six_keys(client, recording, auth):
    _, data = stored_bytes(recording, "monaural")
    response = client.get(URL.format(recording.request_id), HTTP_RANGE=f"bytes={len(data)}-", **auth)
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(data)}"
    assert set(response.json()) == {"name", "type", "exception_id", "message", "messages", "reason"}


def test_if_range_with_the_current_etag_honours_the_range(client, recording, auth):
    stored, data = stored_bytes(recording, "monaural")
    response = client.get(
        URL.format(recording.request_id), HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=f'"{stored.sha256}"', **auth
    )
    assert response.status_code == 206
    assert body(response) == data[:10]


def test_if_range_with_another_etag_sends_the_whole_file(client, recording, auth):
    _, data = stored_bytes(recording, "monaural")
    response = client.get(URL.format(recording.request_id), HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"old"', **auth)
    assert response.status_code == 200
    assert body(response) == data


def test_if_none_match_with_the_etag_is_304_not_modified(client, recording, auth):
    stored, _ = stored_bytes(recording, "monaural")
    response = client.get(URL.format(recording.request_id), HTTP_IF_NONE_MATCH=f'"{stored.sha256}"', **auth)
    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == f'"{stored.sha256}"'


def test_every_answer_tells_the_quota_standing(client, recording, auth, set_system):
    set_system(monthly_request_limit=50)
    response = client.get(URL.format(recording.request_id), **auth)
    assert response["X-RateLimit-Limit"] == "50"
    assert response["X-RateLimit-Remaining"] == "49"
    assert int(response["X-RateLimit-Reset"]) > 0
    assert response["RateLimit"].startswith('"monthly";r=49;t=')
    not_found = client.get(URL.format("no-such-call"), **auth)
    assert not_found["X-RateLimit-Remaining"] == "48"


def test_a_request_past_the_burst_check_consumes_one_request_and_one_object(client, recording, auth):
    client.get(URL.format(recording.request_id), **auth)
    client.get(URL.format("no-such-call"), **auth)
    client.get(URL.format(recording.request_id))  # unauthenticated: not counted
    usage = MonthlyUsage.objects.get()
    assert (usage.requests, usage.response_objects) == (2, 2)


def test_every_request_is_in_the_access_log(client, recording, auth, token):
    client.get(URL.format(recording.request_id), {"content_type": "left"}, REMOTE_ADDR="192.0.2.7", **auth)
    client.get(URL.format(recording.request_id), HTTP_AUTHORIZATION="Token wrong")
    ok, refused = AccessLogEntry.objects.order_by("at")
    stored = recording.files.get(content_type="left")
    assert ok.recording == recording
    assert ok.content_type == "left"
    assert ok.status == 200
    assert ok.bytes_sent == stored.size
    assert ok.client_ip == "192.0.2.7"
    assert ok.token.prefix == token[:8]
    assert ok.account.username == ok.token.account.username
    assert refused.status == 401
    assert refused.token is None


def test_a_download_the_month_has_no_room_for_is_logged_once_as_429_and_counts_nothing(
    client, recording, auth, set_system
):
    set_system(monthly_request_limit=1)
    assert client.get(URL.format(recording.request_id), **auth).status_code == 200
    refused = client.get(URL.format(recording.request_id), **auth)
    assert refused.status_code == 429
    assert refused.json()["type"] == "MONTHLY_LIMIT_EXCEEDED"
    entries = list(AccessLogEntry.objects.order_by("at", "pk"))
    assert [(e.status, e.response_objects) for e in entries] == [(200, 1), (429, 0)]
    assert entries[1].bytes_sent == len(refused.content)
    usage = MonthlyUsage.objects.get()
    assert (usage.requests, usage.response_objects) == (1, 1)


def test_last_use_of_a_token_is_recorded(client, recording, auth):
    from biztel.models import ApiToken

    assert ApiToken.objects.get().last_used_at is None
    client.get(URL.format(recording.request_id), **auth)
    assert ApiToken.objects.get().last_used_at is not None
