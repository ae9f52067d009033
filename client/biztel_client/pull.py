"""`pull`: every listed file of a day into DIR/YYYY/MM/DD/<name>; and one call's legs (for `receive`)."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Optional
from urllib.parse import quote, urlencode

from biztel_client.api import ApiError, ClientError, MonthlyLimitReached
from biztel_client.progress import NO_PROGRESS
from biztel_client.transfer import download, plain_name, sha256_of_etag

CONTENT_TYPES = ("monaural", "left", "right", "stereo")
CALL_CONTENT_TYPES = ("monaural", "left", "right")
FORMATS = ("mp3", "flac", "wav")
LISTING_PAGE_SIZE = 1000
_DISPOSITION = re.compile(r'filename="([^"]+)"')


@dataclass(frozen=True)
class Planned:
    request_id: str
    content_type: str
    name: str
    sha256: Optional[str]  # None for WAV: made while it is sent, so the listing has no hash of it
    size: Optional[int]


@dataclass
class Outcome:
    downloaded: list = field(default_factory=list)
    present: list = field(default_factory=list)
    failed: list = field(default_factory=list)  # (name, message)

    @property
    def verified(self):
        return len(self.downloaded) + len(self.present)


def listing(fetch, first_url):
    """Every recording of the listing, page after page until `next` is null."""
    url, seen = first_url, set()
    while url:
        if url in seen:
            raise ClientError(f"the listing sends the same page twice: {url}")
        seen.add(url)
        page = fetch(url)
        yield from page.get("results") or []
        url = page.get("next")


def name_in_format(name, fmt):
    return name if fmt == "mp3" else re.sub(r"\.mp3$", "", name) + f".{fmt}"


def planned_files(recordings, *, content_types, fmt="mp3"):
    """The files to fetch: each listed file that still exists, in the asked content types and format.
    A format whose lossless copy the listing does not show is not there to fetch."""
    for recording in recordings:
        files = recording.get("files") or {}
        for content_type in content_types:
            entry = files.get(content_type)
            if not entry or not entry.get("exists"):
                continue
            if fmt == "mp3":
                sha256, size = entry["sha256"], entry["bytes"]
            else:
                lossless = entry.get("lossless")
                if not lossless:
                    continue
                sha256, size = (lossless["sha256"], lossless["bytes"]) if fmt == "flac" else (None, None)
            yield Planned(recording["request_id"], content_type, name_in_format(entry["name"], fmt), sha256, size)


def file_path(recording_id, content_type, fmt="mp3"):
    query = {"content_type": content_type}
    if fmt != "mp3":
        query["format"] = fmt
    return f"public/api/v1/monitor/{quote(recording_id, safe='')}?{urlencode(query)}"


def day_folder(out, day):
    return Path(out) / f"{day.year:04d}" / f"{day.month:02d}" / f"{day.day:02d}"


def listing_path(day):
    return f"public/api/v1/monitor/?{urlencode({'date': day.isoformat(), 'page_size': LISTING_PAGE_SIZE})}"


def pull_day(client, *, day, out, content_types=CONTENT_TYPES, fmt="mp3", progress_factory=None, log=print):
    """Fetch the day; returns an Outcome. MonthlyLimitReached stops it; a file that fails is
    recorded and the others still come."""
    plan = list(planned_files(listing(client.get_json, listing_path(day)), content_types=content_types, fmt=fmt))
    folder = day_folder(out, day)
    outcome = Outcome()
    progress = progress_factory() if progress_factory else NO_PROGRESS
    with progress:
        progress.add_total(files=len(plan), nbytes=sum(p.size or 0 for p in plan))
        for item in plan:
            url = file_path(item.request_id, item.content_type, fmt)
            size, etag = item.size, None
            try:
                if fmt == "wav":
                    size, etag = wav_size_and_etag(client, url)
                    progress.add_total(nbytes=size)
                fetched = download(client, url, folder / item.name, sha256=item.sha256, size=size, etag=etag,
                                   etag_is_digest=fmt != "wav", progress=progress)
            except MonthlyLimitReached:
                raise
            except ApiError as exc:
                if exc.status == 401:
                    raise  # the token, not this file: every other file would fail the same way
                outcome.failed.append((item.name, str(exc)))
                log(f"{item.name}: {exc}")
            except ClientError as exc:
                outcome.failed.append((item.name, str(exc)))
                log(f"{item.name}: {exc}")
            else:
                (outcome.downloaded if fetched else outcome.present).append(folder / item.name)
            progress.file_done()
    return outcome


def wav_size_and_etag(client, url):
    """A WAV is made from the lossless copy while it is sent: its length (and ETag) come from a HEAD."""
    headers = client.head(url)
    return int(headers.get("Content-Length") or 0), headers.get("ETag")


def disposition_name(header):
    """The file name of `attachment; filename="…"`, refused when it is not a plain name."""
    match = _DISPOSITION.search(header or "")
    name = match.group(1) if match else ""
    if not plain_name(name):
        raise ClientError(f"the server names the file {name!r}, which is not a plain file name")
    return name


def folder_of_name(out, name):
    """DIR/YYYY/MM/DD of a file named `<yyyymmddhhmmss>-…` (SPEC §2.2); DIR itself otherwise."""
    try:
        return day_folder(out, date(int(name[0:4]), int(name[4:6]), int(name[6:8])))
    except ValueError:
        return Path(out)


def pull_call(client, *, recording_id, out, content_types=CALL_CONTENT_TYPES):
    """Fetch one call's files by its ID; returns {content_type: path or None (that leg is not there)}."""
    paths = {}
    for content_type in content_types:
        url = file_path(recording_id, content_type)
        try:
            first = client.retrying(lambda: client.send("GET", url, stream=True), what=f"GET {url}")
        except ApiError as exc:
            if exc.status in (403, 404):
                paths[content_type] = None  # never produced, purged, or the separation licence is off
                continue
            raise
        try:
            name = disposition_name(first.headers.get("Content-Disposition"))
        except ClientError:
            first.close()
            raise
        length = first.headers.get("Content-Length")
        dest = folder_of_name(out, name) / name
        download(client, url, dest, sha256=sha256_of_etag(first.headers.get("ETag")),
                 size=int(length) if length and length.isdigit() else None, first=first)
        paths[content_type] = dest
    return paths


def stderr_log(message):
    print(f"biztel-client: {message}", file=sys.stderr)
