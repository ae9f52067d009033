"""Building a day's archive: memory stays flat as the day grows, and the build is
about as fast as copying the same bytes.

Builds a 100 MB day (the reference) and a 1 GB day, each in a forked child whose
peak resident memory the kernel reports (ru_maxrss), and times a plain copy of the
1 GB day's files into one file for comparison.
"""

import os
import time
import zipfile
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import connections
from django.utils import timezone

from tests.perf.support import bench_database, media_root

FILE_SIZE = 256 * 1024
DAYS = {"100MB": (date(2026, 1, 1), 400), "1GB": (date(2026, 1, 2), 4000)}


def store_day(media, day, count):
    """`count` recordings of `day`, each with one 256 KiB file (its content does not matter here)."""
    from recordings.models import Recording, RecordingFile

    block = os.urandom(FILE_SIZE)
    folder = media / day.strftime("%Y/%m/%d")
    folder.mkdir(parents=True, exist_ok=True)
    start = timezone.make_aware(datetime.combine(day, datetime.min.time()))
    now = timezone.now()
    recordings = Recording.objects.bulk_create(
        Recording(request_id=f"{day:%Y%m%d}{n:012d}", unique_id=f"{day}.{n}",
                  started_at=start + timedelta(seconds=n * 10), caller="1", callee="2", side="SRC")
        for n in range(count)
    )
    files = []
    for n, recording in enumerate(recordings):
        name = f"{recording.request_id}.mp3"
        (folder / name).write_bytes(n.to_bytes(8, "big") + block[8:])
        files.append(RecordingFile(recording=recording, content_type="monaural", name=name,
                                   path=f"{day:%Y/%m/%d}/{name}", size=FILE_SIZE, sha256="0" * 64, duration=60.0,
                                   created_at=now))
    RecordingFile.objects.bulk_create(files)


def _status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field}")


def build_in_child(day):
    """(seconds, peak RSS in MiB, growth of RSS during the build in MiB) of archive_build in a forked child."""
    from recordings.archive import archive_build

    connections.close_all()  # the child opens its own connection
    read_end, write_end = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_end)
            rss_before = _status_kib("VmRSS")
            archive_build(day=day)
            os.write(write_end, f"{_status_kib('VmHWM') - rss_before}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    growth_kib = int(os.read(read_end, 64) or -1)
    os.close(read_end)
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"building {day} failed")
    return time.monotonic() - started, usage.ru_maxrss / 1024, growth_kib / 1024


def plain_copy_seconds(media, day):
    folder = media / day.strftime("%Y/%m/%d")
    started = time.monotonic()
    with open(media / "plain-copy.bin", "wb") as out:
        for path in sorted(folder.iterdir()):
            with open(path, "rb") as f:
                while chunk := f.read(1024 * 1024):
                    out.write(chunk)
    seconds = time.monotonic() - started
    (media / "plain-copy.bin").unlink()
    return seconds


def main():
    from recordings.models import DayArchive

    with bench_database(), media_root() as media:
        settings.MEDIA_ROOT = media
        results = {}
        for label, (day, count) in DAYS.items():
            store_day(media, day, count)
            results[label] = build_in_child(day)
            archive = DayArchive.objects.get(day=day)
            with zipfile.ZipFile(media / archive.path) as built:
                assert len(built.namelist()) == count + 1, "archive is missing files"
            seconds, peak, growth = results[label]
            print(f"archive {label}: {count} files, zip {archive.size / 2**20:.0f} MiB, built in {seconds:.1f} s, "
                  f"builder peak RSS {peak:.0f} MiB, of which {growth:.1f} MiB grown during the build")
        copy_seconds = plain_copy_seconds(media, DAYS["1GB"][0])
        print(f"archive peak RSS ratio (1 GB day / 100 MB day): {results['1GB'][1] / results['100MB'][1]:.2f}")
        print(f"archive RSS growth during the build: 1 GB day {results['1GB'][2]:.1f} MiB, "
              f"100 MB day {results['100MB'][2]:.1f} MiB")
        print(f"archive build time ratio (1 GB archive / plain copy of its files, {copy_seconds:.1f} s): "
              f"{results['1GB'][0] / copy_seconds:.2f}")
