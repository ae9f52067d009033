"""python manage.py ingest_recording: the same ingest from files on disk."""

import io
import json
import os
import subprocess
import sys

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from recordings import mp3, storage
from recordings.models import RecordingFile
from tests.audio_helpers import assert_nothing_left_behind
from tests.conftest import ROOT, database_url
from tests.factories import call_fields
from tests.media import mp3_bytes, tone, wav_bytes, write_wav

pytestmark = pytest.mark.django_db


def options(fields):
    return [f"--{name.replace('_', '-')}={value}" for name, value in fields.items() if value]


def ingest(fields, **files):
    out = io.StringIO()
    call_command("ingest_recording", *options(fields), *[f"--{k}={v}" for k, v in files.items()], stdout=out)
    return json.loads(out.getvalue())


def test_a_stereo_wav_file_is_stored_and_printed_as_json(tmp_path):
    path = write_wav(tmp_path / "call.wav", [tone(440, 2), tone(1000, 2)])
    fields = call_fields()
    printed = ingest(fields, stereo=path)
    assert printed["request_id"] == fields["request_id"]
    assert printed["duration"] == pytest.approx(2.0, abs=0.05)
    for content_type in ("monaural", "left", "right"):
        stored = RecordingFile.objects.get(content_type=content_type)
        assert printed["files"][content_type]["sha256"] == stored.sha256
        assert mp3.inspect(storage.full_path(stored.path)).channels == 1


def test_wav_legs_are_accepted_and_mixed(tmp_path):
    left = write_wav(tmp_path / "l.wav", [tone(440, 1)], codec="ulaw")
    right = write_wav(tmp_path / "r.wav", [tone(1000, 1)], codec="ulaw")
    printed = ingest(call_fields(), left=left, right=right)
    assert all(printed["files"][ct] for ct in ("monaural", "left", "right"))


def test_running_it_twice_prints_the_same_recording_once_stored(tmp_path):
    path = write_wav(tmp_path / "call.wav", [tone(440, 1), tone(1000, 1)])
    fields = call_fields()
    assert ingest(fields, stereo=path) == ingest(fields, stereo=path)
    assert RecordingFile.objects.count() == 3


def test_bad_input_fails_with_the_same_message_as_the_http_answer(tmp_path, client, make_token):
    bad = tmp_path / "mono.wav"
    bad.write_bytes(wav_bytes([tone(440, 1)]))
    fields = call_fields(started_at="2019-07-18 25:00:00")
    with pytest.raises(CommandError) as failure:
        ingest(fields, stereo=bad)
    answer = client.post(
        "/internal/api/v1/recordings",
        {**fields, "stereo": SimpleUploadedFile("mono.wav", bad.read_bytes())},
        HTTP_AUTHORIZATION=f"Token {make_token(role='pbx')}",
    ).json()
    assert str(failure.value) == f"{answer['message']} {json.dumps(answer['messages'], ensure_ascii=False)}"
    assert set(answer["messages"]) == {"started_at", "stereo"}
    assert_nothing_left_behind()


def test_a_truncated_file_fails_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "cut.wav"
    path.write_bytes(wav_bytes([tone(440, 1), tone(1000, 1)])[:-999])
    with pytest.raises(CommandError, match="truncated"):
        ingest(call_fields(), stereo=path)
    assert_nothing_left_behind()


def test_a_missing_file_is_reported_by_name(tmp_path):
    with pytest.raises(CommandError, match="nowhere.wav"):
        ingest(call_fields(), stereo=tmp_path / "nowhere.wav")


def test_a_ready_mp3_still_works(tmp_path):
    path = tmp_path / "mix.mp3"
    path.write_bytes(mp3_bytes(tone(440, 1)))
    printed = ingest(call_fields(), mixed=path)
    assert printed["files"]["monaural"]["bytes"] == path.stat().st_size


def test_the_command_exits_non_zero_on_bad_input(tmp_path):
    path = tmp_path / "text.wav"
    path.write_text("not a recording")
    fields = call_fields()
    result = subprocess.run(
        [sys.executable, "manage.py", "ingest_recording", *options(fields), f"--stereo={path}"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url(), "MEDIA_ROOT": str(tmp_path / "media")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Not an audio file" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "media").exists() or not any((tmp_path / "media").rglob("*.*"))
