"""The purge of SPEC.md §2.4 on a frozen clock: what is due goes, file first and then the row."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from freezegun import freeze_time

from recordings import storage
from recordings.models import DayArchive, RecordingFile
from recordings.purge import purge_due
from recordings.tasks import purge_due_files
from tests.factories import stored_recording

URL = "/public/api/v1/monitor/{}"
STORED_AT = "2019-07-18 16:30:00+09:00"


@pytest.fixture
def clock(db):
    with freeze_time(STORED_AT) as frozen:
        yield frozen


@pytest.fixture
def recording(clock, storage_backend):
    """A stored call, on the disk and (a second run) in a bucket."""
    return stored_recording()


@pytest.fixture
def recording_on_disk(clock):
    """For the storage failures made with the disk (a directory where the file should be)."""
    return stored_recording()


def on_day(clock, days, hours=0):
    clock.move_to(STORED_AT)
    clock.tick(timedelta(days=days, hours=hours))


def download(client, token, recording, content_type):
    return client.get(
        URL.format(recording.request_id), {"content_type": content_type}, HTTP_AUTHORIZATION=f"Token {token}"
    )


def stored(recording, content_type):
    return RecordingFile.objects.get(recording=recording, content_type=content_type)


def test_the_left_leg_still_downloads_on_day_six(client, token, clock, recording):
    on_day(clock, 6)
    purge_due()
    assert download(client, token, recording, "left").status_code == 200
    assert storage.exists(stored(recording, "left").path)


def test_the_left_leg_is_gone_on_day_eight_while_the_mixed_file_still_downloads(client, token, clock, recording):
    on_day(clock, 8)
    outcome = purge_due()
    assert outcome.files == 2
    for leg in ("left", "right"):
        response = download(client, token, recording, leg)
        assert response.status_code == 404
        assert response.json()["name"] == "EntityNotFoundException"
        assert not storage.exists(stored(recording, leg).path)
        assert stored(recording, leg).deleted_at is not None
    assert download(client, token, recording, "monaural").status_code == 200


def test_a_leg_falls_due_exactly_seven_days_after_it_was_stored(clock, recording):
    on_day(clock, 7, hours=-1)
    assert purge_due().files == 0
    on_day(clock, 7)
    assert purge_due().files == 2


def test_with_the_bulk_licence_on_the_legs_are_kept_until_day_thirty(client, token, clock, recording, set_system):
    set_system(bulk_download=True)
    on_day(clock, 29)
    purge_due()
    assert download(client, token, recording, "left").status_code == 200
    on_day(clock, 30)
    purge_due()
    assert download(client, token, recording, "left").status_code == 404
    assert download(client, token, recording, "monaural").status_code == 200


def test_switching_the_bulk_licence_off_shortens_the_retention_of_legs_already_stored(clock, set_system):
    set_system(bulk_download=True)
    recording = stored_recording()
    set_system(bulk_download=False)
    on_day(clock, 8)
    purge_due()
    assert stored(recording, "left").deleted_at is not None


def test_mixed_files_are_kept_unless_a_monaural_retention_is_set(clock, recording, set_system):
    on_day(clock, 400)
    purge_due()
    assert stored(recording, "monaural").deleted_at is None
    set_system(monaural_retention_days=365)
    purge_due()
    assert stored(recording, "monaural").deleted_at is not None
    assert not storage.exists(stored(recording, "monaural").path)


def test_a_storage_failure_leaves_the_file_due_and_the_next_run_finishes_it(client, token, clock, recording_on_disk):
    recording = recording_on_disk
    left = storage.full_path(stored(recording, "left").path)
    # A directory where the file should be: unlink(2) refuses it with EISDIR, even for root.
    left.unlink()
    left.mkdir()
    on_day(clock, 8)
    outcome = purge_due()
    assert (outcome.files, outcome.failed) == (1, 1)
    assert stored(recording, "left").deleted_at is None
    assert stored(recording, "right").deleted_at is not None

    left.rmdir()
    clock.tick(timedelta(hours=1))
    outcome = purge_due()
    assert (outcome.files, outcome.failed) == (1, 0)
    assert stored(recording, "left").deleted_at is not None
    assert download(client, token, recording, "left").status_code == 404


def test_a_run_interrupted_after_deleting_the_file_is_finished_by_the_next_one(clock, recording):
    # the state of a run killed between the unlink and the update of the row
    storage.delete(stored(recording, "left").path)
    on_day(clock, 8)
    assert purge_due().files == 2
    assert stored(recording, "left").deleted_at is not None


def test_the_purge_works_through_more_files_than_one_batch(clock):
    recordings = [stored_recording() for _ in range(3)]
    on_day(clock, 8)
    outcome = purge_due(batch_size=2)
    assert outcome.files == 6
    assert RecordingFile.objects.filter(recording__in=recordings, deleted_at__isnull=True).count() == 3


def test_a_dry_run_deletes_nothing_and_lists_what_it_would_delete(capsys, clock, recording):
    on_day(clock, 8)
    call_command("purge_recordings", "--dry-run")
    out = capsys.readouterr().out
    for leg in ("left", "right"):
        assert f"would delete {stored(recording, leg).path}" in out
        assert storage.exists(stored(recording, leg).path)
        assert stored(recording, leg).deleted_at is None
    assert "would delete: 2 files, 0 archives" in out


def test_the_command_purges_as_of_the_time_given_and_says_what_it_deleted(capsys, clock, recording):
    call_command("purge_recordings", "--now", "2019-07-25 16:29:59")
    assert "deleted: 0 files" in capsys.readouterr().out
    call_command("purge_recordings", "--now", "2019-07-25 16:30:00")
    out = capsys.readouterr().out
    assert f"deleted {stored(recording, 'left').path}" in out
    assert "deleted: 2 files, 0 archives" in out
    assert stored(recording, "left").deleted_at is not None


def test_the_command_fails_when_something_could_not_be_deleted(clock, recording_on_disk):
    recording = recording_on_disk
    storage.full_path(stored(recording, "right").path).unlink()
    storage.full_path(stored(recording, "right").path).mkdir()
    with pytest.raises(CommandError, match="1 could not be deleted"):
        call_command("purge_recordings", "--now", "2019-07-26 00:00:00")


def test_the_command_refuses_a_malformed_time(db):
    with pytest.raises(CommandError, match="YYYY-MM-DD HH:MM:SS"):
        call_command("purge_recordings", "--now", "2019-07-26")


def test_the_hourly_task_purges_what_is_due(clock, recording):
    on_day(clock, 8)
    assert purge_due_files.apply().get() == {"files": 2, "archives": 0, "failed": 0}


def test_archives_expire_after_the_bulk_retention_period(client, token, clock, recording, set_system):
    set_system(bulk_download=True)
    on_day(clock, 1)
    response = client.get("/public/api/v1/monitor/archive/2019-07-18", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    archive = DayArchive.objects.get(day="2019-07-18")
    on_day(clock, 30)
    assert purge_due().archives == 0
    on_day(clock, 31)
    assert purge_due().archives == 1
    archive.refresh_from_db()
    assert archive.deleted_at is not None
    assert not storage.exists(archive.path)


def test_the_beat_schedule_names_the_recordings_tasks_that_exist(settings):
    from biztel.celery import app

    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    ours = {"recordings.tasks.purge_due_files", "recordings.tasks.build_yesterdays_archive"}
    assert ours <= scheduled
    assert ours <= set(app.tasks)
