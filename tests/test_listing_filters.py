"""The listing's filters of SPEC.md §8: from/to, numbers, group, include_deleted, with paging."""

from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from recordings.models import Recording
from tests.test_listing_day import follow, get, make_recordings, request_ids_of_every_page

pytestmark = pytest.mark.django_db


def ids(response):
    assert response.status_code == 200, response.content
    return [item["request_id"] for item in response.json()["results"]]


def at(text):
    return timezone.make_aware(datetime.fromisoformat(text))


def call(request_id, started_at, **fields):
    return Recording.objects.create(
        request_id=request_id, unique_id=f"u{request_id}", started_at=at(started_at), caller="2006", callee="2002",
        side="SRC", **fields,
    )


def test_from_and_to_select_call_starts_with_to_exclusive(client, token):
    call("00000000000000000001", "2019-07-01 09:59:59")
    call("00000000000000000002", "2019-07-01 10:00:00")
    call("00000000000000000003", "2019-07-20 23:59:59")
    call("00000000000000000004", "2019-07-31 10:00:00")
    response = get(client, token, **{"from": "2019-07-01 10:00:00", "to": "2019-07-31 10:00:00"})
    assert ids(response) == ["00000000000000000002", "00000000000000000003"]


def test_a_window_of_exactly_31_days_is_allowed_and_one_second_more_is_refused(client, token):
    assert get(client, token, **{"from": "2019-07-01 00:00:00", "to": "2019-08-01 00:00:00"}).status_code == 200
    response = get(client, token, **{"from": "2019-07-01 00:00:00", "to": "2019-08-01 00:00:01"})
    assert response.status_code == 400
    assert response.json()["messages"] == {"to": ["The to must be later than from, at most 31 days later."]}


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"from": "2019-07-01"}, ["from", "to"]),
        ({"from": "2019-07-01 00:00:00"}, ["to"]),
        ({"to": "2019-07-01 00:00:00"}, ["from"]),
        ({"from": "2019-07-02 00:00:00", "to": "2019-07-01 00:00:00"}, ["to"]),
        ({"from": "2019-07-01 00:00:00", "to": "2019-07-01 00:00:00"}, ["to"]),
        ({"from": "2019-02-30 00:00:00", "to": "2019-03-01 00:00:00"}, ["from"]),
        ({"date": "2019-07-01", "from": "2019-07-01 00:00:00", "to": "2019-07-02 00:00:00"}, ["date"]),
        ({"date": "2019-07-18", "tel": "090-abc"}, ["tel"]),
        ({"date": "2019-07-18", "external_number": "+81"}, ["external_number"]),
        ({"date": "2019-07-18", "extension": "ext"}, ["extension"]),
        ({"date": "2019-07-18", "include_deleted": "yes"}, ["include_deleted"]),
        ({"date": "bad", "tel": "x", "include_deleted": "1", "page_size": "0"}, ["date", "tel", "include_deleted", "page_size"]),
    ],
)
def test_each_bad_parameter_is_named(client, token, params, named):
    response = get(client, token, **params)
    assert response.status_code == 400
    body = response.json()
    assert (body["name"], body["type"], body["exception_id"]) == ("ValidateException", "VALIDATE_ERROR", None)
    assert sorted(body["messages"]) == sorted(named)


def test_numbers_are_compared_without_hyphens(client, token):
    call("00000000000000000001", "2019-07-18 10:00:00", tel="09012345678", external_number="0312345678", extension="2002")
    call("00000000000000000002", "2019-07-18 11:00:00", tel="09099999999", external_number="0312345678", extension="2003")
    assert ids(get(client, token, date="2019-07-18", tel="090-1234-5678")) == ["00000000000000000001"]
    assert ids(get(client, token, date="2019-07-18", tel="09012345678")) == ["00000000000000000001"]
    assert ids(get(client, token, date="2019-07-18", external_number="03-1234-5678")) == [
        "00000000000000000001", "00000000000000000002",
    ]
    assert ids(get(client, token, date="2019-07-18", extension="2003")) == ["00000000000000000002"]
    assert ids(get(client, token, date="2019-07-18", tel="0901234567")) == []  # exact, not a prefix


def test_the_group_filter_is_exact_and_stays_within_the_accounts_groups(client, token, make_token):
    call("00000000000000000001", "2019-07-18 10:00:00", group="sales")
    call("00000000000000000002", "2019-07-18 11:00:00", group="support")
    assert ids(get(client, token, date="2019-07-18", group="sales")) == ["00000000000000000001"]
    assert ids(get(client, token, date="2019-07-18", group="sale")) == []
    scoped = make_token(role="supervisor", groups="support")
    assert ids(get(client, scoped, date="2019-07-18", group="sales")) == []


def test_deleted_recordings_are_left_out_unless_include_deleted_is_true(client, token):
    call("00000000000000000001", "2019-07-18 10:00:00")
    call("00000000000000000002", "2019-07-18 11:00:00", deleted_at=timezone.now())
    assert ids(get(client, token, date="2019-07-18")) == ["00000000000000000001"]
    assert ids(get(client, token, date="2019-07-18", include_deleted="false")) == ["00000000000000000001"]
    response = get(client, token, date="2019-07-18", include_deleted="true")
    assert ids(response) == ["00000000000000000001", "00000000000000000002"]
    assert [item["status"] for item in response.json()["results"]] == ["absent", "deleted"]


def test_paging_over_a_range_with_filters_returns_each_match_exactly_once(client, token):
    make_recordings(250, day="2019-07-18", group="sales")
    make_recordings(250, day="2019-07-19", first=1000, group="sales")
    make_recordings(50, day="2019-07-19", first=5000, group="support")
    Recording.objects.filter(unique_id__endswith="7").update(deleted_at=timezone.now())
    expected = set(
        Recording.objects.filter(group="sales", deleted_at__isnull=True).values_list("request_id", flat=True)
    )
    params = {"from": "2019-07-18 00:00:00", "to": "2019-07-20 00:00:00", "group": "sales", "page_size": 60}
    response = get(client, token, **params)
    seen = []
    while True:
        data = response.json()
        seen += ids(response)
        if data["next"] is None:
            break
        query = parse_qs(urlsplit(data["next"]).query)
        assert (query["from"], query["to"], query["group"]) == (["2019-07-18 00:00:00"], ["2019-07-20 00:00:00"], ["sales"])
        response = follow(client, token, data["next"])
    assert len(seen) == len(set(seen)) == len(expected)
    assert set(seen) == expected


def test_include_deleted_survives_the_next_page(client, token):
    for n in range(5):
        call(f"0000000000000000000{n}", f"2019-07-18 10:00:0{n}", deleted_at=timezone.now())
    first = get(client, token, date="2019-07-18", include_deleted="true", page_size=2).json()
    assert "include_deleted=true" in first["next"]
    assert len(request_ids_of_every_page(client, token, first)) == 5


def test_a_cursor_from_another_window_is_refused(client, token):
    make_recordings(3)
    params = {"from": "2019-07-18 00:00:00", "to": "2019-07-19 00:00:00", "page_size": 1}
    cursor = parse_qs(urlsplit(get(client, token, **params).json()["next"]).query)["cursor"][0]
    for other in ({**params, "to": "2019-07-19 00:00:01"}, {"date": "2019-07-18"}):
        response = get(client, token, **other, cursor=cursor)
        assert response.status_code == 400
        assert list(response.json()["messages"]) == ["cursor"]


def test_the_window_is_local_time(client, token):
    call("00000000000000000001", "2019-07-18 00:00:00")
    local_midnight = at("2019-07-18 00:00:00")
    assert timezone.localtime(local_midnight).utcoffset() == timedelta(hours=9)
    assert ids(get(client, token, **{"from": "2019-07-18 00:00:00", "to": "2019-07-18 00:00:01"})) == [
        "00000000000000000001"
    ]
