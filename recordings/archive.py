"""The bulk download of one day's files (SPEC.md §2.5): the zip archive and the export.

Both hold the files still stored of the recordings that started that (local) day,
mixed, separated and stereo, under their own names, and manifest.csv (lossless copies
stay out: they are served one by one with format=flac|wav). Memory stays flat
whatever the size of the day: files are copied into the zip in chunks (stored, not
compressed: MP3 does not shrink; from a bucket each object is one streamed GET), the
rows are read in chunks and the manifest is spooled to disk once it grows. On the disk
the zip is built in the temporary folder and moved into place; in a bucket it is written
straight into a new object, part by part (a multipart upload).
"""

import csv
import logging
import shutil
import tempfile
import zipfile
from datetime import timedelta
from pathlib import Path

from django.db import IntegrityError, transaction
from django.utils import timezone

from biztel import config
from recordings import storage
from recordings.models import DayArchive
from recordings.selectors import day_files, day_files_stored_since, day_recordings_deleted_since

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("filename", "request_id", "unique_id", "content_type", "bytes", "sha256", "duration")
ARCHIVE_FOLDER = "archives"
# An ingest that began before a build may commit after it has listed the day's files;
# a file stored this shortly before a build makes the archive out of date.
IN_FLIGHT_MARGIN = timedelta(minutes=1)
_MANIFEST_IN_MEMORY = 1024 * 1024


def manifest_row(stored):
    recording = stored.recording
    return [
        stored.name, recording.request_id, recording.unique_id, stored.content_type,
        stored.size, stored.sha256, stored.duration,
    ]


def archive_name(day):
    return f"recordings-{day.isoformat()}.zip"


def archive_path(day):
    return f"{ARCHIVE_FOLDER}/{day:%Y/%m}/{archive_name(day)}"


def _zip_entry(name, moment, size=0):
    entry = zipfile.ZipInfo(name, date_time=timezone.localtime(moment).timetuple()[:6])
    entry.file_size = size  # lets zipfile pick the ZIP64 layout an entry needs before writing it
    entry.compress_type = zipfile.ZIP_STORED
    entry.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
    return entry


def archive_write(*, day, out):
    """Write the day's zip to the binary file `out`; returns how many recording files it holds."""
    count = 0
    with (
        zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive,
        tempfile.SpooledTemporaryFile(
            max_size=_MANIFEST_IN_MEMORY, mode="w+", newline="", encoding="utf-8"
        ) as manifest,
    ):
        rows = csv.writer(manifest)
        rows.writerow(MANIFEST_COLUMNS)
        for stored in day_files(day):
            try:
                source = storage.open_for_read(stored.path)
            except FileNotFoundError:
                # purged between the listing and now, or lost: the manifest lists only what the zip holds
                log.warning("archive %s: %s is not in storage, left out", day, stored.path)
                continue
            with source, archive.open(_zip_entry(stored.name, stored.recording.started_at, stored.size), "w") as entry:
                shutil.copyfileobj(source, entry, storage.CHUNK)
            rows.writerow(manifest_row(stored))
            count += 1
        manifest.seek(0)
        with archive.open(_zip_entry(MANIFEST_NAME, timezone.now()), "w") as entry:
            while text := manifest.read(storage.CHUNK):
                entry.write(text.encode("utf-8"))
    return count


def archive_build(*, day):
    """Build the day's archive and record it; returns the DayArchive."""
    snapshot_at = timezone.now()
    if storage.is_bucket():
        return _build_into_object(day, snapshot_at)
    temp_path, out = storage.open_new_temp(suffix=".zip")
    try:
        with out:
            count = archive_write(day=day, out=out)
        size, sha256 = storage.hash_file(temp_path)
        return _publish_once(
            day, archive_path(day), size=size, sha256=sha256, file_count=count, built_at=snapshot_at,
            temp_path=temp_path,
        )
    finally:
        storage.discard(temp_path)


def _build_into_object(day, snapshot_at):
    # Streamed straight into an object of its own (a multipart upload), so no node needs disk
    # for a day's archive. The row names it once it is complete; the object the row named
    # before is left to the purge's sweep an hour after this build, so a download reading it goes on.
    relative = archive_path(day).removesuffix(".zip") + f"-{snapshot_at:%Y%m%d%H%M%S%f}.zip"
    with storage.object_writer(relative) as out:
        count = archive_write(day=day, out=out)
    archive = _publish_once(day, relative, size=out.size, sha256=out.sha256, file_count=count, built_at=snapshot_at)
    if archive.path != relative:
        storage.delete(relative)  # a build that started later won; this one was never named
    return archive


def _publish_once(day, path, **values):
    try:
        return _publish(day, path, **values)
    except IntegrityError:
        # another build of the same day created the row first; now there is a row to lock
        return _publish(day, path, **values)


def _publish(day, path, *, size, sha256, file_count, built_at, temp_path=None):
    with transaction.atomic():
        # The row lock makes the move and the row change one step for concurrent builds.
        current = DayArchive.objects.select_for_update().filter(day=day).first()
        if current is not None and current.deleted_at is None and current.built_at > built_at:
            return current  # a build that started later has already finished
        archive = current or DayArchive(day=day)
        archive.path = path
        archive.size = size
        archive.sha256 = sha256
        archive.file_count = file_count
        archive.built_at = built_at
        archive.deleted_at = None
        archive.save()
        if temp_path is not None:
            storage.move_into_place(temp_path, archive.path, sha256=sha256)
    return archive


def archive_is_current(archive):
    since = archive.built_at - IN_FLIGHT_MARGIN
    # a recording deleted while the build ran may still be in it (recordings/lifecycle.py)
    return (
        archive.deleted_at is None
        and not day_files_stored_since(archive.day, since)
        and not day_recordings_deleted_since(archive.day, since)
    )


def archive_for_day(*, day):
    """The day's archive, built first when there is none, it was purged, or files were stored since."""
    archive = DayArchive.objects.filter(day=day).first()
    if archive is not None and archive_is_current(archive):
        return archive
    return archive_build(day=day)


def nightly_archive_build(*, today=None):
    """The 00:30 job: yesterday's archive, when the bulk-download licence is on. Returns it or None."""
    if not config.load().bulk_download:
        return None
    today = today or timezone.localdate()
    return archive_for_day(day=today - timedelta(days=1))


def day_export(*, day, out_dir):
    """Copy the day's stored files and manifest.csv into the folder out_dir; returns (files, bytes)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    count = total = 0
    with open(out_dir / MANIFEST_NAME, "w", newline="", encoding="utf-8") as manifest:
        rows = csv.writer(manifest)
        rows.writerow(MANIFEST_COLUMNS)
        for stored in day_files(day):
            try:
                storage.copy_out(stored.path, out_dir / stored.name)
            except FileNotFoundError:
                log.warning("export %s: %s is not in storage, left out", day, stored.path)
                continue
            rows.writerow(manifest_row(stored))
            count += 1
            total += stored.size
    return count, total
