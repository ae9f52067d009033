"""Failed authentication is limited per client address (issue 10 item 8): past 60 in ten
seconds from one address the answer is the burst 429 and no access-log row is written;
requests with a valid token are never counted and keep the contract's burst limit."""

import pytest
from django.utils import timezone
from freezegun import freeze_time

from biztel.limits import FAILED_AUTH_RATE
from recordings.models import AccessLogEntry
from tests.factories import stored_recording

pytestmark = pytest.mark.django_db
LIMIT = int(FAILED_AUTH_RATE.split("/")[0])


def get(client, path, token=None, address="198.51.100.20"):
    headers = {"REMOTE_ADDR": address}
    if token:
        headers["HTTP_AUTHORIZATION"] = f"Token {token}"
    return client.get(path, **headers)


def test_a_flood_of_bad_tokens_from_one_address_is_refused_and_stops_writing_log_rows(client, token, set_system):
    set_system(burst_limit_per_second=1000)
    recording = stored_recording()
    path = f"/public/api/v1/monitor/{recording.request_id}"
    with freeze_time(timezone.now()):  # one counting window, however slow the machine
        answers = [get(client, path, token="0" * 80) for _ in range(LIMIT + 30)]
        assert [a.status_code for a in answers] == [401] * LIMIT + [429] * 30
        body = answers[-1].json()
        assert body == {
            "name": "AuthenticationException", "type": "REQUEST_BURST_LIMIT_EXCEEDED", "exception_id": None,
            "message": "exceptions.AccessLimitException.", "messages": None, "reason": "exceptions.AccessLimitException.",
        }
        assert 1 <= int(answers[-1]["Retry-After"]) <= 10
        assert AccessLogEntry.objects.count() == LIMIT
        # a valid token from the same address is not held back, and a missing header counts as a failure too
        assert get(client, path, token=token).status_code == 200
        assert get(client, path).status_code == 429
        # another address is counted apart
        assert get(client, path, token="0" * 80, address="198.51.100.21").status_code == 401


def test_valid_tokens_are_never_counted_as_failures(client, token, set_system):
    set_system(burst_limit_per_second=1000)
    recording = stored_recording()
    path = f"/public/api/v1/monitor/{recording.request_id}"
    assert all(get(client, path, token=token).status_code == 200 for _ in range(LIMIT + 5))
    assert get(client, path, token="0" * 80).status_code == 401
