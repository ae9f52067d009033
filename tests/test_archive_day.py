"""The bulk download of a day (SPEC.md §2.5): the zip, its manifest, the endpoint, the export."""

import csv
import hashlib
import io
import zipfile
from datetime import date, timedelta

import pytest
from django.core.management import call_command
from freezegun import freeze_time

from biztel.models import MonthlyUsage
from recordings import storage
from recordings.models import DayArchive, RecordingFile
from recordings.purge import purge_due
from recordings.tasks import build_yesterdays_archive
from tests.factories import stored_recording

URL = "/public/api/v1/monitor/archive/{}"
DAY = "2019-07-18"
COLUMNS = ["filename", "request_id", "unique_id", "content_type", "bytes", "sha256", "duration"]


@pytest.fixture
def clock(db):
    with freeze_time("2019-07-18 23:00:00+09:00") as frozen:
        yield frozen


@pytest.fixture
def day_of_calls(clock, set_system, storage_backend):
    """Two separated calls and a mixed-only one on DAY, one call the day after; the clock then at 00:30."""
    set_system(bulk_download=True)
    calls = [
        stored_recording(started_at=f"{DAY} 09:00:00"),
        stored_recording(separated=False, started_at=f"{DAY} 12:30:00", seconds=2.0),
        stored_recording(started_at=f"{DAY} 23:59:59"),
    ]
    stored_recording(started_at="2019-07-19 00:00:00")
    clock.move_to("2019-07-19 00:30:00+09:00")
    return calls


def fetch(client, token, day=DAY, **headers):
    return client.get(URL.format(day), HTTP_AUTHORIZATION=f"Token {token}", **headers)


def body(response):
    return b"".join(response.streaming_content)


def manifest_of(archive):
    with archive.open("manifest.csv") as f:
        return list(csv.reader(io.TextIOWrapper(f, encoding="utf-8", newline="")))


def test_the_archive_holds_every_file_of_the_day_and_each_sha256_matches_the_manifest(client, token, day_of_calls):
    response = fetch(client, token)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == f'attachment; filename="recordings-{DAY}.zip"'
    with zipfile.ZipFile(io.BytesIO(body(response))) as archive:
        assert archive.testzip() is None
        header, *rows = manifest_of(archive)
        assert header == COLUMNS
        assert sorted(archive.namelist()) == sorted([row[0] for row in rows] + ["manifest.csv"])
        for filename, request_id, unique_id, content_type, size, sha256, duration in rows:
            data = archive.read(filename)
            assert hashlib.sha256(data).hexdigest() == sha256
            assert len(data) == int(size)
            stored = RecordingFile.objects.get(name=filename)
            assert (stored.recording.request_id, stored.recording.unique_id) == (request_id, unique_id)
            assert (stored.content_type, stored.duration) == (content_type, float(duration))
    day_files = RecordingFile.objects.filter(recording__in=day_of_calls)
    assert {row[0] for row in rows} == {f.name for f in day_files}
    assert len(rows) == 7


def test_files_purged_before_the_build_are_left_out(client, token, day_of_calls, clock, set_system):
    set_system(bulk_download=False)
    clock.tick(timedelta(days=8))
    purge_due()
    set_system(bulk_download=True)
    with zipfile.ZipFile(io.BytesIO(body(fetch(client, token)))) as archive:
        names = {row[0] for row in manifest_of(archive)[1:]}
    assert names == {f.name for f in RecordingFile.objects.filter(recording__in=day_of_calls, content_type="monaural")}


def test_the_archive_answers_a_range_with_206(client, token, day_of_calls):
    whole = body(fetch(client, token))
    response = fetch(client, token, HTTP_RANGE="bytes=100-199")
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 100-199/{len(whole)}"
    assert body(response) == whole[100:200]
    assert response["ETag"] == f'"{hashlib.sha256(whole).hexdigest()}"'


def test_head_builds_the_archive_and_answers_its_size_without_a_body(client, token, day_of_calls):
    response = client.head(URL.format(DAY), HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    assert response["Content-Length"] == str(DayArchive.objects.get(day=DAY).size)
    assert response.content == b""


def test_the_archive_is_built_once_and_then_served_from_storage(client, token, day_of_calls):
    fetch(client, token)
    archive = DayArchive.objects.get(day=DAY)
    assert storage.exists(archive.path)
    assert archive.path.startswith("archives/")
    assert archive.file_count == 7
    fetch(client, token)
    assert DayArchive.objects.get(day=DAY).built_at == archive.built_at


def test_todays_archive_is_built_on_request_and_again_after_a_new_call(client, token, clock, set_system):
    set_system(bulk_download=True)
    stored_recording(started_at=f"{DAY} 09:00:00")
    clock.tick(timedelta(minutes=5))
    assert fetch(client, token).status_code == 200
    assert DayArchive.objects.get(day=DAY).file_count == 3
    stored_recording(started_at=f"{DAY} 22:55:00", separated=False)
    clock.tick(timedelta(minutes=5))
    fetch(client, token)
    assert DayArchive.objects.get(day=DAY).file_count == 4


def test_a_day_not_yet_begun_is_not_found(client, token, clock, set_system):
    set_system(bulk_download=True)
    assert fetch(client, token, day="2019-07-19").status_code == 404


def test_the_archive_is_refused_while_the_bulk_download_licence_is_off(client, token, day_of_calls, set_system):
    set_system(bulk_download=False)
    response = fetch(client, token)
    assert response.status_code == 403
    assert (response.json()["name"], response.json()["type"]) == ("AuthorizationException", "FORBIDDEN")
    assert response.json()["message"] == "This action is unauthorized."


@pytest.mark.parametrize("day", ["2019-7-18", "2019-02-30", "yesterday", "20190718"])
def test_a_malformed_date_is_refused(client, token, clock, set_system, day):
    set_system(bulk_download=True)
    response = fetch(client, token, day=day)
    assert response.status_code == 400
    assert response.json()["name"] == "ValidateException"
    assert list(response.json()["messages"]) == ["date"]


def test_an_account_limited_to_some_groups_may_not_take_the_whole_day(client, make_token, day_of_calls):
    response = fetch(client, make_token(role="supervisor", groups="sales"))
    assert response.status_code == 403


def test_an_archive_request_counts_one_request_and_one_object(client, token, day_of_calls):
    fetch(client, token)
    row = MonthlyUsage.objects.get()
    assert (row.requests, row.response_objects) == (1, 1)


def test_the_nightly_task_builds_yesterdays_archive(day_of_calls):
    assert build_yesterdays_archive.apply().get() == DAY
    assert DayArchive.objects.get(day=DAY).file_count == 7


def test_the_nightly_task_does_nothing_without_the_licence(day_of_calls, set_system):
    set_system(bulk_download=False)
    assert build_yesterdays_archive.apply().get() is None
    assert not DayArchive.objects.exists()


def test_export_writes_the_files_and_the_manifest_into_the_folder_with_the_licence_off(
    capsys, tmp_path, day_of_calls, set_system
):
    set_system(bulk_download=False)
    out = tmp_path / "export"
    call_command("export_recordings", "--date", DAY, "--out", str(out))
    assert "7 files" in capsys.readouterr().out
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    assert header == COLUMNS
    assert sorted(p.name for p in out.iterdir()) == sorted([row[0] for row in rows] + ["manifest.csv"])
    for row in rows:
        assert hashlib.sha256((out / row[0]).read_bytes()).hexdigest() == row[5]


def test_an_empty_day_gives_an_archive_with_only_the_manifest(client, token, clock, set_system):
    set_system(bulk_download=True)
    with zipfile.ZipFile(io.BytesIO(body(fetch(client, token, day=(date(2019, 7, 1)).isoformat())))) as archive:
        assert archive.namelist() == ["manifest.csv"]
        assert manifest_of(archive) == [COLUMNS]
