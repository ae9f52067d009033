"""The events of SPEC.md §8 through a real Celery worker to a real receiver:
recording_absent for a silent call, the new variables, exactly one recording_deleted."""

import numpy as np
from django.core.files.uploadedfile import SimpleUploadedFile

from callactions.models import Event
from tests.callactions_support import celery_worker, receiver, wait_until, worker  # noqa: F401 (fixtures)
from tests.factories import call_fields
from tests.media import tone, wav_bytes
from tests.test_callactions_delivery import TARGET, make_action, requests_to

INGEST = "/internal/api/v1/recordings"
RECORDING = "/public/api/v1/recordings/{}"


def ingest(client, make_token, stereo, **fields):
    pbx = make_token(role="pbx")
    data = {**call_fields(external_number=TARGET, **fields), "stereo": SimpleUploadedFile("call.wav", stereo)}
    response = client.post(INGEST, data, HTTP_AUTHORIZATION=f"Token {pbx}")
    assert response.status_code == 201, response.content
    return response.json()


def silent_call(seconds=1.0):
    silence = np.zeros(int(8000 * seconds), dtype=np.int16)
    return wav_bytes([silence, silence])


def customer_only_call(seconds=1.0):
    return wav_bytes([tone(440, seconds), np.zeros(int(8000 * seconds), dtype=np.int16)])


def all_done(request_id, count):
    return wait_until(
        lambda: Event.objects.filter(recording__request_id=request_id, status=Event.Status.DONE).count() == count,
        message=f"{count} events done",
    )


def test_a_silent_call_is_absent_and_fires_recording_absent_after_recording_completed(
    client, make_token, worker, receiver
):
    receiver.expect_request("/completed").respond_with_data("ok")
    receiver.expect_request("/absent").respond_with_data("ok")
    make_action(receiver, "/completed", url=f"http://127.0.0.1:{receiver.port}/completed?ID={{ID}}&S={{STATUS}}")
    make_action(
        receiver, "/absent", event_type="recording_absent",
        url=f"http://127.0.0.1:{receiver.port}/absent?ID={{ID}}&S={{STATUS}}&M={{AUDIO_MONAURAL}}",
    )
    body = ingest(client, make_token, silent_call())
    assert body["status"] == "absent"
    all_done(body["request_id"], 2)
    events = list(Event.objects.filter(recording__request_id=body["request_id"]).order_by("created_at"))
    assert [e.event_type for e in events] == ["recording_completed", "recording_absent"]
    (absent,) = requests_to(receiver, "/absent")
    assert absent.args.to_dict() == {"ID": body["request_id"], "S": "absent", "M": "false"}
    (completed,) = requests_to(receiver, "/completed")
    assert completed.args["S"] == "absent"


def test_a_call_with_audio_fires_no_recording_absent(client, make_token, worker, receiver):
    receiver.expect_request("/completed").respond_with_data("ok")
    receiver.expect_request("/absent").respond_with_data("ok")
    make_action(receiver, "/completed")
    make_action(receiver, "/absent", event_type="recording_absent")
    body = ingest(client, make_token, customer_only_call())
    assert body["status"] == "completed"
    all_done(body["request_id"], 1)
    assert list(Event.objects.values_list("event_type", flat=True)) == ["recording_completed"]
    assert len(requests_to(receiver, "/completed")) == 1
    assert requests_to(receiver, "/absent") == []


def test_recording_completed_carries_the_end_cause_and_which_legs_have_audio(client, make_token, worker, receiver):
    receiver.expect_request("/hook").respond_with_data("ok")
    url = (
        f"http://127.0.0.1:{receiver.port}/hook?ID={{ID}}&CAUSE={{END_CAUSE}}&L={{AUDIO_LEFT}}&R={{AUDIO_RIGHT}}"
        "&M={AUDIO_MONAURAL}&ST={FILE_STEREO}&S={STATUS}"
    )
    make_action(receiver, url=url)
    body = ingest(client, make_token, customer_only_call(), end_cause="max_length")
    all_done(body["request_id"], 1)
    (request,) = requests_to(receiver, "/hook")
    assert request.args.to_dict() == {
        "ID": body["request_id"], "CAUSE": "max_length", "L": "true", "R": "false", "M": "true", "ST": "",
        "S": "completed",
    }


def test_a_call_without_an_end_cause_sends_it_empty(client, make_token, worker, receiver):
    receiver.expect_request("/hook").respond_with_data("ok")
    make_action(receiver, url=f"http://127.0.0.1:{receiver.port}/hook?CAUSE={{END_CAUSE}}")
    body = ingest(client, make_token, customer_only_call())
    all_done(body["request_id"], 1)
    (request,) = requests_to(receiver, "/hook")
    assert request.args.to_dict() == {"CAUSE": ""}


def test_a_delete_fires_exactly_one_recording_deleted_however_often_it_is_repeated(
    client, make_token, worker, receiver
):
    receiver.expect_request("/deleted").respond_with_data("ok")
    make_action(
        receiver, "/deleted", event_type="recording_deleted",
        url=f"http://127.0.0.1:{receiver.port}/deleted?ID={{ID}}&S={{STATUS}}&F={{FILE_MONAURAL}}",
    )
    body = ingest(client, make_token, customer_only_call())
    admin = make_token(role="administrator")
    for _ in range(3):
        response = client.delete(RECORDING.format(body["request_id"]), HTTP_AUTHORIZATION=f"Token {admin}")
        assert response.status_code == 204
    all_done(body["request_id"], 2)
    assert sorted(Event.objects.values_list("event_type", flat=True)) == ["recording_completed", "recording_deleted"]
    (request,) = requests_to(receiver, "/deleted")
    assert request.args.to_dict() == {
        "ID": body["request_id"], "S": "deleted", "F": body["files"]["monaural"]["name"],
    }


def test_the_variables_of_an_event_read_the_files_once(db, django_assert_num_queries):
    from django.utils import timezone

    from callactions.selectors import event_variables
    from tests.factories import stored_recording

    recording = stored_recording()
    event = Event(recording=recording, event_type="recording_completed", created_at=timezone.now())
    with django_assert_num_queries(1):
        variables = event_variables(event)
    assert variables["STATUS"] == "completed" and variables["FILE_MONAURAL"]
