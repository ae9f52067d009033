"""`archive`: the day's zip, resumable, checked against its ETag (the quoted SHA-256 of the
zip), every entry checked against manifest.csv, then unpacked into DIR."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import zipfile
from pathlib import Path

from biztel_client.api import ClientError
from biztel_client.progress import NO_PROGRESS
from biztel_client.transfer import CHUNK, download, file_sha256, plain_name, sha256_of_etag

MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ["filename", "request_id", "unique_id", "content_type", "bytes", "sha256", "duration"]


class ArchiveRefused(ClientError):
    """The zip is not what its manifest says (or not a zip): nothing of it is unpacked."""


def archive_name(day):
    return f"recordings-{day.isoformat()}.zip"


def archive_path(day):
    return f"public/api/v1/monitor/archive/{day.isoformat()}"


def manifest_rows(archive):
    """The manifest's rows, refused when its columns or its names are not the contract's."""
    try:
        text = archive.read(MANIFEST_NAME).decode("utf-8")
    except KeyError:
        raise ArchiveRefused(f"the archive has no {MANIFEST_NAME}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header != MANIFEST_COLUMNS:
        raise ArchiveRefused(f"{MANIFEST_NAME} has the columns {header}, not {MANIFEST_COLUMNS}")
    rows = [dict(zip(MANIFEST_COLUMNS, row)) for row in reader if row]
    for row in rows:
        if not plain_name(row["filename"]):
            raise ArchiveRefused(f"{MANIFEST_NAME} names {row['filename']!r}, which is not a plain file name")
    return rows


def unpack(zip_path, out):
    """Check every entry against manifest.csv, then move them all into `out`; returns the rows.
    Entries are written to `<name>.part` and checked first, so a bad zip leaves nothing behind."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveRefused(f"{Path(zip_path).name} is not a readable zip: {exc}") from None
    staged = []
    try:
        with archive:
            rows = manifest_rows(archive)
            listed = {row["filename"] for row in rows}
            entries = {info.filename for info in archive.infolist() if not info.is_dir()} - {MANIFEST_NAME}
            if entries != listed or len(rows) != len(listed):
                raise ArchiveRefused(
                    f"the zip and {MANIFEST_NAME} disagree: only in the zip {sorted(entries - listed)}, "
                    f"only in the manifest {sorted(listed - entries)}"
                )
            for row in rows:
                target = out / row["filename"]
                if target.is_file() and target.stat().st_size == int(row["bytes"]) \
                        and file_sha256(target).hexdigest() == row["sha256"]:
                    continue
                staged.append((extract_checked(archive, row, target.with_name(target.name + ".part")), target))
            manifest = out / (MANIFEST_NAME + ".part")
            manifest.write_bytes(archive.read(MANIFEST_NAME))
            staged.append((manifest, out / MANIFEST_NAME))
    except BaseException:
        for part, _ in staged:
            part.unlink(missing_ok=True)
        raise
    for part, target in staged:
        os.replace(part, target)
    return rows


def extract_checked(archive, row, part):
    digest, size = hashlib.sha256(), 0
    try:
        with archive.open(row["filename"]) as entry, open(part, "wb") as f:
            while chunk := entry.read(CHUNK):
                f.write(chunk)
                digest.update(chunk)
                size += len(chunk)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        part.unlink(missing_ok=True)
        raise ArchiveRefused(f"{row['filename']}: the zip entry cannot be read: {exc}") from None
    if size != int(row["bytes"]) or digest.hexdigest() != row["sha256"]:
        part.unlink(missing_ok=True)
        raise ArchiveRefused(
            f"{row['filename']}: {size} bytes with SHA-256 {digest.hexdigest()}, "
            f"the manifest says {row['bytes']} bytes with {row['sha256']}"
        )
    return part


def archive_day(client, *, day, out, progress_factory=None):
    """Fetch (or resume, or keep) DIR/recordings-<day>.zip, check it, unpack it; returns the manifest rows."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = archive_path(day)

    # The HEAD tells the archive's SHA-256 before any byte comes, so a kept zip is not fetched again
    # and a part of an older build of the day is recognised (it does not verify and is fetched anew).
    headers = client.head(path)
    etag, size = headers.get("ETag"), int(headers.get("Content-Length") or 0)
    sha256 = sha256_of_etag(etag)
    if sha256 is None:
        raise ClientError(f"the archive's ETag {etag!r} is not the SHA-256 it should be; cannot check it")
    progress = progress_factory() if progress_factory else NO_PROGRESS
    zip_path = out / archive_name(day)
    with progress:
        progress.add_total(files=1, nbytes=size)
        download(client, path, zip_path, sha256=sha256, size=size, etag=etag, progress=progress, follow_etag=True)
        progress.file_done()
    return unpack(zip_path, out)
