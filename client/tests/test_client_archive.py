"""`biztel-client archive` against the running product: the day archive through nginx over TLS."""

import csv
import hashlib
import io
import time
import zipfile

import pytest
from conftest import DAY, day_files, last_log_id, log_since, run_client

pytestmark = [pytest.mark.timeout(300), pytest.mark.django_db]

ZIP_NAME = f"recordings-{DAY}.zip"


@pytest.fixture
def bulk(live, system):
    system(bulk_download="true")
    # The server rebuilds a day's archive while files of that day came less than a minute before
    # (recordings/archive.py); these tests need the one archive the day settles on.
    time.sleep(max(0.0, live.ingested_at + 62 - time.monotonic()))


def stored_archive(live):
    year, month, _ = DAY.split("-")
    return live.media_root / "archives" / year / month / ZIP_NAME


def unpacked(out):
    return {p.name: p.read_bytes() for p in out.iterdir() if p.suffix == ".mp3"}


def archive_requests(before):
    return [(e.method, e.status) for e in log_since(before, path__startswith="/public/api/v1/monitor/archive/")]


def test_the_day_archive_is_unpacked_and_every_file_matches_the_manifest(live, bulk, tmp_path):
    result = run_client(live, "archive", "--date", DAY, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert unpacked(tmp_path) == day_files(live)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "manifest.csv").read_text())))
    assert sorted(r["filename"] for r in rows) == sorted(day_files(live))
    assert (tmp_path / ZIP_NAME).read_bytes() == stored_archive(live).read_bytes()
    assert "the archive verified, 9 files and manifest.csv" in result.stderr


def test_a_second_archive_run_fetches_the_zip_no_more(live, bulk, tmp_path):
    assert run_client(live, "archive", "--date", DAY, "--out", str(tmp_path)).returncode == 0
    before = last_log_id()
    result = run_client(live, "archive", "--date", DAY, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert archive_requests(before) == [("HEAD", 200)]


def test_a_half_downloaded_archive_is_resumed_with_a_range_request(live, bulk, tmp_path):
    assert run_client(live, "archive", "--date", DAY, "--out", str(tmp_path / "first")).returncode == 0
    data = stored_archive(live).read_bytes()
    half = len(data) // 2
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / f"{ZIP_NAME}.part").write_bytes(data[:half])
    before = last_log_id()
    result = run_client(live, "archive", "--date", DAY, "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert archive_requests(before) == [("HEAD", 200), ("GET", 206)]
    assert f" 206 {len(data) - half} file=/_protected/media/archives/" in live.download_log()
    assert unpacked(tmp_path / "out") == day_files(live)


def test_a_corrupted_archive_is_refused_and_nothing_is_unpacked(live, bulk, tmp_path):
    assert run_client(live, "archive", "--date", DAY, "--out", str(tmp_path / "first")).returncode == 0
    path = stored_archive(live)
    original = path.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))
    try:
        result = run_client(live, "archive", "--date", DAY, "--out", str(tmp_path / "out"))
    finally:
        path.write_bytes(original)
    assert result.returncode == 1
    assert f"{ZIP_NAME}: SHA-256 {hashlib.sha256(damaged).hexdigest()} is not the expected " in result.stderr
    assert list((tmp_path / "out").iterdir()) == []


def test_an_archive_whose_entries_disagree_with_its_manifest_is_refused(live, bulk, tmp_path):
    """The zip matches its ETag, but one entry is not what manifest.csv says."""
    assert run_client(live, "archive", "--date", DAY, "--out", str(tmp_path / "first")).returncode == 0
    path = stored_archive(live)
    original = path.read_bytes()
    forged = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(original)) as source, zipfile.ZipFile(forged, "w") as out:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("_l.mp3"):
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            out.writestr(info, data)
    forged = forged.getvalue()
    set_row = (
        "from recordings.models import DayArchive; import datetime; "
        "DayArchive.objects.filter(day=datetime.date.fromisoformat('{day}')).update(sha256='{sha}', size={size})"
    )
    path.write_bytes(forged)
    live.manage("shell", "-c", set_row.format(day=DAY, sha=hashlib.sha256(forged).hexdigest(), size=len(forged)))
    try:
        result = run_client(live, "archive", "--date", DAY, "--out", str(tmp_path / "out"))
    finally:
        path.write_bytes(original)
        live.manage("shell", "-c", set_row.format(day=DAY, sha=hashlib.sha256(original).hexdigest(), size=len(original)))
    assert result.returncode == 1
    assert "_l.mp3: " in result.stderr and "the manifest says" in result.stderr
    assert unpacked(tmp_path / "out") == {}
    assert not (tmp_path / "out" / "manifest.csv").exists()


def test_without_the_bulk_download_licence_the_archive_command_fails_with_the_403(live, tmp_path):
    result = run_client(live, "archive", "--date", DAY, "--out", str(tmp_path))
    assert result.returncode == 1
    assert "HTTP 403 FORBIDDEN: This action is unauthorized." in result.stderr
