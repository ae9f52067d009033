"""Every input is checked at the edge (issue 10 item 6): what does not fit a column,
what the database cannot hold or read back, unbounded numbers, too many fields, a
malformed forwarded address. Each is a six-key 400 (or 413/416) naming what was wrong,
never a 500."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from recordings.models import Recording
from tests.factories import call_fields, stored_recording
from tests.media import mp3_bytes, tone
from tests.test_ingest_http import SIX_KEYS, assert_validation_error

pytestmark = pytest.mark.django_db
INGEST = "/internal/api/v1/recordings"


@pytest.fixture
def pbx(make_token):
    return make_token(role="pbx")


def ingest(client, token, **overrides):
    data = {**call_fields(), **overrides, "mixed": SimpleUploadedFile("m.mp3", mp3_bytes(tone(440, 0.5)))}
    return client.post(INGEST, data, HTTP_AUTHORIZATION=f"Token {token}")


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("caller", "1" * 33, "at most 32"),
        ("tel", "0" * 40, "at most 32"),
        ("external_number", "03-" * 20, "at most 32"),
        ("group", "g" * 101, "at most 100"),
        ("group", "sales\x00", "NUL"),
        ("unique_id", "1563433858.66\x00", "letters, digits"),
        ("extension", "2002\x00", "phone number"),
        ("started_at", "0001-01-01 00:00:00", "between 1900"),
        ("started_at", "1899-12-31 23:59:59", "between 1900"),
        ("started_at", "9999-12-31 23:59:59", "between 1900"),
        ("started_at", "2019-07-18 16:10:58\x00", "YYYY-MM-DD HH:MM:SS"),
    ],
)
def test_ingest_refuses_what_no_column_can_hold_naming_the_field(client, pbx, field, value, fragment):
    response = ingest(client, pbx, **{field: value})
    assert_validation_error(response, field, fragment)
    assert not Recording.objects.exists()


def test_ingest_refuses_too_many_form_fields_with_the_six_keys(client, pbx, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 20
    response = ingest(client, pbx, **{f"extra{n}": "x" for n in range(30)})
    assert_validation_error(response, "request", "Too many form fields")


def test_ingest_refuses_too_many_files_with_the_six_keys(client, pbx, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    data = {**call_fields(), **{f"file{n}": SimpleUploadedFile(f"{n}.bin", b"x") for n in range(5)}}
    response = client.post(INGEST, data, HTTP_AUTHORIZATION=f"Token {pbx}")
    assert_validation_error(response, "request", "Too many files")


def six_keys(response, status):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == SIX_KEYS and body["reason"] == body["message"]
    return body


@pytest.fixture
def recording(db):
    return stored_recording()


def download(client, token, recording_id, **headers):
    return client.get(f"/public/api/v1/monitor/{recording_id}", HTTP_AUTHORIZATION=f"Token {token}", **headers)


@pytest.mark.parametrize("recording_id", ["2" * 5000, "21061600000268000001%00", "%00", "%E3%81%82" * 30])
def test_a_malformed_or_overlong_id_is_the_404_row(client, token, recording_id):
    body = six_keys(download(client, token, recording_id), 404)
    assert body["type"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "header",
    ["bytes=" + "9" * 5000 + "-", "bytes=0-" + "9" * 5000, "bytes=-" + "9" * 5000, "bytes=١-٢"],
)
def test_a_range_with_huge_or_odd_numbers_does_not_crash(client, token, recording, header):
    response = download(client, token, recording.request_id, HTTP_RANGE=header)
    assert response.status_code in (200, 206, 416)
    if response.status_code == 416:
        six_keys(response, 416)


@pytest.mark.parametrize(
    "header, value",
    [
        ("HTTP_IF_MODIFIED_SINCE", "Mon, 01 Jan 99999999 00:00:00 GMT"),
        ("HTTP_IF_MODIFIED_SINCE", "garbage\x00"),
        ("HTTP_IF_MODIFIED_SINCE", "Mon, 32 Foo 2020 25:61:61 GMT"),
        ("HTTP_IF_MODIFIED_SINCE", "9" * 5000),
        ("HTTP_IF_RANGE", "Mon, 01 Jan 99999999 00:00:00 GMT"),
        ("HTTP_IF_NONE_MATCH", "\x00"),
    ],
)
def test_garbage_in_conditional_headers_is_ignored(client, token, recording, header, value):
    response = download(client, token, recording.request_id, **{header: value, "HTTP_RANGE": "bytes=0-9"})
    assert response.status_code in (200, 206)


@pytest.mark.parametrize(
    "query, field",
    [
        ("date=2019-07-18&page_size=" + "9" * 5000, "page_size"),
        ("date=2019-07-18&page_size=-1", "page_size"),
        ("date=0001-01-01", "date"),
        ("date=9999-12-31", "date"),
        ("date=2019-07-18%00", "date"),
        ("date=2019-07-18&cursor=" + "A" * 5000, "cursor"),
        ("date=2019-07-18&cursor=MjAxOS0wNy0xOHwwMDAxLTAxLTAxVDAwOjAwOjAwfDk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "cursor"),
        ("date=2019-07-18&cursor=%00", "cursor"),
    ],
)
def test_the_listing_refuses_unbounded_parameters_naming_them(client, token, query, field):
    response = client.get(f"/public/api/v1/monitor/?{query}", HTTP_AUTHORIZATION=f"Token {token}")
    body = six_keys(response, 400)
    assert field in body["messages"], body["messages"]


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
def test_the_archive_refuses_a_day_the_database_cannot_hold(client, token, set_system, day):
    set_system(bulk_download=True)
    response = client.get(f"/public/api/v1/monitor/archive/{day}", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code in (400, 404)
    six_keys(response, response.status_code)


def test_too_many_query_parameters_are_a_six_key_400(client, token, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 20
    query = "&".join(f"p{n}=1" for n in range(30))
    response = client.get(f"/public/api/v1/monitor/?date=2019-07-18&{query}", HTTP_AUTHORIZATION=f"Token {token}")
    body = six_keys(response, 400)
    assert "request" in body["messages"]


@pytest.mark.parametrize("value", ["not-an-address", "1.2.3.4, 5.6.7.8", "999.1.1.1", "\x00"])
def test_a_malformed_x_real_ip_from_the_local_proxy_is_a_six_key_400(client, token, recording, value):
    response = download(client, token, recording.request_id, HTTP_X_REAL_IP=value, REMOTE_ADDR="127.0.0.1")
    body = six_keys(response, 400)
    assert body["messages"] == {"X-Real-IP": ["The X-Real-IP header must be one IP address."]}


def test_a_well_formed_x_real_ip_from_the_local_proxy_is_logged(client, token, recording):
    from recordings.models import AccessLogEntry

    response = download(client, token, recording.request_id, HTTP_X_REAL_IP="203.0.113.7", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert AccessLogEntry.objects.get().client_ip == "203.0.113.7"


def test_x_real_ip_from_a_remote_peer_is_ignored_whatever_it_holds(client, token, recording):
    response = download(client, token, recording.request_id, HTTP_X_REAL_IP="garbage", REMOTE_ADDR="198.51.100.9")
    assert response.status_code == 200


def test_a_format_parameter_is_not_taken_for_a_renderer_override(client, token, recording):
    response = client.get(f"/public/api/v1/monitor/{recording.request_id}?format=json",
                          HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code != 500
    assert response.status_code in (200, 400)
