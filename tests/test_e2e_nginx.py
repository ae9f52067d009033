"""The product as its users see it: nginx terminating TLS in front of gunicorn, a
Celery worker and beat, PostgreSQL and Redis, all started from deploy/.

The PBX posts a stereo call, the speech-recognition receiver is notified, and the
curl of SPEC.md §3.1 fetches the three files over HTTPS. Every answer is compared
with the direct path (gunicorn answering the download itself).
"""

import hashlib
import json
import os
import subprocess
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.conftest import ROOT
from tests.media import tone, wav_bytes
from tests.stack import receiver  # noqa: F401 (fixture)
from tests.stack import ACCEL_PREFIX, ingest_stereo_call, product_stack

# django_db makes pytest-django create the test database the stack runs on; the
# tests themselves touch it only through the product.
pytestmark = [pytest.mark.timeout(300), pytest.mark.django_db]

# The request ID of the example in SPEC.md §3.1, so the curl there is literally ours.
REQUEST_ID = "21091300000468000050"
EXTERNAL_NUMBER = "0501234567"
CALL = {
    "request_id": REQUEST_ID,
    "unique_id": "1631512345.50",
    "started_at": "2021-09-13 10:15:00",
    "caller": "03-1234-5678",
    "callee": "050-123-4567",
    "side": "DST",
    "external_number": EXTERNAL_NUMBER,
    "extension": "2001",
    "tel": "03-1234-5678",
    "group": "sales",
}
# SPEC.md §3.1, as written; the test fills in <token> and <host> (and the port when 8000 is taken).
SPEC_CURL = (
    "curl -X GET --header 'Authorization: Token <token>' \\\n"
    "  'https://<host>:8000/public/api/v1/monitor/21091300000468000050?content_type=monaural' -o test.mp3"
)
BURST = "1000"
# Differ on every answer or by design of the hop (nginx vs gunicorn; nginx adds HSTS on its TLS port).
HOP_HEADERS = {"date", "server", "connection", "keep-alive", "transfer-encoding", "strict-transport-security"}


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker):
    with product_stack(django_db_blocker) as running:
        # Direct and proxied answers are compared in quick pairs; only one test is about the burst limit.
        running.set_system(burst_limit_per_second=BURST)
        yield running


@pytest.fixture(scope="module")
def call(stack, receiver, tmp_path_factory):
    """One call ingested through nginx as the PBX does, with a call action notifying the receiver."""
    folder = tmp_path_factory.mktemp("call")
    actions = folder / "callactions.json"
    actions.write_text(json.dumps([{
        "name": "speech recognition",
        "event_type": "recording_completed",
        "order": 1,
        "url": f"http://127.0.0.1:{receiver.port}/monitor_file_event?ID={{ID}}&TEL={{TEL}}&DATE={{DATE}}",
        "method": "GET",
        "targets": [EXTERNAL_NUMBER],
        "enabled": True,
    }]))
    stack.manage("import_callactions", str(actions))
    pbx_token = stack.manage("create_api_token", "--username", "pbx", "--role", "pbx").strip()
    token = stack.manage("create_api_token", "--username", "asr", "--role", "administrator").strip()
    # The stereo file and the FLAC copies too (SPEC.md §7): nginx sends stored files, Django the WAV.
    stack.set_system(stereo_file="true", keep_lossless="true")
    recording = ingest_stereo_call(stack, pbx_token, CALL)
    return {"recording": recording, "token": token, "folder": folder}


def get(stack, call, path, direct=False, token=None, **headers):
    if token is not False:
        headers.setdefault("Authorization", f"Token {token or call['token']}")
    base = stack.direct_url if direct else stack.base_url
    return requests.get(base + path, headers=headers, verify=str(stack.cert), timeout=30)


def comparable_headers(response):
    return {k.lower(): v for k, v in response.headers.items() if k.lower() not in HOP_HEADERS}


def wait_for(predicate, timeout=40):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_the_receiver_is_notified_with_the_calls_request_id(stack, call, receiver):
    assert wait_for(lambda: len(receiver.log) >= 1), "no notification arrived\n" + stack.log("worker")[-3000:]
    request, response = receiver.log[0]
    assert request.args["ID"] == REQUEST_ID
    assert request.args["TEL"] == "0312345678"
    assert response.status_code == 200


def test_the_spec_curl_fetches_the_three_files_byte_identical_to_storage(stack, call):
    host_port = f"localhost:{stack.port}"
    files = call["recording"]["files"]
    for content_type in ("monaural", "left", "right"):
        command = (
            SPEC_CURL.replace("<token>", call["token"])
            .replace("<host>:8000", host_port)
            .replace("content_type=monaural", f"content_type={content_type}")
            .replace("-o test.mp3", f"-o {content_type}.mp3")
            .replace("curl ", "curl -k ", 1)
        )
        subprocess.run(["bash", "-c", command], cwd=call["folder"], check=True, capture_output=True, timeout=30)
        fetched = (call["folder"] / f"{content_type}.mp3").read_bytes()
        stored = stack.stored_file(files[content_type]["name"]).read_bytes()
        assert fetched == stored
        assert len(fetched) == files[content_type]["bytes"] > 0


def test_nginx_sent_the_bytes_of_each_file(stack, call):
    for content_type, stored in call["recording"]["files"].items():
        get(stack, call, f"/public/api/v1/monitor/{REQUEST_ID}?content_type={content_type}").raise_for_status()
        path = stack.stored_file(stored["name"]).relative_to(stack.media_root)
        served = [
            line for line in stack.download_log().splitlines()
            if f"file={ACCEL_PREFIX}{path} " in line and f" 200 {stored['bytes']} " in line
        ]
        assert served, stack.download_log()


def test_nginx_sends_the_flac_copy_and_django_streams_the_wav_made_from_it(stack, call):
    stored = call["recording"]["files"]["stereo"]
    flac = get(stack, call, f"/public/api/v1/monitor/{REQUEST_ID}?content_type=stereo&format=flac")
    assert (flac.status_code, flac.headers["Content-Type"]) == (200, "audio/flac")
    assert hashlib.sha256(flac.content).hexdigest() == stored["lossless"]["sha256"]
    path = stack.stored_file(stored["name"]).relative_to(stack.media_root).with_suffix(".flac")
    assert any(f"file={ACCEL_PREFIX}{path} " in line for line in stack.download_log().splitlines())
    wav = get(stack, call, f"/public/api/v1/monitor/{REQUEST_ID}?content_type=stereo&format=wav")
    direct = get(stack, call, f"/public/api/v1/monitor/{REQUEST_ID}?content_type=stereo&format=wav", direct=True)
    assert (wav.status_code, wav.headers["Content-Type"]) == (200, "audio/wav")
    assert wav.content == direct.content
    assert int(wav.headers["Content-Length"]) == len(wav.content) == 44 + 3 * 8000 * 2 * 2
    part = get(stack, call, f"/public/api/v1/monitor/{REQUEST_ID}?content_type=stereo&format=wav", Range="bytes=40-99")
    assert (part.status_code, part.content) == (206, wav.content[40:100])


def test_a_download_through_nginx_has_the_headers_of_the_direct_path(stack, call):
    path = f"/public/api/v1/monitor/{REQUEST_ID}?content_type=right"
    direct = get(stack, call, path, direct=True)
    proxied = get(stack, call, path)
    assert (proxied.status_code, proxied.content) == (direct.status_code, direct.content)
    expected, seen = comparable_headers(direct), comparable_headers(proxied)
    # Each answer counts one more request against the month, and the seconds to the
    # month's reset may have ticked between the two.
    for quota in ("x-ratelimit-remaining", "ratelimit", "ratelimit-policy"):
        assert quota in seen
        expected.pop(quota), seen.pop(quota)
    assert int(proxied.headers["X-RateLimit-Remaining"]) == int(direct.headers["X-RateLimit-Remaining"]) - 1
    policy_quota = [response.headers["RateLimit-Policy"].split(";w=")[0] for response in (direct, proxied)]
    assert policy_quota[0] == policy_quota[1]
    assert seen == expected
    assert "x-accel-redirect" not in seen


# Range requests answered by nginx the same way as by the direct path, from the disk and from a bucket.
RANGES = {
    "range": {"Range": "bytes=100-199"},
    "suffix": {"Range": "bytes=-300"},
    "open-ended": {"Range": "bytes=5000-"},
    "several-ranges": {"Range": "bytes=0-9,20-29"},
    "if-range-mismatch": {"Range": "bytes=0-9", "If-Range": '"not-the-etag"'},
}


@pytest.mark.parametrize("headers", RANGES.values(), ids=RANGES.keys())
def test_a_range_through_nginx_is_answered_as_on_the_direct_path(stack, call, headers):
    path = f"/public/api/v1/monitor/{REQUEST_ID}?content_type=monaural"
    direct = get(stack, call, path, direct=True, **headers)
    proxied = get(stack, call, path, **headers)
    assert proxied.status_code == direct.status_code
    assert proxied.content == direct.content
    for name in ("Content-Range", "Content-Length", "ETag", "Last-Modified", "Content-Disposition", "Content-Type"):
        assert proxied.headers.get(name) == direct.headers.get(name), name


def test_if_range_with_the_etag_gets_the_part_through_nginx(stack, call):
    path = f"/public/api/v1/monitor/{REQUEST_ID}?content_type=monaural"
    etag = get(stack, call, path).headers["ETag"]
    proxied = get(stack, call, path, Range="bytes=10-19", **{"If-Range": etag})
    assert proxied.status_code == 206
    assert proxied.content == get(stack, call, path, direct=True).content[10:20]


def test_head_through_nginx_has_the_headers_of_the_direct_path(stack, call):
    path = f"/public/api/v1/monitor/{REQUEST_ID}?content_type=left"
    auth = {"Authorization": f"Token {call['token']}"}
    direct = requests.head(stack.direct_url + path, headers=auth, timeout=30)
    proxied = requests.head(stack.base_url + path, headers=auth, verify=str(stack.cert), timeout=30)
    assert proxied.status_code == direct.status_code == 200
    for name in ("Content-Length", "Content-Type", "ETag", "Last-Modified", "Content-Disposition", "Accept-Ranges"):
        assert proxied.headers.get(name) == direct.headers.get(name), name


def assert_same_error(stack, call, path, status, error_type, **kwargs):
    direct = get(stack, call, path, direct=True, **kwargs)
    proxied = get(stack, call, path, **kwargs)
    assert (proxied.status_code, direct.status_code) == (status, status)
    assert proxied.content == direct.content
    body = proxied.json()
    assert list(body) == ["name", "type", "exception_id", "message", "messages", "reason"]
    assert body["type"] == error_type
    for name in ("Content-Type", "X-RateLimit-Limit", "X-RateLimit-Reset"):
        assert proxied.headers.get(name) == direct.headers.get(name), name
    # Seconds to the month's end: the two answers are a moment apart.
    assert ("Retry-After" in proxied.headers) == ("Retry-After" in direct.headers)
    if "Retry-After" in direct.headers:
        assert abs(int(proxied.headers["Retry-After"]) - int(direct.headers["Retry-After"])) <= 2
    return body


def test_a_request_without_a_token_gets_the_same_401_through_nginx(stack, call):
    path = f"/public/api/v1/monitor/{REQUEST_ID}"
    assert_same_error(stack, call, path, 401, "UNAUTHENTICATED", token=False)
    body = assert_same_error(stack, call, path, 401, "UNAUTHENTICATED", token="0" * 80)
    assert body["message"] == "Unauthenticated: method=personal_token, cause=invalid token."


def test_an_unknown_recording_gets_the_same_404_through_nginx(stack, call):
    assert_same_error(stack, call, "/public/api/v1/monitor/21091300000468000099", 404, "NOT_FOUND")
    assert_same_error(stack, call, "/public/api/v1/nothing-here", 404, "NOT_FOUND")


def test_a_separated_leg_without_the_licence_gets_the_same_403_through_nginx(stack, call):
    stack.set_system(voice_file_separation="false")
    try:
        assert_same_error(stack, call, f"/public/api/v1/monitor/{REQUEST_ID}?content_type=left", 403, "FORBIDDEN")
    finally:
        stack.set_system(voice_file_separation="true")


def test_the_monthly_quota_used_up_gets_the_same_429_through_nginx(stack, call):
    stack.set_system(monthly_request_limit="0")
    try:
        assert_same_error(stack, call, f"/public/api/v1/monitor/{REQUEST_ID}", 429, "MONTHLY_LIMIT_EXCEEDED")
    finally:
        stack.set_system(monthly_request_limit="100000")


def second_of_two_quick_requests(stack, call, path, direct):
    """Two requests in one second: the second is over a limit of one per second.
    Tried again when the pair happened to straddle two seconds."""
    for _ in range(20):
        get(stack, call, path, direct=direct)
        second = get(stack, call, path, direct=direct)
        if second.status_code == 429:
            return second
    raise AssertionError(f"no 429 in 20 pairs: {second.status_code} {second.text}")


def test_the_burst_limit_gets_the_same_429_through_nginx(stack, call):
    stack.set_system(burst_limit_per_second="1")
    path = f"/public/api/v1/monitor/{REQUEST_ID}"
    try:
        proxied = second_of_two_quick_requests(stack, call, path, direct=False)
        direct = second_of_two_quick_requests(stack, call, path, direct=True)
    finally:
        stack.set_system(burst_limit_per_second=BURST)
    assert proxied.content == direct.content
    assert proxied.json()["type"] == "REQUEST_BURST_LIMIT_EXCEEDED"
    assert proxied.headers["Retry-After"] == direct.headers["Retry-After"] == "1"
    assert proxied.headers["Content-Type"] == direct.headers["Content-Type"]


def test_the_asterisk_post_recording_command_hands_over_both_legs(stack, call, tmp_path):
    pbx_token = stack.manage("create_api_token", "--username", "asterisk", "--role", "pbx").strip()
    settings_file = tmp_path / "biztel-ingest.env"
    settings_file.write_text(f"BIZTEL_URL={stack.base_url}\nBIZTEL_INGEST_TOKEN={pbx_token}\nBIZTEL_CACERT={stack.cert}\n")
    # What MixMonitor leaves behind: one mono WAV per leg, and its own mix.
    legs = {name: tmp_path / f"1631520000.77-{name}.wav" for name in ("left", "right", "mix")}
    for (name, path), freq in zip(legs.items(), (440, 1000, 440)):
        path.write_bytes(wav_bytes([tone(freq, 2.0)]))
    started = int(datetime(2021, 9, 13, 11, 0, 0, tzinfo=ZoneInfo("Asia/Tokyo")).timestamp())
    result = subprocess.run(
        [str(ROOT / "deploy" / "asterisk" / "biztel-ingest"), "1631520000.77", str(started),
         "0312345678", "0501234567", "DST", EXTERNAL_NUMBER, "2001", "0312345678", "support",
         str(legs["left"]), str(legs["right"]), str(legs["mix"])],
        env={**os.environ, "BIZTEL_INGEST_ENV": str(settings_file)}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    recording = json.loads(result.stdout)
    assert recording["request_id"] == "21091311000000000077"
    assert recording["started_at"] == "2021-09-13 11:00:00"
    assert all(recording["files"][content_type]["exists"] for content_type in ("monaural", "left", "right"))
    assert not any(path.exists() for path in legs.values())


def test_a_flood_without_a_token_is_cut_by_nginx_and_a_valid_token_still_passes(stack, call):
    import requests

    with requests.Session() as session:
        session.verify = str(stack.cert)
        session.trust_env = False
        answers = [session.get(f"{stack.base_url}/public/api/v1/monitor/{REQUEST_ID}", timeout=10) for _ in range(60)]
        assert {answer.status_code for answer in answers} <= {401, 429}
        limited = [answer for answer in answers if answer.status_code == 429]
        assert limited, "nginx let 60 unauthenticated requests through at once"
        body = limited[-1].json()
        assert list(body) == ["name", "type", "exception_id", "message", "messages", "reason"]
        assert body["type"] == "REQUEST_BURST_LIMIT_EXCEEDED" and limited[-1].headers["Retry-After"] == "1"
        assert get(stack, call, f"/public/api/v1/monitor/{REQUEST_ID}").status_code == 200


def test_control_characters_in_a_header_the_api_reads_get_a_six_key_400_through_nginx(stack, call):
    answer = get(stack, call, f"/public/api/v1/monitor/{REQUEST_ID}", **{"If-Modified-Since": "\x01garbage"})
    assert answer.status_code == 400
    body = answer.json()
    assert list(body) == ["name", "type", "exception_id", "message", "messages", "reason"]
    assert body["messages"] == {"request": ["A request header holds control characters."]}


# Last in this module: it stops the web server.
def test_with_the_web_server_down_the_api_still_answers_with_the_six_keys(stack, call):
    stack.processes["gunicorn"].terminate()
    stack.processes["gunicorn"].wait(timeout=20)
    answer = get(stack, call, f"/public/api/v1/monitor/{REQUEST_ID}")
    assert answer.status_code == 500
    assert answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert list(body) == ["name", "type", "exception_id", "message", "messages", "reason"]
    assert (body["name"], body["type"], body["message"]) == ("SystemException", "INTERNAL_SERVER_ERROR", "System error.")
    # The id a customer quotes is in nginx's log (written in its log phase, just after the answer went out).
    quoted = f"request_id={body['exception_id']}"
    assert wait_for(lambda: quoted in stack.log("biztel-access"), timeout=5), stack.log("biztel-access")[-2000:]


# --- the same stack with the recordings in an S3-compatible bucket (SPEC.md §9) -------------

BUCKET_CALL = {**CALL, "request_id": "21091300000468000051", "unique_id": "1631512345.51"}


@pytest.fixture(scope="module")
def bucket_stack(django_db_setup, django_db_blocker, s3_endpoint):
    from tests import s3

    bucket = s3.new_bucket(s3_endpoint)
    with product_stack(
        django_db_blocker, celery=False, s3_endpoint=s3_endpoint, extra_env=s3.storage_env(s3_endpoint, bucket)
    ) as running:
        running.set_system(burst_limit_per_second=BURST)
        running.bucket = bucket
        yield running
    s3.empty_bucket(s3_endpoint, bucket)


@pytest.fixture(scope="module")
def bucket_call(bucket_stack, s3_endpoint):
    from tests import s3

    pbx_token = bucket_stack.manage("create_api_token", "--username", "pbx-s3", "--role", "pbx").strip()
    token = bucket_stack.manage("create_api_token", "--username", "asr-s3", "--role", "administrator").strip()
    recording = ingest_stereo_call(bucket_stack, pbx_token, BUCKET_CALL)
    objects = {}
    for content_type, stored in recording["files"].items():
        (key,) = [k for k in s3.keys(s3_endpoint, bucket_stack.bucket) if k.endswith("/" + stored["name"])]
        objects[content_type] = s3.client(s3_endpoint).get_object(Bucket=bucket_stack.bucket, Key=key)["Body"].read()
    return {"recording": recording, "token": token, "objects": objects}


def assert_same_download(direct, proxied):
    assert (proxied.status_code, proxied.content) == (direct.status_code, direct.content)
    expected, seen = comparable_headers(direct), comparable_headers(proxied)
    for quota in ("x-ratelimit-remaining", "ratelimit", "ratelimit-policy"):
        expected.pop(quota, None), seen.pop(quota, None)
    assert seen == expected


@pytest.mark.parametrize("content_type", ["monaural", "left", "right"])
def test_a_file_in_the_bucket_through_nginx_has_the_bytes_and_headers_of_the_direct_path(
    bucket_stack, bucket_call, content_type
):
    path = f"/public/api/v1/monitor/{BUCKET_CALL['request_id']}?content_type={content_type}"
    direct = get(bucket_stack, bucket_call, path, direct=True)
    proxied = get(bucket_stack, bucket_call, path)
    assert direct.content == bucket_call["objects"][content_type]
    assert_same_download(direct, proxied)
    served = [line for line in bucket_stack.download_log().splitlines() if "file=/_s3/" in line and " 200 " in line]
    assert served, bucket_stack.download_log()


@pytest.mark.parametrize(
    "headers",
    [*RANGES.values(), {"Range": "bytes=999999999-"}],
    ids=[*RANGES.keys(), "unsatisfiable"],
)
def test_a_range_of_a_file_in_the_bucket_through_nginx_is_answered_as_on_the_direct_path(
    bucket_stack, bucket_call, headers
):
    path = f"/public/api/v1/monitor/{BUCKET_CALL['request_id']}?content_type=monaural"
    assert_same_download(get(bucket_stack, bucket_call, path, direct=True, **headers),
                         get(bucket_stack, bucket_call, path, **headers))


def test_if_none_match_and_head_of_a_file_in_the_bucket_are_answered_as_on_the_direct_path(bucket_stack, bucket_call):
    path = f"/public/api/v1/monitor/{BUCKET_CALL['request_id']}?content_type=left"
    etag = get(bucket_stack, bucket_call, path, direct=True).headers["ETag"]
    direct = get(bucket_stack, bucket_call, path, direct=True, **{"If-None-Match": etag})
    proxied = get(bucket_stack, bucket_call, path, **{"If-None-Match": etag})
    assert proxied.status_code == direct.status_code == 304
    auth = {"Authorization": f"Token {bucket_call['token']}"}
    direct = requests.head(bucket_stack.direct_url + path, headers=auth, timeout=30)
    proxied = requests.head(bucket_stack.base_url + path, headers=auth, verify=str(bucket_stack.cert), timeout=30)
    assert_same_download(direct, proxied)
