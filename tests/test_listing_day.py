"""GET /public/api/v1/monitor/?date=… (SPEC.md §3.5): a day's recordings, page by page."""

import hashlib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest
import requests
from django.utils import timezone
from freezegun import freeze_time

from biztel.limits import month_bounds
from biztel.models import MonthlyUsage
from recordings.models import Recording, RecordingFile
from recordings.purge import purge_due
from tests.factories import stored_recording

URL = "/public/api/v1/monitor/"
DAY = "2019-07-18"


def make_recordings(count, day=DAY, first=0, group=""):
    """Rows straight into the database: listing reads rows only, so no audio is needed."""
    start = timezone.make_aware(datetime.fromisoformat(f"{day} 00:00:00"))
    now = timezone.now()
    recordings = Recording.objects.bulk_create(
        Recording(
            request_id=f"{day.replace('-', '')}{first + n:012d}",
            unique_id=f"{day}.{first + n}",
            # several calls per second, so the paging has equal start times to get right
            started_at=start + timedelta(seconds=(first + n) // 3),
            caller="2006",
            callee="2002",
            side="SRC",
            group=group,
        )
        for n in range(count)
    )
    RecordingFile.objects.bulk_create(
        RecordingFile(
            recording=recording,
            content_type="monaural",
            name=f"{recording.unique_id}.mp3",
            path=f"x/{recording.unique_id}.mp3",
            size=1000,
            sha256=hashlib.sha256(recording.unique_id.encode()).hexdigest(),
            duration=1.0,
            created_at=now,
        )
        for recording in recordings
    )
    return recordings


def get(client, token, **params):
    return client.get(URL, params, HTTP_AUTHORIZATION=f"Token {token}")


def request_ids_of_every_page(client, token, first):
    """The request_ids of `first` (a listing's JSON) and of every page its `next` links lead to."""
    seen = [item["request_id"] for item in first["results"]]
    next_url = first["next"]
    while next_url:
        data = follow(client, token, next_url).json()
        seen += [item["request_id"] for item in data["results"]]
        next_url = data["next"]
    return seen


def follow(client, token, next_url):
    parts = urlsplit(next_url)
    return client.get(f"{parts.path}?{parts.query}", HTTP_AUTHORIZATION=f"Token {token}")


def usage():
    row = MonthlyUsage.objects.filter(month=month_bounds()[0]).first()
    return (row.requests, row.response_objects) if row else (0, 0)


def test_paging_over_2500_recordings_returns_each_exactly_once(client, token):
    expected = {r.request_id for r in make_recordings(2500)}
    make_recordings(5, day="2019-07-17")
    make_recordings(5, day="2019-07-19")
    seen = []
    response = get(client, token, date=DAY, page_size=1000)
    pages = 0
    while True:
        assert response.status_code == 200
        data = response.json()
        seen += [item["request_id"] for item in data["results"]]
        pages += 1
        if data["next"] is None:
            break
        response = follow(client, token, data["next"])
    assert pages == 3
    assert len(seen) == len(expected) == len(set(seen))
    assert set(seen) == expected


def test_recordings_stored_while_paging_neither_repeat_nor_push_others_out(client, token):
    expected = {r.request_id for r in make_recordings(30)}
    first = get(client, token, date=DAY, page_size=10).json()
    # calls at the start, in the middle and at the end of the day arrive between two pages
    make_recordings(3, first=1000)
    Recording.objects.filter(request_id__in=[f"20190718{n:012d}" for n in range(1000, 1003)]).update(
        started_at=timezone.make_aware(datetime(2019, 7, 18, 0, 0, 5))
    )
    seen = request_ids_of_every_page(client, token, first)
    assert len(seen) == len(set(seen))
    assert expected <= set(seen)


def test_a_day_without_recordings_answers_an_empty_page(client, token):
    make_recordings(3, day="2019-07-17")
    response = get(client, token, date=DAY)
    assert response.status_code == 200
    assert response.json() == {"results": [], "next": None}


def test_each_item_has_the_ids_start_numbers_and_every_file_with_whether_it_still_exists(client, token):
    with freeze_time("2019-07-18 18:00:00+09:00") as clock:
        recording = stored_recording()
        monaural_only = stored_recording(separated=False, started_at="2019-07-18 16:20:00")
        clock.tick(timedelta(days=8))
        purge_due()
        results = get(client, token, date=DAY).json()["results"]
    assert [item["request_id"] for item in results] == [recording.request_id, monaural_only.request_id]
    item = results[0]
    assert item["unique_id"] == recording.unique_id
    assert item["started_at"] == "2019-07-18 16:10:58"
    assert (item["caller"], item["callee"], item["tel"]) == ("2006", "2002", "09012345678")
    mixed = recording.files.get(content_type="monaural")
    assert item["files"]["monaural"]["name"] == mixed.name
    assert item["files"]["monaural"]["bytes"] == mixed.size
    assert item["files"]["monaural"]["sha256"] == mixed.sha256
    assert item["files"]["monaural"]["duration"] == mixed.duration
    assert item["files"]["monaural"]["exists"] is True
    assert item["files"]["left"]["exists"] is False
    assert item["files"]["right"]["exists"] is False
    assert results[1]["files"]["left"] is None


def test_the_page_size_defaults_to_100(client, token):
    make_recordings(150)
    data = get(client, token, date=DAY).json()
    assert len(data["results"]) == 100
    assert "page_size=100" in data["next"]


@pytest.mark.parametrize("page_size", ["0", "1001", "-1", "ten", "1.5", ""])
def test_a_page_size_outside_1_to_1000_is_refused(client, token, page_size):
    response = get(client, token, date=DAY, page_size=page_size)
    assert response.status_code == 400
    body = response.json()
    assert (body["name"], body["type"]) == ("ValidateException", "VALIDATE_ERROR")
    assert list(body["messages"]) == ["page_size"]


@pytest.mark.parametrize("params", [{}, {"date": "2019-7-18"}, {"date": "2019-02-30"}, {"date": "yesterday"}])
def test_a_missing_or_malformed_date_is_refused(client, token, params):
    response = get(client, token, **params)
    assert response.status_code == 400
    assert list(response.json()["messages"]) == ["date"]


def test_a_cursor_not_made_for_that_day_is_refused(client, token):
    make_recordings(3)
    next_url = get(client, token, date=DAY, page_size=1).json()["next"]
    cursor = next_url.split("cursor=")[1]
    for params in ({"date": DAY, "cursor": "garbage!"}, {"date": "2019-07-19", "cursor": cursor}):
        response = get(client, token, **params)
        assert response.status_code == 400
        assert list(response.json()["messages"]) == ["cursor"]


def test_a_page_counts_one_request_and_one_object_per_recording(client, token):
    make_recordings(7)
    get(client, token, date=DAY, page_size=5)
    assert usage() == (1, 5)
    response = get(client, token, date="2019-07-01")
    assert usage() == (2, 5)
    assert response["X-RateLimit-Remaining"] == str(100_000 - 5)


def test_a_page_is_cut_to_the_objects_left_this_month(client, token, set_system):
    set_system(monthly_response_object_limit=5)
    make_recordings(8)
    data = get(client, token, date=DAY, page_size=100).json()
    assert len(data["results"]) == 5
    response = follow(client, token, data["next"])
    assert response.status_code == 429
    assert response.json()["type"] == "MONTHLY_LIMIT_EXCEEDED"
    assert usage()[1] == 5


def test_an_account_limited_to_groups_sees_only_their_recordings(client, make_token):
    make_recordings(4, group="sales")
    make_recordings(6, first=100, group="support")
    token = make_token(role="supervisor", groups="support")
    results = get(client, token, date=DAY).json()["results"]
    assert len(results) == 6
    assert {item["group"] for item in results} == {"support"}


def test_the_pbx_ingest_account_may_not_list(client, make_token):
    response = get(client, make_token(role="pbx"), date=DAY)
    assert response.status_code == 403
    assert response.json()["name"] == "AuthorizationException"


def test_concurrent_listings_return_exactly_the_objects_left_in_the_month(gunicorn_server, token, set_system):
    set_system(monthly_response_object_limit=250, burst_limit_per_second=10_000)
    make_recordings(400)

    def drain(worker):
        returned = 0
        with requests.Session() as session:
            while True:
                response = session.get(
                    f"{gunicorn_server}{URL}", params={"date": DAY, "page_size": 7 + worker},
                    headers={"Authorization": f"Token {token}"}, timeout=30,
                )
                if response.status_code == 429:
                    return returned
                assert response.status_code == 200
                returned += len(response.json()["results"])

    with ThreadPoolExecutor(8) as pool:
        total = sum(pool.map(drain, range(8)))
    assert total == 250
    assert usage()[1] == 250
