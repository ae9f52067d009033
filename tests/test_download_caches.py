"""The token and recording lookups each web process keeps for a second (biztel/tokens.py,
recordings/selectors.py): a revocation, a deletion or a purge never outlives them by more
than a second, in every process of a real gunicorn with 2 workers."""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import requests
from django.utils import timezone

from biztel.models import ApiToken
from biztel.tokens import token_revoke
from recordings.lifecycle import Actor, recording_delete
from recordings.models import RecordingFile
from recordings.purge import purge_due
from tests.factories import stored_recording
from tests.test_download_errors import INVALID_TOKEN, NOT_FOUND

URL = "/public/api/v1/monitor/{}"


def fire(url, token, count, **headers):
    """`count` simultaneous GETs, each on a connection of its own so both workers take some."""
    headers = {"Authorization": f"Token {token}", "Connection": "close", **headers}
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda _: requests.get(url, headers=headers, timeout=10), range(count)))


def test_a_revoked_token_is_refused_by_every_server_process_within_a_second(gunicorn_server, token, set_system):
    set_system(burst_limit_per_second=1000)
    url = f"{gunicorn_server}{URL.format(stored_recording().request_id)}?content_type=monaural"
    assert {a.status_code for a in fire(url, token, 24)} == {200}  # both workers now hold the token
    token_revoke(token=ApiToken.objects.get())
    time.sleep(1.0)
    answers = fire(url, token, 24)
    assert {a.status_code for a in answers} == {401}
    assert all(a.json() == INVALID_TOKEN for a in answers)


def test_a_revoked_token_is_refused_at_once_by_the_process_that_revoked_it(client, token):
    recording = stored_recording()
    url = URL.format(recording.request_id)
    assert client.get(url, HTTP_AUTHORIZATION=f"Token {token}").status_code == 200
    token_revoke(token=ApiToken.objects.get())
    response = client.get(url, HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 401
    assert response.json() == INVALID_TOKEN


def test_an_expired_token_is_refused_at_once_though_the_process_holds_it(client, token):
    recording = stored_recording()
    url = URL.format(recording.request_id)
    ApiToken.objects.update(expires_at=timezone.now() + timedelta(milliseconds=300))
    assert client.get(url, HTTP_AUTHORIZATION=f"Token {token}").status_code == 200
    time.sleep(0.35)
    response = client.get(url, HTTP_AUTHORIZATION=f"Token {token}")
    assert response.json() == INVALID_TOKEN


def test_a_deleted_recording_is_the_404_row_at_once_in_the_process_that_deleted_it(transactional_db, client, token):
    recording = stored_recording()
    url = URL.format(recording.request_id)
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    assert client.get(url, **auth).status_code == 200
    assert client.delete(f"/public/api/v1/recordings/{recording.request_id}", **auth).status_code == 204
    for extra in ({}, {"HTTP_IF_NONE_MATCH": '"x"'}):
        response = client.get(url, **auth, **extra)
        assert response.status_code == 404
        assert response.json() == NOT_FOUND
    assert client.head(url, **auth).status_code == 404


def test_a_recording_deleted_elsewhere_is_the_404_row_in_every_server_process_within_a_second(
    gunicorn_server, token, set_system
):
    set_system(burst_limit_per_second=1000)
    recording = stored_recording()
    url = f"{gunicorn_server}{URL.format(recording.request_id)}"
    assert {a.status_code for a in fire(url, token, 24)} == {200}  # both workers now hold the lookup
    recording_delete(recording=recording, actor=Actor(account=None, via="admin"))
    # at once where the open of the deleted file fails ...
    answers = fire(url, token, 24)
    assert {a.status_code for a in answers} == {404}
    assert all(a.json() == NOT_FOUND for a in answers)
    # ... and within the second where nothing is opened (a conditional GET, HEAD)
    time.sleep(1.0)
    answers = fire(url, token, 8, **{"If-None-Match": '"x"'})
    assert {a.status_code for a in answers} == {404}
    assert {requests.head(url, headers={"Authorization": f"Token {token}"}, timeout=10).status_code} == {404}


def test_a_purged_file_is_the_404_row_in_every_server_process_at_once(gunicorn_server, token, set_system):
    set_system(burst_limit_per_second=1000, separated_retention_days=7)
    recording = stored_recording()
    url = f"{gunicorn_server}{URL.format(recording.request_id)}?content_type=left"
    assert {a.status_code for a in fire(url, token, 24)} == {200}  # both workers now hold the lookup
    RecordingFile.objects.filter(recording=recording).update(created_at=timezone.now() - timedelta(days=8))
    assert purge_due().files == 2  # the legs; the mixed file is kept
    answers = fire(url, token, 24)
    assert {a.status_code for a in answers} == {404}
    assert all(a.json() == NOT_FOUND for a in answers)
