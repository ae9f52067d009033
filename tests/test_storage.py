"""SPEC.md §9 and issue 10.5: the same product on the disk and on an S3-compatible bucket
(moto's server, tests/s3.py), nothing left half-written, debris and orphans swept."""

import http.client
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from recordings import storage
from recordings.archive import archive_build
from recordings.models import DayArchive, Recording, RecordingFile
from recordings.services import recording_ingest
from tests import s3
from tests.conftest import ROOT, database_url, free_port
from tests.factories import call_fields, stored_recording
from tests.media import mp3_bytes, tone, wav_bytes, write_wav

URL = "/public/api/v1/monitor/{}"


def auth(token):
    return {"HTTP_AUTHORIZATION": f"Token {token}"}


def body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


def stored_keys():
    """What the storage in force holds, by relative path (.incoming excluded)."""
    return sorted(relative for relative, _ in storage.listing())


def purge_as_of(moment):
    out = io.StringIO()
    call_command("purge_recordings", "--now", timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S"), stdout=out)
    return out.getvalue()


# --- settings ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "variable, value",
    [
        ("STORAGE_URL", "ftp://host/x"),
        ("STORAGE_URL", "s3://"),
        ("STORAGE_URL", "file://relative/path"),
        ("STORAGE_S3_SSE", "DES"),
        ("AWS_S3_ENDPOINT_URL", "127.0.0.1:9000"),
        ("STORAGE_S3_KMS_KEY_ID", "key-without-kms"),
    ],
)
def test_a_bad_storage_setting_stops_the_start_naming_the_variable(variable, value):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env={**os.environ, variable: value},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert variable in result.stderr


# --- ingest -----------------------------------------------------------------------------

def test_a_call_stored_in_a_bucket_is_one_object_per_file_under_the_prefix(db, s3_bucket, s3_endpoint, settings):
    recording = stored_recording()
    paths = sorted(recording.files.values_list("path", flat=True))
    assert s3.keys(s3_endpoint, s3_bucket) == [f"recordings/{path}" for path in paths]
    for stored in recording.files.all():
        head = s3.client(s3_endpoint).head_object(Bucket=s3_bucket, Key=f"recordings/{stored.path}")
        assert head["ContentLength"] == stored.size
        assert head["ContentType"] == "audio/mpeg"
        assert head["Metadata"]["sha256"] == stored.sha256
    # the node's own disk holds nothing but its (empty) scratch folder
    assert [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()] == []


def test_a_file_url_stores_on_the_disk_at_that_path(client, token, settings, tmp_path):
    settings.STORAGE_URL = f"file://{tmp_path}/elsewhere"
    recording = stored_recording(separated=False)
    stored = recording.files.get()
    assert (tmp_path / "elsewhere" / stored.path).is_file()
    assert not Path(settings.MEDIA_ROOT).exists() or not list(Path(settings.MEDIA_ROOT).rglob("*.mp3"))
    response = client.get(URL.format(recording.request_id), **auth(token))
    assert body(response) == (tmp_path / "elsewhere" / stored.path).read_bytes()


def test_with_storage_s3_sse_the_store_encrypts_each_object(db, s3_bucket, s3_endpoint, settings):
    settings.STORAGE_S3_SSE = "AES256"
    recording = stored_recording(separated=False)
    key = f"recordings/{recording.files.get().path}"
    assert s3.client(s3_endpoint).head_object(Bucket=s3_bucket, Key=key)["ServerSideEncryption"] == "AES256"


def test_with_aws_kms_the_store_encrypts_each_object_with_that_key(db, s3_bucket, s3_endpoint, settings):
    settings.STORAGE_S3_SSE = "aws:kms"
    settings.STORAGE_S3_KMS_KEY_ID = "arn:aws:kms:us-east-1:123456789012:key/biztel-test"
    recording = stored_recording(separated=False)
    head = s3.client(s3_endpoint).head_object(Bucket=s3_bucket, Key=f"recordings/{recording.files.get().path}")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", settings.STORAGE_S3_KMS_KEY_ID)


def test_a_large_file_is_uploaded_in_parts(db, s3_bucket, s3_endpoint):
    temp = storage.new_temp_path()
    temp.write_bytes(os.urandom(20 * 1024 * 1024))
    storage.move_into_place(temp, "2019/07/18/big.mp3")
    head = s3.client(s3_endpoint).head_object(Bucket=s3_bucket, Key="recordings/2019/07/18/big.mp3")
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload's ETag counts its parts (8 MiB each)
    assert not temp.exists()


def test_an_object_written_as_a_stream_goes_up_in_parts_and_a_failed_one_leaves_nothing(db, s3_bucket, s3_endpoint):
    data = os.urandom(19 * 1024 * 1024)
    with storage.object_writer("archives/2019/07/streamed.zip") as out:
        for start in range(0, len(data), 100_000):
            out.write(data[start:start + 100_000])
    assert (out.size, out.sha256) == storage.size_and_hash("archives/2019/07/streamed.zip")
    head = s3.client(s3_endpoint).head_object(Bucket=s3_bucket, Key="recordings/archives/2019/07/streamed.zip")
    assert (head["ContentLength"], head["ETag"].strip('"')[-2:]) == (len(data), "-3")
    with pytest.raises(RuntimeError, match="the build failed"):
        with storage.object_writer("archives/2019/07/failed.zip") as out:
            out.write(data)
            raise RuntimeError("the build failed")
    assert stored_keys() == ["archives/2019/07/streamed.zip"]
    assert s3.client(s3_endpoint).list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


@pytest.fixture
def refused_at_commit(transactional_db):
    """A deferred constraint trigger that fails the COMMIT of one request ID: the files are
    stored by then, so the ingest must take them out again."""
    request_id = "21061600000268009999"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_at_commit() RETURNS trigger AS $$ BEGIN "
            f"IF NEW.request_id = '{request_id}' THEN RAISE EXCEPTION 'refused at commit'; END IF; RETURN NULL; "
            "END $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            "CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON recordings_recording "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit()"
        )
    yield request_id
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER refuse_at_commit ON recordings_recording")
        cursor.execute("DROP FUNCTION refuse_at_commit()")


def test_a_commit_that_fails_after_the_files_were_stored_leaves_no_file_and_no_row(
    refused_at_commit, storage_backend, settings
):
    files = {name: io.BytesIO(mp3_bytes(tone(440, 1))) for name in ("mixed", "left", "right")}
    with pytest.raises(Exception, match="refused at commit"):
        recording_ingest(fields=call_fields(request_id=refused_at_commit), **files)
    assert Recording.objects.count() == 0
    assert stored_keys() == []
    assert list(storage.incoming_folder().iterdir()) == []


# --- downloads, listing, archive, export, purge on both ----------------------------------

def test_a_download_from_either_storage_gives_the_same_bytes_headers_range_and_304(
    client, token, storage_backend, db
):
    recording = stored_recording()
    stored = recording.files.get(content_type="left")
    with storage.open_for_read(stored.path) as f:
        data = f.read()
    url = URL.format(recording.request_id)
    whole = client.get(url, {"content_type": "left"}, **auth(token))
    assert (whole.status_code, body(whole)) == (200, data)
    assert whole["ETag"] == f'"{stored.sha256}"'
    part = client.get(url, {"content_type": "left"}, HTTP_RANGE="bytes=100-199", **auth(token))
    assert (part.status_code, body(part), part["Content-Range"]) == (206, data[100:200], f"bytes 100-199/{len(data)}")
    tail = client.get(url, {"content_type": "left"}, HTTP_RANGE="bytes=-10", **auth(token))
    assert body(tail) == data[-10:]
    head = client.head(url, {"content_type": "left"}, **auth(token))
    assert (head.status_code, head["Content-Length"], head.content) == (200, str(len(data)), b"")
    cached = client.get(url, {"content_type": "left"}, HTTP_IF_NONE_MATCH=whole["ETag"], **auth(token))
    assert cached.status_code == 304


def test_a_stored_object_reads_like_a_file_seek_and_all(db, s3_bucket):
    temp = storage.new_temp_path()
    data = os.urandom(3 * 1024 * 1024 + 17)
    temp.write_bytes(data)
    storage.move_into_place(temp, "2019/07/18/x.mp3")
    with storage.open_for_read("2019/07/18/x.mp3") as f:
        assert f.seekable() and f.readable()
        assert f.read(10) == data[:10]
        f.seek(-7, io.SEEK_END)
        assert f.read() == data[-7:]
        f.seek(1000)
        assert f.read(5) == data[1000:1005]
        assert f.tell() == 1005
    with storage.open_for_read("2019/07/18/x.mp3", 5, 10) as f:
        assert f.read() == data[5:15]
    with pytest.raises(FileNotFoundError):
        storage.open_for_read("2019/07/18/missing.mp3")


def test_the_listing_archive_and_export_work_from_either_storage(client, token, set_system, storage_backend, tmp_path):
    set_system(bulk_download=True)
    recording = stored_recording(started_at="2019-07-18 10:00:00")
    page = client.get("/public/api/v1/monitor/", {"date": "2019-07-18"}, **auth(token)).json()
    assert [item["request_id"] for item in page["results"]] == [recording.request_id]
    assert page["results"][0]["files"]["left"]["exists"] is True

    response = client.get("/public/api/v1/monitor/archive/2019-07-18", **auth(token))
    assert response.status_code == 200
    data = body(response)
    archive = DayArchive.objects.get()
    assert storage.exists(archive.path)
    assert storage.size_and_hash(archive.path) == (archive.size, archive.sha256) == (len(data), archive.sha256)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = set(z.namelist())
        for stored in recording.files.all():
            with storage.open_for_read(stored.path) as f:
                assert z.read(stored.name) == f.read()
    assert names == {f.name for f in recording.files.all()} | {"manifest.csv"}
    ranged = client.get("/public/api/v1/monitor/archive/2019-07-18", HTTP_RANGE="bytes=0-3", **auth(token))
    assert (ranged.status_code, body(ranged)) == (206, data[:4])

    call_command("export_recordings", "--date", "2019-07-18", "--out", str(tmp_path / "out"), stdout=io.StringIO())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)


def test_the_purge_deletes_due_files_from_either_storage_and_the_api_answers_404(client, token, storage_backend):
    recording = stored_recording()
    left = recording.files.get(content_type="left")
    out = purge_as_of(timezone.now() + timedelta(days=8))
    assert f"deleted {left.path}" in out
    assert not storage.exists(left.path)
    assert storage.exists(recording.files.get(content_type="monaural").path)
    response = client.get(URL.format(recording.request_id), {"content_type": "left"}, **auth(token))
    assert response.status_code == 404


def test_a_download_while_the_purge_is_deleting_the_file_is_the_404_row(client, token, storage_backend, monkeypatch):
    recording = stored_recording()
    answers = []
    real_delete = storage.delete

    def delete_then_download(relative):
        real_delete(relative)
        # the file is gone, its row not yet marked deleted: what a download sees in between
        answers.append(client.get(URL.format(recording.request_id), {"content_type": "left"}, **auth(token)))

    monkeypatch.setattr(storage, "delete", delete_then_download)
    purge_as_of(timezone.now() + timedelta(days=8))
    assert answers and {a.status_code for a in answers} == {404}
    assert answers[0].json()["name"] == "EntityNotFoundException"


def test_a_file_the_purge_cannot_delete_stays_downloadable_and_due_for_the_next_run(
    client, token, s3_bucket, settings
):
    from recordings.purge import purge_due

    recording = stored_recording()
    left = recording.files.get(content_type="left")
    reachable = settings.AWS_S3_ENDPOINT_URL
    settings.AWS_S3_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"  # the store cannot be reached
    try:
        outcome = purge_due(now=timezone.now() + timedelta(days=8))
    finally:
        settings.AWS_S3_ENDPOINT_URL = reachable
    assert (outcome.files, outcome.failed) == (0, 3)  # both legs, and the sweep's listing
    left.refresh_from_db()
    assert (left.deleted_at, left.purging_at) == (None, None)
    assert client.get(URL.format(recording.request_id), {"content_type": "left"}, **auth(token)).status_code == 200
    assert purge_due(now=timezone.now() + timedelta(days=8)).files == 2


def test_stored_files_no_row_names_are_purged_once_an_hour_old(db, storage_backend, settings):
    recording = stored_recording()
    temp = storage.new_temp_path()
    temp.write_bytes(b"left by a crash")
    storage.move_into_place(temp, "2019/07/18/orphan.mp3")
    flac = storage.new_temp_path()
    flac.write_bytes(b"lossless copy of a stored mp3")
    monaural = recording.files.get(content_type="monaural").path
    storage.move_into_place(flac, monaural.removesuffix(".mp3") + ".flac")

    someone_elses = storage.new_temp_path()
    someone_elses.write_bytes(b"not ours")
    storage.move_into_place(someone_elses, "notes/readme.txt")

    purge_as_of(timezone.now())
    assert storage.exists("2019/07/18/orphan.mp3")  # younger than an hour: maybe an ingest about to commit
    out = purge_as_of(timezone.now() + timedelta(minutes=61))
    assert "deleted 2019/07/18/orphan.mp3" in out
    assert not storage.exists("2019/07/18/orphan.mp3")
    assert stored_keys() == sorted(
        [f.path for f in recording.files.all()] + [monaural.removesuffix(".mp3") + ".flac", "notes/readme.txt"]
    )


def test_an_archive_object_replaced_by_a_rebuild_is_kept_an_hour_after_the_rebuild(db, s3_bucket, set_system):
    """In a bucket a rebuild writes a new object and leaves the old one, which a download may be
    reading, to the sweep. Its age is when it was written, not when it stopped being named: here
    written two hours before a rebuild, it must still be kept for the hour after that rebuild."""
    set_system(bulk_download=True)
    stored_recording(started_at="2019-07-18 10:00:00")
    day = date(2019, 7, 18)
    first = archive_build(day=day).path
    rebuilt_at = timezone.now() + timedelta(hours=2)
    second = archive_build(day=day).path  # as after a new call on that day
    DayArchive.objects.filter(day=day).update(built_at=rebuilt_at)
    assert first != second

    purge_as_of(rebuilt_at + timedelta(minutes=30))
    assert storage.exists(first) and storage.exists(second)
    out = purge_as_of(rebuilt_at + timedelta(minutes=61))
    assert f"deleted {first}" in out
    assert not storage.exists(first) and storage.exists(second)


def test_incoming_debris_older_than_an_hour_is_purged(db, storage_backend):
    old = storage.new_temp_path()
    fresh = storage.new_temp_path()
    purge_as_of(timezone.now() + timedelta(minutes=30))
    assert old.exists() and fresh.exists()
    out = purge_as_of(timezone.now() + timedelta(minutes=61))
    assert f"deleted debris .incoming/{old.name}" in out
    assert not old.exists() and not fresh.exists()


# --- crashes ----------------------------------------------------------------------------

class StallingS3Proxy:
    """An HTTP proxy in front of moto that passes the first `passed` PUTs and holds every later
    one forever: the ingest has uploaded some objects and waits in the next upload, before its
    commit, when the test kills it."""

    def __init__(self, upstream, passed):
        self.upstream = urlsplit(upstream)
        self.passed = passed
        self.puts = 0
        self.held = threading.Event()
        self.release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                if self.command == "PUT":
                    proxy.puts += 1
                    if proxy.puts > proxy.passed:
                        proxy.held.set()
                        proxy.release.wait()
                        return
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}
                upstream.request(self.command, self.path, body=data, headers=headers)
                answer = upstream.getresponse()
                content = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.release.set()
        self.server.shutdown()


def test_an_ingest_killed_after_uploading_and_before_committing_leaves_an_object_the_purge_removes_later(
    transactional_db, s3_bucket, s3_endpoint, settings, tmp_path
):
    proxy = StallingS3Proxy(s3_endpoint, passed=1)
    fields = call_fields()
    stereo = write_wav(tmp_path / "call.wav", [tone(440, 2), tone(1000, 2)])
    env = {
        **os.environ, **s3.settings_env(settings), "AWS_S3_ENDPOINT_URL": proxy.url,
        "DATABASE_URL": database_url(), "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    options = [f"--{name.replace('_', '-')}={value}" for name, value in fields.items() if value]
    child = subprocess.Popen(
        [sys.executable, "manage.py", "ingest_recording", *options, f"--stereo={stereo}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert proxy.held.wait(60), child.communicate(timeout=5)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        proxy.close()
        if child.poll() is None:
            child.kill()
    left_behind = s3.keys(s3_endpoint, s3_bucket)
    assert len(left_behind) == 1 and left_behind[0].startswith("recordings/2019/07/18/")
    assert Recording.objects.count() == 0 and RecordingFile.objects.count() == 0

    purge_as_of(timezone.now())
    assert s3.keys(s3_endpoint, s3_bucket) == left_behind  # not yet an hour old
    out = purge_as_of(timezone.now() + timedelta(minutes=61))
    assert f"deleted {left_behind[0].removeprefix('recordings/')}" in out
    assert s3.keys(s3_endpoint, s3_bucket) == []


def children(pid):
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def gunicorn_workers(base_url):
    """The worker processes of the gunicorn this test started (at base_url: the client tests'
    session-long stack runs a gunicorn of its own)."""
    bind = base_url.removeprefix("http://").encode()
    (master,) = [
        p for p in children(os.getpid())
        if b"gunicorn" in (cmdline := Path(f"/proc/{p}/cmdline").read_bytes()) and bind in cmdline
    ]
    return children(master)


def test_a_web_worker_killed_mid_ingest_leaves_debris_that_the_purge_removes(gunicorn_server, make_token, settings):
    token = make_token(role="pbx")
    incoming = Path(settings.MEDIA_ROOT) / storage.INCOMING
    seconds = 600  # long enough to be still encoding when the worker is killed
    stereo = wav_bytes([tone(440, seconds), tone(1000, seconds)])
    errors = []

    def post():
        try:
            requests.post(
                f"{gunicorn_server}/internal/api/v1/recordings", headers={"Authorization": f"Token {token}"},
                data=call_fields(), files={"stereo": ("call.wav", stereo, "audio/wav")}, timeout=120,
            )
        except requests.RequestException as exc:
            errors.append(exc)

    sender = threading.Thread(target=post)
    sender.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(incoming.glob("*.part")):
        time.sleep(0.02)
    parts = list(incoming.glob("*.part"))
    assert parts, "the ingest never started encoding"
    for worker in gunicorn_workers(gunicorn_server):
        os.kill(worker, signal.SIGKILL)
    sender.join(timeout=60)
    assert errors  # the client saw the connection die
    debris = sorted(p.name for p in incoming.iterdir())
    assert any(name.endswith(".part") for name in debris)
    assert any(".upload" in name for name in debris)  # Django's copy of the uploaded WAV
    assert Recording.objects.count() == 0

    purge_as_of(timezone.now())
    assert sorted(p.name for p in incoming.iterdir()) == debris  # younger than an hour: maybe still in use
    purge_as_of(timezone.now() + timedelta(minutes=61))
    assert list(incoming.iterdir()) == []
    assert not [p for p in Path(settings.MEDIA_ROOT).rglob("*.mp3")]


# --- storage_copy -------------------------------------------------------------------------

def copy_to(url):
    out, err = io.StringIO(), io.StringIO()
    call_command("storage_copy", "--to", url, stdout=out, stderr=err)
    return out.getvalue()


def test_storage_copy_moves_an_installation_from_its_disk_to_a_bucket_and_can_run_again(
    client, token, settings, s3_endpoint, set_system
):
    set_system(bulk_download=True)
    recordings = [stored_recording(started_at="2019-07-18 10:00:00") for _ in range(2)]
    assert client.get("/public/api/v1/monitor/archive/2019-07-18", **auth(token)).status_code == 200
    bucket = s3.new_bucket(s3_endpoint)
    target = f"s3://{bucket}/moved"
    for name, value in s3.storage_env(s3_endpoint, bucket, prefix="moved").items():
        if name != "STORAGE_URL":
            setattr(settings, name, value)
    paths = sorted([f.path for r in recordings for f in r.files.all()] + [DayArchive.objects.get().path])

    out = copy_to(target)
    assert "copied: 7, already there: 0, failed: 0" in out
    assert s3.keys(s3_endpoint, bucket) == [f"moved/{p}" for p in paths]

    # interrupted: one object never arrived, another arrived wrong
    s3.client(s3_endpoint).delete_object(Bucket=bucket, Key=f"moved/{paths[0]}")
    s3.client(s3_endpoint).put_object(Bucket=bucket, Key=f"moved/{paths[1]}", Body=b"half")
    out = copy_to(target)
    assert "copied: 2, already there: 5, failed: 0" in out
    assert f"copied {paths[0]}" in out and f"copied {paths[1]}" in out

    # the installation switched: the same answers from the bucket
    data = body(client.get(URL.format(recordings[0].request_id), **auth(token)))
    settings.STORAGE_URL = target
    assert body(client.get(URL.format(recordings[0].request_id), **auth(token))) == data
    assert client.get("/public/api/v1/monitor/archive/2019-07-18", HTTP_RANGE="bytes=0-1", **auth(token)).status_code == 206
    s3.empty_bucket(s3_endpoint, bucket)


def test_storage_copy_from_a_bucket_to_a_disk_checks_every_sha256(db, s3_bucket, settings, tmp_path):
    recording = stored_recording()
    bad = recording.files.get(content_type="right")
    temp = storage.new_temp_path()
    temp.write_bytes(b"not what the row says")
    storage.move_into_place(temp, bad.path)
    with pytest.raises(CommandError, match="1 could not be copied"):
        copy_to(f"file://{tmp_path}/disk")
    copied = sorted(str(p.relative_to(tmp_path / "disk")) for p in (tmp_path / "disk").rglob("*.mp3"))
    assert copied == sorted(f.path for f in recording.files.exclude(pk=bad.pk))


def test_storage_copy_to_a_disk_on_another_file_system(db, settings):
    """The files are prepared on the source's file system; a disk mounted elsewhere (here
    /dev/shm, a tmpfs) cannot take them by a rename."""
    recording = stored_recording()
    target = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="biztel-copy-"))
    try:
        assert "copied: 3, already there: 0, failed: 0" in copy_to(f"file://{target}")
        for stored in recording.files.all():
            assert (target / stored.path).read_bytes() == storage.open_for_read(stored.path).read()
        assert not list(target.rglob("*.part"))
    finally:
        shutil.rmtree(target, ignore_errors=True)


def test_storage_copy_refuses_a_bad_url(db):
    with pytest.raises(CommandError, match="--to must be"):
        copy_to("ftp://elsewhere")


def test_a_starting_worker_removes_the_debris_older_than_an_hour(transactional_db, settings, tmp_path):
    from tests.callactions_support import Worker

    old, fresh = storage.new_temp_path(), storage.new_temp_path()
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    worker = Worker(tmp_path / "worker.log", extra_env={"MEDIA_ROOT": str(settings.MEDIA_ROOT)}).start()
    try:
        deadline = time.monotonic() + 10
        while old.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.stop()
    assert not old.exists()
    assert fresh.exists()
