"""One recording's metadata, delete, legal hold and the audit trail (SPEC.md §8), through
HTTP, the commands and admin."""

import csv
import io
import json
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.utils import timezone

from biztel.limits import month_bounds
from biztel.models import ApiToken, MonthlyUsage
from recordings.models import AccessLogEntry
from callactions.models import Event
from recordings import storage
from recordings.models import AuditEntry, DayArchive, Recording
from tests.factories import call_fields, stored_recording
from tests.media import mp3_bytes, tone, write_wav
from tests.test_download_errors import NOT_CONTRACTED, NOT_FOUND, UNAUTHORIZED

pytestmark = pytest.mark.django_db

RECORDING = "/public/api/v1/recordings/{}"
HOLD = "/public/api/v1/recordings/{}/hold"
DOWNLOAD = "/public/api/v1/monitor/{}"
LIST = "/public/api/v1/monitor/"
HELD = {
    "name": "ConflictException",
    "type": "CONFLICT",
    "exception_id": None,
    "message": "The recording is under legal hold.",
    "messages": None,
    "reason": "The recording is under legal hold.",
}


def auth(token):
    return {"HTTP_AUTHORIZATION": f"Token {token}"}


def fetch(client, token, identifier):
    return client.get(RECORDING.format(identifier), **auth(token))


def delete(client, token, identifier):
    return client.delete(RECORDING.format(identifier), **auth(token))


def stored_paths(recording):
    return [f.path for f in recording.files.all()]


def local(moment):
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


# --- GET ---------------------------------------------------------------------------------


def test_a_recording_is_the_listing_item_plus_status_deleted_at_legal_hold_and_end_cause(client, token):
    recording = stored_recording(end_cause="hangup")
    body = fetch(client, token, recording.request_id).json()
    (item,) = client.get(LIST, {"date": "2019-07-18"}, **auth(token)).json()["results"]
    assert body == item
    assert (body["status"], body["deleted_at"], body["legal_hold"], body["end_cause"]) == (
        "completed", None, False, "hangup",
    )
    assert body["request_id"] == recording.request_id
    assert set(body["files"]) >= {"monaural", "left", "right"}


def test_a_recording_is_found_by_its_unique_id_too(client, token):
    recording = stored_recording()
    response = fetch(client, token, recording.unique_id)
    assert response.status_code == 200
    assert response.json()["request_id"] == recording.request_id


def test_fetching_a_recording_counts_one_request_and_one_object(client, token):
    recording = stored_recording()
    fetch(client, token, recording.request_id)
    row = MonthlyUsage.objects.get(month=month_bounds()[0])
    assert (row.requests, row.response_objects) == (1, 1)


def test_an_unknown_or_malformed_id_is_the_404_row(client, token):
    for identifier in ("21061600000268009999", "no such/../id"):
        response = fetch(client, token, identifier)
        assert response.status_code == 404
        assert response.json() == NOT_FOUND


def test_an_account_of_another_group_gets_the_403_row(client, make_token):
    recording = stored_recording(group="sales")
    response = fetch(client, make_token(role="supervisor", groups="support"), recording.request_id)
    assert response.status_code == 403
    assert response.json() == UNAUTHORIZED


def test_supervisors_and_below_may_not_fetch_when_downloads_are_prohibited(client, make_token, set_system):
    recording = stored_recording()
    set_system(prohibit_download_below_supervisor=True)
    response = fetch(client, make_token(role="operator"), recording.request_id)
    assert response.status_code == 403
    assert response.json() == UNAUTHORIZED


def test_without_the_file_api_licence_fetching_is_the_licence_403(client, token, set_system):
    recording = stored_recording()
    set_system(recording_file_api=False)
    response = fetch(client, token, recording.request_id)
    assert response.status_code == 403
    assert response.json() == NOT_CONTRACTED


def test_fetching_without_a_token_is_the_401_row(client):
    response = client.get(RECORDING.format("21061600000268000001"))
    assert response.status_code == 401
    assert response.json()["type"] == "UNAUTHENTICATED"


# --- DELETE ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["operator", "supervisor"])
def test_only_administrators_may_delete_others_get_the_403_row(client, make_token, role):
    recording = stored_recording()
    response = delete(client, make_token(role=role), recording.request_id)
    assert response.status_code == 403
    assert response.json() == UNAUTHORIZED
    assert all(storage.exists(path) for path in stored_paths(recording))
    assert Recording.objects.get(pk=recording.pk).deleted_at is None


def test_a_delete_removes_every_file_from_storage_and_keeps_the_metadata_as_deleted(client, token):
    recording = stored_recording(end_cause="silence")
    paths = stored_paths(recording)
    assert len(paths) == 3 and all(storage.exists(path) for path in paths)
    response = delete(client, token, recording.request_id)
    assert response.status_code == 204
    assert response.content == b""
    assert not any(storage.exists(path) for path in paths)
    body = fetch(client, token, recording.request_id).json()
    assert body["status"] == "deleted"
    assert body["deleted_at"] is not None
    assert body["end_cause"] == "silence"
    assert all(not file["exists"] for file in body["files"].values() if file)


def test_a_delete_removes_the_stereo_file_and_every_lossless_copy_too(client, token, set_system, tmp_path, settings):
    set_system(stereo_file=True, keep_lossless=True, burst_limit_per_second=100)
    path = write_wav(tmp_path / "call.wav", [tone(440, 1), tone(1000, 1)])
    options = [f"--{k.replace('_', '-')}={v}" for k, v in call_fields().items() if v]
    call_command("ingest_recording", *options, f"--stereo={path}", stdout=io.StringIO())
    recording = Recording.objects.get()
    stored = [relative for f in recording.files.all() for relative in f.stored_paths]
    assert len(stored) == 8 and all(storage.exists(relative) for relative in stored)  # 4 MP3s, 4 FLACs
    assert delete(client, token, recording.request_id).status_code == 204
    assert not any(storage.exists(relative) for relative in stored)
    for content_type in ("monaural", "left", "right", "stereo"):
        for audio_format in ("mp3", "flac", "wav"):
            answer = client.get(DOWNLOAD.format(recording.request_id), {"content_type": content_type, "format": audio_format}, **auth(token))
            assert answer.status_code == 404, (content_type, audio_format)
            assert answer.json() == NOT_FOUND


def test_every_download_of_a_deleted_recording_is_the_404_row(client, token):
    recording = stored_recording()
    delete(client, token, recording.request_id)
    for content_type in ("monaural", "left", "right"):
        for identifier in (recording.request_id, recording.unique_id):
            response = client.get(DOWNLOAD.format(identifier), {"content_type": content_type}, **auth(token))
            assert response.status_code == 404
            assert response.json() == NOT_FOUND


def test_deleting_a_deleted_recording_answers_204_again(client, token):
    recording = stored_recording()
    assert delete(client, token, recording.request_id).status_code == 204
    assert delete(client, token, recording.unique_id).status_code == 204
    assert AuditEntry.objects.filter(action="delete").count() == 1


def test_deleting_an_unknown_recording_is_the_404_row(client, token):
    response = delete(client, token, "21061600000268009999")
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_a_delete_takes_the_call_out_of_its_days_archive(client, token, set_system):
    set_system(bulk_download=True)
    kept = stored_recording(started_at="2019-07-18 09:00:00")
    gone = stored_recording(started_at="2019-07-18 10:00:00")

    def manifest_ids():
        response = client.get(f"{DOWNLOAD.format('archive/2019-07-18')}", **auth(token))
        assert response.status_code == 200
        with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
            rows = list(csv.DictReader(io.TextIOWrapper(archive.open("manifest.csv"), encoding="utf-8")))
            names = set(archive.namelist())
        return {row["request_id"] for row in rows}, names

    ids, _ = manifest_ids()
    assert ids == {kept.request_id, gone.request_id}
    archive = DayArchive.objects.get()
    assert delete(client, token, gone.request_id).status_code == 204
    # the archive that held it is gone from storage at once, not only at the next request
    assert not storage.exists(archive.path)
    ids, names = manifest_ids()
    assert ids == {kept.request_id}
    assert not {f.name for f in gone.files.all()} & names


def test_the_access_log_keeps_who_fetched_a_call_by_request_id(client, make_token):
    recording = stored_recording()
    operator = make_token(role="operator", username="reader")
    assert client.get(DOWNLOAD.format(recording.request_id), **auth(operator)).status_code == 200
    entry = AccessLogEntry.objects.get(account__username="reader")
    assert entry.recording_request_id == recording.request_id


# --- legal hold --------------------------------------------------------------------------


def test_a_held_recording_answers_the_exact_409_and_keeps_its_files(client, token):
    recording = stored_recording()
    assert client.put(HOLD.format(recording.request_id), **auth(token)).status_code == 204
    assert fetch(client, token, recording.request_id).json()["legal_hold"] is True
    response = delete(client, token, recording.request_id)
    assert response.status_code == 409
    assert response.json() == HELD
    assert all(storage.exists(path) for path in stored_paths(recording))


def test_a_held_call_survives_a_purge_far_in_the_future(client, token, set_system):
    set_system(monaural_retention_days=1)
    recording = stored_recording()
    held, loose = recording, stored_recording()
    client.put(HOLD.format(held.request_id), **auth(token))
    call_command("purge_recordings", "--now", "2099-01-01 00:00:00", stdout=io.StringIO())
    assert all(storage.exists(path) for path in stored_paths(held))
    assert not any(storage.exists(path) for path in stored_paths(loose))
    for content_type in ("monaural", "left", "right"):
        response = client.get(DOWNLOAD.format(held.request_id), {"content_type": content_type}, **auth(token))
        assert response.status_code == 200


def test_lifting_the_hold_lets_the_recording_go(client, token):
    recording = stored_recording()
    client.put(HOLD.format(recording.request_id), **auth(token))
    assert client.delete(HOLD.format(recording.request_id), **auth(token)).status_code == 204
    assert fetch(client, token, recording.request_id).json()["legal_hold"] is False
    assert delete(client, token, recording.request_id).status_code == 204
    assert not any(storage.exists(path) for path in stored_paths(recording))
    call_command("purge_recordings", "--now", "2099-01-01 00:00:00", stdout=io.StringIO())
    assert not Recording.objects.filter(pk=recording.pk).exists()


@pytest.mark.parametrize("method", ["put", "delete"])
def test_only_administrators_may_hold_or_lift(client, make_token, method):
    recording = stored_recording()
    response = getattr(client, method)(HOLD.format(recording.request_id), **auth(make_token(role="supervisor")))
    assert response.status_code == 403
    assert response.json() == UNAUTHORIZED


def test_every_delete_hold_and_lift_is_in_the_audit_trail_with_account_and_token(client, make_token):
    recording = stored_recording()
    token = make_token(username="dpo")
    client.put(HOLD.format(recording.request_id), **auth(token))
    client.put(HOLD.format(recording.request_id), **auth(token))  # already held: nothing changes
    client.delete(HOLD.format(recording.request_id), **auth(token))
    delete(client, token, recording.request_id)
    entries = list(AuditEntry.objects.order_by("at"))
    assert [e.action for e in entries] == ["hold", "lift", "delete"]
    api_token = ApiToken.objects.get(account__username="dpo")
    assert all((e.username, e.token, e.via, e.request_id) == ("dpo", api_token, "api", recording.request_id)
               for e in entries)
    assert all(name in entries[-1].detail for name in (f.name for f in recording.files.all()))


# --- the purge of deleted metadata -------------------------------------------------------


def test_the_purge_removes_deleted_metadata_after_deleted_metadata_days(client, token):
    recording = stored_recording()
    client.get(DOWNLOAD.format(recording.request_id), **auth(token))
    delete(client, token, recording.request_id)
    deleted_at = Recording.objects.get(pk=recording.pk).deleted_at
    out = io.StringIO()
    call_command("purge_recordings", "--now", local(deleted_at + timedelta(days=39)), stdout=out)
    assert Recording.objects.filter(pk=recording.pk).exists()
    call_command("purge_recordings", "--now", local(deleted_at + timedelta(days=40, seconds=1)), stdout=out)
    assert not Recording.objects.filter(pk=recording.pk).exists()
    assert f"deleted recording {recording.request_id} (metadata)" in out.getvalue()
    assert fetch(client, token, recording.request_id).status_code == 404
    # who fetched it and who deleted it are still known by request ID
    assert AccessLogEntry.objects.filter(recording_request_id=recording.request_id, status=200).count() == 1
    assert AuditEntry.objects.get(request_id=recording.request_id).action == "delete"


def test_deleted_metadata_days_is_a_setting_with_validation(client, token):
    out = io.StringIO()
    call_command("biztel_settings", stdout=out)
    assert "deleted_metadata_days=40" in out.getvalue().splitlines()
    call_command("biztel_settings", "--set", "deleted_metadata_days=2", stdout=io.StringIO())
    with pytest.raises(CommandError, match="deleted_metadata_days"):
        call_command("biztel_settings", "--set", "deleted_metadata_days=0", stdout=io.StringIO())
    recording = stored_recording()
    delete(client, token, recording.request_id)
    deleted_at = Recording.objects.get(pk=recording.pk).deleted_at
    call_command("purge_recordings", "--now", local(deleted_at + timedelta(days=2, seconds=1)), stdout=io.StringIO())
    assert not Recording.objects.filter(pk=recording.pk).exists()


def test_deleted_metadata_under_hold_is_kept(client, token):
    recording = stored_recording()
    delete(client, token, recording.request_id)
    client.put(HOLD.format(recording.request_id), **auth(token))
    call_command("purge_recordings", "--now", "2099-01-01 00:00:00", stdout=io.StringIO())
    assert fetch(client, token, recording.request_id).json()["status"] == "deleted"


# --- admin -------------------------------------------------------------------------------


def admin_action(admin_client, action, *recordings):
    return admin_client.post(
        "/admin/recordings/recording/",
        {"action": action, "_selected_action": [r.pk for r in recordings]},
        follow=True,
    )


def test_admin_places_and_lifts_the_hold_and_deletes_the_audio(admin_client):
    recording = stored_recording()
    paths = stored_paths(recording)
    admin_action(admin_client, "place_hold", recording)
    assert Recording.objects.get(pk=recording.pk).legal_hold
    page = admin_action(admin_client, "delete_audio", recording)
    assert "Under legal hold, not deleted" in page.content.decode()
    assert all(storage.exists(path) for path in paths)
    admin_action(admin_client, "lift_hold", recording)
    admin_action(admin_client, "delete_audio", recording)
    assert Recording.objects.get(pk=recording.pk).deleted_at is not None
    assert not any(storage.exists(path) for path in paths)
    entries = list(AuditEntry.objects.order_by("at").values_list("action", "username", "via"))
    assert entries == [("hold", "admin", "admin"), ("lift", "admin", "admin"), ("delete", "admin", "admin")]


def test_the_audit_trail_is_shown_read_only_and_filters_by_action_and_recording(admin_client):
    first, second = stored_recording(), stored_recording()
    admin_action(admin_client, "place_hold", first, second)
    admin_action(admin_client, "lift_hold", first)
    page = admin_client.get("/admin/recordings/auditentry/", {"action": "lift"})
    assert page.status_code == 200
    assert list(page.context["cl"].queryset.values_list("request_id", flat=True)) == [first.request_id]
    page = admin_client.get("/admin/recordings/auditentry/", {"q": second.request_id})
    assert list(page.context["cl"].queryset.values_list("action", flat=True)) == ["hold"]
    entry = AuditEntry.objects.first()
    assert admin_client.get(f"/admin/recordings/auditentry/{entry.pk}/change/").status_code == 200
    assert admin_client.get("/admin/recordings/auditentry/add/").status_code == 403


# --- end cause at ingest -----------------------------------------------------------------


def test_a_bad_end_cause_is_a_400_naming_the_field(client, make_token):
    data = {**call_fields(end_cause="hung_up"), "mixed": SimpleUploadedFile("m.mp3", mp3_bytes(tone(440, 1)))}
    response = client.post("/internal/api/v1/recordings", data, **auth(make_token(role="pbx")))
    message = "The end_cause must be one of hangup, silence, max_length, max_size, dtmf, timeout, aborted, error."
    assert response.status_code == 400
    assert response.json() == {
        "name": "ValidateException",
        "type": "VALIDATE_ERROR",
        "exception_id": None,
        "message": "The given data was invalid.",
        "messages": {"end_cause": [message]},
        "reason": "The given data was invalid.",
    }
    assert not Recording.objects.exists()


def test_the_command_takes_end_cause_and_refuses_a_bad_one(tmp_path):
    path = write_wav(tmp_path / "call.wav", [tone(440, 1), tone(1000, 1)])

    def run(fields):
        out = io.StringIO()
        options = [f"--{k.replace('_', '-')}={v}" for k, v in fields.items() if v]
        call_command("ingest_recording", *options, f"--stereo={path}", stdout=out)
        return json.loads(out.getvalue())

    assert run(call_fields(end_cause="dtmf"))["end_cause"] == "dtmf"
    assert run(call_fields())["end_cause"] == ""
    with pytest.raises(CommandError, match='"end_cause"'):
        run(call_fields(end_cause="HANGUP"))


def test_the_schema_describes_fetch_delete_and_hold(client):
    document = client.get("/public/api/schema/?format=json").json()
    assert set(document["paths"]["/public/api/v1/recordings/{recording_id}"]) >= {"get", "delete"}
    assert set(document["paths"]["/public/api/v1/recordings/{recording_id}/hold"]) >= {"put", "delete"}
    deleting = document["paths"]["/public/api/v1/recordings/{recording_id}"]["delete"]
    assert {"204", "403", "404", "409"} <= set(deleting["responses"])
    listing = {p["name"] for p in document["paths"]["/public/api/v1/monitor/"]["get"]["parameters"]}
    assert {"from", "to", "tel", "external_number", "extension", "group", "include_deleted"} <= listing


def test_simultaneous_deletes_on_two_server_processes_delete_once(gunicorn_server, token, set_system):
    set_system(burst_limit_per_second=10_000)
    recording = stored_recording()

    def send(_):
        return requests.delete(
            f"{gunicorn_server}{RECORDING.format(recording.request_id)}", headers={"Authorization": f"Token {token}"},
            timeout=30,
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(send, range(16)))
    assert statuses == [204] * 16
    assert Event.objects.filter(recording=recording, event_type="recording_deleted").count() == 1
    assert AuditEntry.objects.filter(action="delete").count() == 1
    assert not any(storage.exists(path) for path in stored_paths(recording))
