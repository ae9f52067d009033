"""Login lockout on the real admin login page (SPEC.md §10): 5 failures of one username
from one address within 15 minutes lock that pair for 15 minutes, the right password
included; an administrator unlocks it. Addresses come from X-Real-IP, as nginx on this
machine sends it (the test client's peer is 127.0.0.1)."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
import requests
from axes.models import AccessAttempt, AccessFailureLog
from django.core.management import call_command
from django.utils import timezone
from freezegun import freeze_time

from biztel.models import Account, Role
from tests.conftest import ROOT, free_port, serving

PASSWORD = "correct horse battery staple"
LOCKED = "Account locked: too many login attempts. Please try again later."


@pytest.fixture
def staff(db):
    def make(username):
        return Account.objects.create_user(username, password=PASSWORD, is_staff=True, role=Role.ADMINISTRATOR)

    return make


def log_in(client, username, password, ip="203.0.113.7"):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password, "next": "/admin/"},
        HTTP_X_REAL_IP=ip,
    )


def signed_in(response):
    return response.status_code == 302 and response["Location"] == "/admin/"


def fail(client, username, times, ip="203.0.113.7"):
    return [log_in(client, username, "wrong password", ip=ip) for _ in range(times)]


def test_four_failures_still_let_the_right_password_in(client, staff):
    staff("alice")
    answers = fail(client, "alice", 4)
    assert [a.status_code for a in answers] == [200] * 4
    assert "Please enter the correct username and password" in answers[-1].content.decode()
    assert signed_in(log_in(client, "alice", PASSWORD))


def test_after_five_failures_the_right_password_is_refused(client, staff):
    staff("alice")
    answers = fail(client, "alice", 5)
    assert answers[-1].status_code == 429
    sixth = log_in(client, "alice", PASSWORD)
    assert sixth.status_code == 429
    assert sixth.content.decode() == LOCKED
    assert client.get("/admin/").status_code == 302  # not signed in


def test_another_username_from_the_same_address_still_signs_in(client, staff):
    staff("alice"), staff("bob")
    fail(client, "alice", 5)
    assert signed_in(log_in(client, "bob", PASSWORD))


def test_the_same_username_from_another_address_still_signs_in(client, staff):
    staff("alice")
    fail(client, "alice", 5, ip="203.0.113.7")
    assert signed_in(log_in(client, "alice", PASSWORD, ip="198.51.100.20"))


def test_the_lock_ends_after_fifteen_minutes(client, staff):
    staff("alice")
    start = timezone.now()
    with freeze_time(start):
        fail(client, "alice", 5)
    with freeze_time(start + timedelta(minutes=14)):
        assert log_in(client, "alice", PASSWORD).status_code == 429
    with freeze_time(start + timedelta(minutes=15, seconds=1)):
        assert signed_in(log_in(client, "alice", PASSWORD))


def test_failures_more_than_fifteen_minutes_apart_do_not_add_up(client, staff):
    staff("alice")
    start = timezone.now()
    with freeze_time(start):
        fail(client, "alice", 4)
    with freeze_time(start + timedelta(minutes=16)):
        assert fail(client, "alice", 1)[0].status_code == 200
        assert signed_in(log_in(client, "alice", PASSWORD))


def test_every_failure_and_the_lockout_are_recorded_and_shown_in_admin(client, staff, admin_client):
    staff("alice")
    fail(client, "alice", 5)
    log_in(client, "alice", PASSWORD)
    attempt = AccessAttempt.objects.get(username="alice")
    assert (attempt.ip_address, attempt.failures_since_start) == ("203.0.113.7", 5)
    failures = AccessFailureLog.objects.filter(username="alice").order_by("attempt_time")
    assert [f.locked_out for f in failures] == [False, False, False, False, True]
    assert {f.ip_address for f in failures} == {"203.0.113.7"}
    attempts_page = admin_client.get("/admin/axes/accessattempt/", {"locked_out": "yes"}).content.decode()
    assert "alice" in attempts_page and "203.0.113.7" in attempts_page
    failures_page = admin_client.get("/admin/axes/accessfailurelog/").content.decode()
    assert failures_page.count("203.0.113.7") >= 5


def test_an_administrator_unlocks_the_pair_in_admin(client, staff, admin_client):
    staff("alice")
    fail(client, "alice", 5)
    attempt = AccessAttempt.objects.get(username="alice")
    answer = admin_client.post(
        "/admin/axes/accessattempt/", {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"}
    )
    assert answer.status_code == 302
    assert signed_in(log_in(client, "alice", PASSWORD))


def test_the_axes_reset_username_command_unlocks_the_username(client, staff):
    staff("alice")
    fail(client, "alice", 5)
    call_command("axes_reset_username", "alice")
    assert signed_in(log_in(client, "alice", PASSWORD))


def test_a_sign_in_resets_the_failure_count(client, staff):
    staff("alice")
    fail(client, "alice", 4)
    assert signed_in(log_in(client, "alice", PASSWORD))
    client.post("/admin/logout/")
    fail(client, "alice", 4)
    assert signed_in(log_in(client, "alice", PASSWORD))


def test_a_password_an_administrator_sets_must_pass_the_validators(admin_client):
    answer = admin_client.post(
        "/admin/biztel/account/add/",
        {"username": "carol", "password1": "12345678", "password2": "12345678", "usable_password": "true",
         "role": "operator", "visible_groups": ""},
    )
    page = answer.content.decode()
    assert answer.status_code == 200
    assert "This password is too short. It must contain at least 12 characters." in page
    assert "This password is too common." in page
    assert not Account.objects.filter(username="carol").exists()


@pytest.fixture
def embedded_server(tmp_path):
    """The embedded default as `make run` starts it (SQLite, no Redis), served by gunicorn with two
    workers, so the lockout is counted in the database every worker shares."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    port = free_port()
    env.update(BIZTEL_VAR_DIR=str(tmp_path / "var"), GUNICORN_BIND=f"127.0.0.1:{port}", GUNICORN_WORKERS="2",
               GUNICORN_ACCESS_LOG="", DJANGO_SUPERUSER_PASSWORD=PASSWORD)
    for args in (("migrate", "-v", "0"), ("createsuperuser", "--noinput", "--username", "alice", "--email", "a@example.com"),
                 ("createsuperuser", "--noinput", "--username", "bob", "--email", "b@example.com")):
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)
    command = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"]
    with serving(command, port, timeout=60, stop_timeout=20, cwd=ROOT, env=env) as url:
        yield url


def live_log_in(base_url, username, password):
    session = requests.Session()
    session.get(f"{base_url}/admin/login/", timeout=30)
    return session.post(
        f"{base_url}/admin/login/?next=/admin/",
        {"username": username, "password": password, "next": "/admin/",
         "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        allow_redirects=False, timeout=30,
    )


def test_on_the_embedded_default_live_gunicorn_locks_the_pair_after_five_failures(embedded_server):
    statuses = [live_log_in(embedded_server, "alice", "wrong password").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    sixth = live_log_in(embedded_server, "alice", PASSWORD)
    assert (sixth.status_code, sixth.text) == (429, LOCKED)
    bob = live_log_in(embedded_server, "bob", PASSWORD)
    assert (bob.status_code, bob.headers["Location"]) == (302, "/admin/")


def test_a_login_without_a_request_is_not_an_http_sign_in_and_is_not_counted(client, staff):
    staff("alice")
    assert client.login(username="alice", password=PASSWORD)
    assert not AccessAttempt.objects.exists()
