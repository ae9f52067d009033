"""Burst limit and monthly quota against the real server: gunicorn with 2 worker processes."""

import time
from concurrent.futures import ThreadPoolExecutor

import requests

from biztel.models import MonthlyUsage
from tests.factories import stored_recording


def fire(url, token, count):
    """`count` simultaneous GETs; their status codes."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(requests.get, url, headers={"Authorization": f"Token {token}"}, timeout=10) for _ in range(count)]
        return [f.result() for f in futures]


def wait_for_fresh_second():
    time.sleep(1 - time.time() % 1 + 0.02)


def test_burst_limit_lets_exactly_the_limit_through_in_one_second_across_processes(gunicorn_server, token, set_system):
    set_system(burst_limit_per_second=10)
    url = f"{gunicorn_server}/public/api/v1/monitor/{stored_recording().request_id}"
    fire(url, token, 4)  # warm both workers up
    wait_for_fresh_second()
    started = time.time()
    answers = fire(url, token, 11)
    assert int(time.time()) == int(started), "the 11 requests did not fit in one second; rerun"
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 10 + [429]
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["type"] == "REQUEST_BURST_LIMIT_EXCEEDED"
    assert refused.headers["Retry-After"] == "1"
    wait_for_fresh_second()
    assert requests.get(url, headers={"Authorization": f"Token {token}"}, timeout=10).status_code == 200


def test_quota_with_n_left_lets_exactly_n_of_3n_concurrent_requests_through(gunicorn_server, token, set_system):
    n = 12
    set_system(burst_limit_per_second=1000, monthly_request_limit=n)
    url = f"{gunicorn_server}/public/api/v1/monitor/{stored_recording().request_id}"
    answers = fire(url, token, 3 * n)
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == n
    assert statuses.count(429) == 2 * n
    assert {a.json()["type"] for a in answers if a.status_code == 429} == {"MONTHLY_LIMIT_EXCEEDED"}
    usage = MonthlyUsage.objects.get()
    assert usage.requests == n
    assert usage.response_objects == n


def test_a_settings_change_is_in_force_in_every_process_within_a_second(gunicorn_server, token, set_system):
    url = f"{gunicorn_server}/public/api/v1/monitor/{stored_recording().request_id}"
    assert {a.status_code for a in fire(url, token, 6)} == {200}
    set_system(recording_file_api_enabled=False)
    time.sleep(1.1)
    answers = fire(url, token, 8)
    assert {a.status_code for a in answers} == {403}
    assert {a.json()["name"] for a in answers} == {"AuthorizationException"}


def test_the_first_requests_of_a_month_are_not_refused_while_its_counter_is_created(gunicorn_server, token, set_system):
    set_system(burst_limit_per_second=1000)
    assert not MonthlyUsage.objects.exists()
    url = f"{gunicorn_server}/public/api/v1/monitor/{stored_recording().request_id}"
    answers = fire(url, token, 24)
    assert [a.status_code for a in answers] == [200] * 24
    assert MonthlyUsage.objects.get().requests == 24
