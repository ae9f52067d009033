"""Faults in delivery (issue 10 items 1-3, issue 11 item 5), through a real Celery
worker on Redis and real receivers: one bad event must not hold back the others, the
timeout bounds the whole attempt, the worker outlives a dropped database connection,
and a transport error says whether retrying can help."""

import json
import socket
import threading
import time

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from werkzeug import Response

from callactions import services
from callactions.models import Attempt, CallAction, Event, ExternalNumber, Step
from tests.callactions_support import celery_worker, receiver, wait_until, worker  # noqa: F401 (fixtures)
from tests.factories import stored_recording
from tests.test_callactions_delivery import finished_event, make_action, requests_to

TARGET = "0312345678"
OTHER = "0311111111"


def test_a_header_value_a_request_cannot_carry_is_refused_when_saved(db):
    action = CallAction(name="memo", url="http://example.com/hook", headers="X-Memo: 折り返し希望")
    with pytest.raises(Exception) as refused:
        action.full_clean()
    assert "header line 1 holds characters a header cannot carry (only Latin-1)" in str(refused.value)


def test_import_refuses_a_header_value_a_request_cannot_carry_and_imports_nothing(db, tmp_path):
    path = tmp_path / "actions.json"
    path.write_text(json.dumps([
        {"name": "fine", "url": "http://example.com/a"},
        {"name": "memo", "url": "http://example.com/b", "headers": "X-Memo: 折り返し希望"},
    ]), encoding="utf-8")
    with pytest.raises(Exception) as refused:
        call_command("import_callactions", str(path))
    assert "memo: headers" in str(refused.value) and "only Latin-1" in str(refused.value)
    assert not CallAction.objects.exists()


def test_a_url_with_characters_outside_ascii_is_refused_when_saved(db):
    action = CallAction(name="jp", url="http://example.com/通知?ID={ID}")
    with pytest.raises(Exception) as refused:
        action.full_clean()
    assert "the URL may hold only ASCII characters" in str(refused.value)


def events_committed_together(numbers):
    """Recordings (and their events) committed in one transaction, as a burst of calls is,
    so that one task claims them all in one batch."""
    with transaction.atomic():
        return [stored_recording(external_number=number, separated=False) for number in numbers]


def test_an_action_that_cannot_be_sent_fails_its_own_step_and_the_other_events_arrive(worker, receiver):
    receiver.expect_request("/hook").respond_with_data("ok")
    receiver.expect_request("/memo").respond_with_data("ok")
    make_action(receiver, "/hook", targets=(TARGET,))
    memo = make_action(receiver, "/memo", targets=(OTHER,))
    # saved before save-time validation refused such headers (or written straight to the table)
    CallAction.objects.filter(pk=memo.pk).update(headers="X-Memo: 折り返し希望")
    recordings = events_committed_together([TARGET, OTHER, TARGET, TARGET])
    for recording in recordings:
        finished_event(recording)
    assert sorted(r.args["ID"] for r in requests_to(receiver, "/hook")) == sorted(
        r.request_id for r in recordings if r.external_number == TARGET
    )
    assert requests_to(receiver, "/memo") == []
    step = Step.objects.get(action_name="memo")
    assert step.status == Step.Status.FAILED
    assert step.error.startswith("cannot build the request: header line 1 holds characters a header cannot carry")


def test_an_extracted_value_a_header_cannot_carry_fails_that_step_with_a_clear_error(worker, receiver):
    receiver.expect_request("/login").respond_with_data("name=山田")
    receiver.expect_request("/use").respond_with_data("ok")
    make_action(receiver, "/login", extraction_pattern="name=(?P<NAME>.+)")
    make_action(receiver, "/use", order=2, headers="X-Name: {NAME}")
    recording = stored_recording()
    finished_event(recording)
    assert requests_to(receiver, "/use") == []
    step = Step.objects.get(event__recording=recording, action_name="use")
    assert step.status == Step.Status.FAILED
    assert step.error == (
        "cannot build the request: a header value can only hold Latin-1 characters, not '山田': put such text in the body"
    )


def test_an_event_whose_recording_cannot_be_read_fails_alone_and_says_why(worker, receiver):
    receiver.expect_request("/hook").respond_with_data("ok")
    make_action(receiver)
    worker_batch = [stored_recording(separated=False) for _ in range(3)]
    for recording in worker_batch:
        finished_event(recording)  # delivered once; now they come again, one of them unreadable
    receiver.clear_log()
    bad = worker_batch[1]
    with connection.cursor() as cursor:
        # what an ingest without date checks could store: a start the driver cannot read back
        cursor.execute("UPDATE recordings_recording SET started_at = '0001-01-01 00:00:00+09' WHERE id = %s", [bad.pk])
    with transaction.atomic():
        events = [Event.objects.create(recording_id=r.pk, queued_at=None) for r in worker_batch]
    services.event_queue(event_id=events[0].pk)
    for event in (events[0], events[2]):
        wait_until(lambda: Event.objects.get(pk=event.pk).status == Event.Status.DONE, message="the good events")
    failed = wait_until(lambda: Event.objects.filter(pk=events[1].pk, status=Event.Status.FAILED).first(),
                        message="the bad event to fail")
    assert failed.error == f"cannot be run: LookupError: its recording (id {bad.pk}) cannot be read"
    assert sorted(r.args["ID"] for r in requests_to(receiver, "/hook")) == sorted(
        [worker_batch[0].request_id, worker_batch[2].request_id]
    )
    with connection.cursor() as cursor:
        cursor.execute("UPDATE recordings_recording SET started_at = now() WHERE id = %s", [bad.pk])


def test_an_administrator_can_cancel_an_event_and_nothing_more_is_sent(worker, receiver, admin_client):
    receiver.expect_request("/hook").respond_with_data("busy", status=500)
    make_action(receiver, retry_count=50, retry_interval=1)
    recording = stored_recording()
    event = Event.objects.get(recording=recording)
    wait_until(lambda: len(requests_to(receiver, "/hook")) >= 2, message="a first retry")
    answer = admin_client.post("/admin/callactions/event/", {"action": "cancel", "_selected_action": [str(event.pk)]},
                               follow=True)
    assert "Cancelled 1 event(s)." in answer.content.decode()
    sent = len(requests_to(receiver, "/hook"))
    time.sleep(3)
    assert len(requests_to(receiver, "/hook")) <= sent + 1, "at most the attempt in flight when cancelled"
    event.refresh_from_db()
    assert event.status == Event.Status.CANCELLED and event.finished_at is not None
    page = admin_client.get("/admin/callactions/event/?status=cancelled").content.decode()
    assert "cancelled by an administrator" in page or "Cancelled" in page
    assert services.event_sweep() == 0
