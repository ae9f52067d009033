"""Delivery through a real Celery worker on Redis to a real HTTP receiver."""

import base64
import json
import threading
import time
from datetime import timedelta

from django.utils import timezone
from standardwebhooks.webhooks import Webhook
from werkzeug import Response

from callactions import services
from callactions.models import Attempt, CallAction, Event, ExternalNumber, Step
from tests.callactions_support import celery_worker, receiver, wait_until, worker  # noqa: F401 (fixtures)
from tests.factories import stored_recording

TARGET = "0312345678"


def make_action(receiver, path="/hook", name=None, targets=(TARGET,), **fields):
    fields.setdefault("url", f"http://127.0.0.1:{receiver.port}{path}?ID={{ID}}")
    action = CallAction(name=name or path.strip("/") or "hook", **fields)
    action.full_clean()
    action.save()
    action.targets.set([ExternalNumber.objects.get_or_create(number=n)[0] for n in targets])
    return action


def finished_event(recording, timeout=20):
    return wait_until(
        lambda: Event.objects.filter(recording=recording, status=Event.Status.DONE).first(),
        timeout=timeout,
        message="the event to be done",
    )


def requests_to(receiver, path):
    return [request for request, _ in receiver.log if request.path == path]


def test_the_spec_example_url_arrives_byte_for_byte(worker, receiver):
    receiver.expect_request("/monitor_file_event").respond_with_data("ok")
    make_action(receiver, url=f"http://127.0.0.1:{receiver.port}/monitor_file_event?ID={{ID}}&TEL={{TEL}}&DATE={{DATE}}")
    recording = stored_recording(tel="090-1234-5678")
    event = finished_event(recording)
    date = timezone.localtime(event.created_at).strftime("%Y-%m-%d %H:%M:%S")
    (request,) = requests_to(receiver, "/monitor_file_event")
    expected = f"/monitor_file_event?ID={recording.request_id}&TEL=09012345678&DATE={date[:10]}%20{date[11:13]}%3A{date[14:16]}%3A{date[17:]}"
    assert request.environ["REQUEST_URI"] == expected


def test_a_get_carries_the_templated_headers_and_the_event_id(worker, receiver):
    receiver.expect_request("/hook").respond_with_data("ok")
    make_action(receiver, headers="X-Api-Key: secret-key\nX-Operator: {EXT}")
    recording = stored_recording(extension="2002")
    finished_event(recording)
    (request,) = requests_to(receiver, "/hook")
    step = Step.objects.get(event__recording=recording)
    assert request.method == "GET"
    assert request.headers["X-Api-Key"] == "secret-key"
    assert request.headers["X-Operator"] == "2002"
    assert request.headers["webhook-id"] == str(step.id)


def test_a_signed_json_post_verifies_with_a_standard_webhooks_library(worker, receiver):
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    receiver.expect_request("/hook", method="POST").respond_with_data("ok")
    make_action(receiver, method="POST", body='{"id": "{ID}", "file": "{FILE_LEFT}", "seconds": {DURATION}}',
                signing_secret=secret)
    recording = stored_recording(seconds=2.0)
    finished_event(recording)
    (request,) = requests_to(receiver, "/hook")
    payload = Webhook(secret).verify(request.get_data(as_text=True), dict(request.headers))
    left = recording.files.get(content_type="left").name
    assert payload == {"id": recording.request_id, "file": left, "seconds": json.loads(f"{recording.duration:g}")}
    assert request.headers["Content-Type"] == "application/json"


def test_the_condition_decides_whether_an_action_runs(worker, receiver):
    receiver.expect_request("/mobile").respond_with_data("ok")
    receiver.expect_request("/landline").respond_with_data("ok")
    make_action(receiver, "/mobile", condition_code="{TEL}", condition_pattern="/^0[789]0/")
    make_action(receiver, "/landline", order=2, condition_code="{TEL}", condition_pattern="^0[1-6]")
    recording = stored_recording(tel="09012345678")
    finished_event(recording)
    assert len(requests_to(receiver, "/mobile")) == 1
    assert requests_to(receiver, "/landline") == []
    assert Step.objects.get(action_name="landline").status == Step.Status.SKIPPED


def test_extracted_variables_feed_the_later_actions(worker, receiver):
    receiver.expect_request("/login", method="POST").respond_with_data('{"token": "tk-42", "job": 7}')
    receiver.expect_request("/use").respond_with_data("ok")
    make_action(receiver, "/login", method="POST", body="ext={EXT}",
                extraction_pattern='/"token":\\s*"(?P<TOKEN>[^"]+)".*"job":\\s*(?P<JOB>\\d+)/s')
    make_action(receiver, "/use", order=2, url=f"http://127.0.0.1:{receiver.port}/use?t={{TOKEN}}&j={{JOB}}")
    finished_event(stored_recording())
    (use,) = requests_to(receiver, "/use")
    assert use.args.to_dict() == {"t": "tk-42", "j": "7"}


def test_an_error_pattern_on_a_200_is_retried_at_the_interval_with_the_same_event_id(worker, receiver):
    times = []

    def answer(request):
        times.append(time.monotonic())
        return Response("result=ERROR busy")

    receiver.expect_request("/hook").respond_with_handler(answer)
    make_action(receiver, error_pattern="/result=error/i", retry_count=2, retry_interval=1)
    recording = stored_recording()
    finished_event(recording)
    requests = requests_to(receiver, "/hook")
    assert len(requests) == 3
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert all(later - earlier >= 0.95 for earlier, later in zip(times, times[1:]))
    step = Step.objects.get(event__recording=recording)
    assert step.status == Step.Status.FAILED and "error pattern" in step.error
    attempts = list(Attempt.objects.filter(step=step).order_by("number"))
    assert [a.number for a in attempts] == [1, 2, 3]
    assert all(a.status_code == 200 and not a.succeeded and a.finished_at and a.elapsed_ms is not None for a in attempts)
    assert attempts[0].response_excerpt == "result=ERROR busy"


def test_a_timeout_is_a_failed_attempt(worker, receiver):
    receiver.expect_request("/slow").respond_with_handler(lambda request: time.sleep(2.5) or Response("late"))
    make_action(receiver, "/slow", timeout=1)
    recording = stored_recording()
    finished_event(recording)
    attempt = Attempt.objects.get(step__event__recording=recording)
    assert attempt.succeeded is False and attempt.error == "timed out after 1 s" and attempt.status_code is None


def test_after_retries_are_exhausted_the_next_action_still_runs(worker, receiver):
    receiver.expect_request("/broken").respond_with_data("no", status=500)
    receiver.expect_request("/next").respond_with_data("ok")
    make_action(receiver, "/broken", retry_count=1, retry_interval=1)
    make_action(receiver, "/next", order=2)
    recording = stored_recording()
    finished_event(recording)
    assert len(requests_to(receiver, "/broken")) == 2
    assert len(requests_to(receiver, "/next")) == 1
    broken, following = Step.objects.filter(event__recording=recording).order_by("position")
    assert broken.status == Step.Status.FAILED and "HTTP 500" in broken.error
    assert following.status == Step.Status.SUCCEEDED


def test_an_action_needing_what_a_failed_step_would_have_extracted_fails_clearly(worker, receiver):
    receiver.expect_request("/login").respond_with_data("down", status=503)
    receiver.expect_request("/use").respond_with_data("ok")
    make_action(receiver, "/login", extraction_pattern="token=(?P<TOKEN>\\w+)")
    make_action(receiver, "/use", order=2, url=f"http://127.0.0.1:{receiver.port}/use?t={{TOKEN}}")
    recording = stored_recording()
    finished_event(recording)
    assert requests_to(receiver, "/use") == []
    step = Step.objects.get(event__recording=recording, action_name="use")
    assert step.error == "the variable {TOKEN} has no value: the earlier action 'login' that extracts it was failed"


def test_a_step_that_succeeded_is_not_sent_again_when_a_later_one_is_retried(worker, receiver):
    receiver.expect_request("/first").respond_with_data("ok")
    receiver.expect_oneshot_request("/second").respond_with_data("busy", status=503)
    receiver.expect_request("/second").respond_with_data("ok")
    make_action(receiver, "/first")
    make_action(receiver, "/second", order=2, retry_count=3, retry_interval=1)
    finished_event(stored_recording())
    assert len(requests_to(receiver, "/first")) == 1
    assert len(requests_to(receiver, "/second")) == 2


def test_a_call_on_a_number_that_is_not_a_target_sends_nothing(worker, receiver):
    receiver.expect_request("/hook").respond_with_data("ok")
    make_action(receiver, targets=("0399999999",))
    recording = stored_recording(external_number="0312345678")
    finished_event(recording)
    assert receiver.log == []
    assert not Step.objects.filter(event__recording=recording).exists()
    assert ExternalNumber.objects.filter(number="0312345678").exists(), "the new number is offered for ticking"


def test_a_redirect_is_a_failure_and_its_target_is_never_requested(worker, receiver):
    receiver.expect_request("/hook").respond_with_data("", status=302, headers={"Location": "/trap"})
    receiver.expect_request("/trap").respond_with_data("ok")
    make_action(receiver)
    recording = stored_recording()
    finished_event(recording)
    assert requests_to(receiver, "/trap") == []
    assert "redirect (302 to /trap) not followed" in Attempt.objects.get(step__event__recording=recording).error


def test_admin_resend_sends_the_chain_again_with_new_event_ids(worker, receiver, admin_client):
    receiver.expect_request("/hook").respond_with_data("ok")
    make_action(receiver)
    recording = stored_recording()
    event = finished_event(recording)
    admin_client.post("/admin/callactions/event/", {"action": "resend", "_selected_action": [str(event.pk)]})
    wait_until(lambda: len(requests_to(receiver, "/hook")) == 2, message="the resend")
    first, second = requests_to(receiver, "/hook")
    assert first.headers["webhook-id"] != second.headers["webhook-id"]
    finished_event(recording)
    assert Event.objects.get(pk=event.pk).run == 2


def test_no_event_is_written_while_the_call_action_licence_is_off(worker, receiver, set_system):
    set_system(call_action=False)
    receiver.expect_request("/hook").respond_with_data("ok")
    make_action(receiver)
    recording = stored_recording()
    assert not Event.objects.filter(recording=recording).exists()
    assert services.event_sweep() == 0
    time.sleep(0.5)
    assert receiver.log == []


def test_admin_send_a_test_sends_sample_values_and_logs_the_attempt(worker, receiver, admin_client):
    receiver.expect_request("/hook").respond_with_data("ok")
    action = make_action(receiver)
    response = admin_client.post(
        "/admin/callactions/callaction/", {"action": "send_test", "_selected_action": [str(action.pk)]}, follow=True
    )
    assert "HTTP 200" in response.content.decode()
    (request,) = requests_to(receiver, "/hook")
    assert request.args["ID"] == "21061600000268000060"
    attempt = Attempt.objects.get(action=action)
    assert attempt.is_test and attempt.succeeded and attempt.event_id == request.headers["webhook-id"]


def test_a_claimed_event_is_not_run_by_a_second_worker(worker, receiver):
    gate = threading.Event()
    receiver.expect_request("/hook").respond_with_handler(lambda request: gate.wait(5) and Response("ok"))
    recording = stored_recording()
    finished_event(recording)  # its own event went through the worker before there was any action
    make_action(receiver)
    # an event of our own, never queued, so that no worker but these threads sees it
    event = Event.objects.create(recording=recording, queued_at=timezone.now())
    results = []

    def deliver():
        from django.db import connection

        try:
            results.append(services.event_deliver(event_id=event.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(receiver.log) >= 1 or Attempt.objects.exists(), message="the first send")
    time.sleep(0.3)
    gate.set()
    for thread in threads:
        thread.join(10)
    assert len(requests_to(receiver, "/hook")) == 1
    assert Attempt.objects.count() == 1
    assert Event.objects.get(pk=event.pk).status == Event.Status.DONE


def test_the_sweep_requeues_an_event_that_never_reached_the_queue(worker, receiver):
    receiver.expect_request("/hook").respond_with_data("ok")
    make_action(receiver)
    recording = stored_recording()
    event = finished_event(recording)
    Step.objects.filter(event=event).delete()
    # as if the broker had been down when the recording committed
    Event.objects.filter(pk=event.pk).update(status=Event.Status.PENDING, queued_at=None, finished_at=None)
    assert services.event_sweep() == 1
    wait_until(lambda: len(requests_to(receiver, "/hook")) == 2, message="the swept event")
    # a freshly queued event is left alone
    Event.objects.filter(pk=event.pk).update(status=Event.Status.PENDING, next_attempt_at=timezone.now() - timedelta(seconds=1), queued_at=timezone.now())
    assert services.event_sweep() == 0


def unqueued_events(receiver, count):
    """Events of their own, never queued, so that no worker but the test's call sees them."""
    recordings = [stored_recording() for _ in range(count)]
    for recording in recordings:
        finished_event(recording)  # its own event went through the worker before there was any action
    make_action(receiver)
    return [Event.objects.create(recording=recording, queued_at=timezone.now()) for recording in recordings]


def test_one_delivery_takes_the_other_due_events_along_and_sends_each_once(worker, receiver):
    receiver.expect_request("/hook").respond_with_data("ok")
    events = unqueued_events(receiver, 3)
    assert services.event_deliver(event_id=events[-1].pk) == {}
    assert sorted(request.args["ID"] for request in requests_to(receiver, "/hook")) == sorted(
        event.recording.request_id for event in events
    )
    assert set(Event.objects.filter(pk__in=[e.pk for e in events]).values_list("status", "claim")) == {
        (Event.Status.DONE, None)
    }
    assert services.event_deliver(event_id=events[0].pk) == {}
    assert len(requests_to(receiver, "/hook")) == 3


def test_a_batch_out_of_time_hands_the_rest_back_to_the_queue_untouched(worker, receiver, monkeypatch):
    receiver.expect_request("/hook").respond_with_data("ok")
    events = unqueued_events(receiver, 3)
    monkeypatch.setattr(services, "BATCH_SECONDS", 0)
    handed_back = services.event_deliver(event_id=events[0].pk)
    (request,) = requests_to(receiver, "/hook")
    (first,) = [event for event in events if event.recording.request_id == request.args["ID"]]
    assert handed_back == {event.pk: None for event in events if event != first}
    rest = Event.objects.filter(pk__in=handed_back)
    assert set(rest.values_list("status", "claim", "claimed_until")) == {(Event.Status.PENDING, None, None)}
    assert not Step.objects.filter(event__in=rest).exclude(attempts=0).exists()
