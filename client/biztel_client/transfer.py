"""Fetching one file safely: into `<name>.part`, resumed with Range and If-Range, checked
(SHA-256 when it is known, else the length) and only then renamed into place."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import requests

from biztel_client.api import ApiError, ClientError, Transient
from biztel_client.progress import NO_PROGRESS

CHUNK = 64 * 1024
# Small network reads: when a connection breaks, the bytes of the read under way are lost
# (urllib3 raises instead of returning them), and what came before is kept in the part.
NET_CHUNK = 16 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


def plain_name(name):
    """A file name the server may choose: no folder, not hidden, no NUL."""
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".") and "\x00" not in name


def file_sha256(path, limit=None):
    """The SHA-256 of a file (of its first `limit` bytes), read in chunks."""
    digest = hashlib.sha256()
    left = limit
    with open(path, "rb") as f:
        while left is None or left > 0:
            chunk = f.read(CHUNK if left is None else min(CHUNK, left))
            if not chunk:
                break
            digest.update(chunk)
            if left is not None:
                left -= len(chunk)
    return digest


def sha256_of_etag(etag):
    """The server's ETag is the quoted SHA-256 of the bytes; None for anything else (weak, absent)."""
    value = (etag or "").strip()
    if value.startswith('"') and value.endswith('"') and _SHA256.fullmatch(value[1:-1]):
        return value[1:-1]
    return None


def part_path(dest):
    return dest.with_name(dest.name + ".part")


def resume_offset(part_size, expected_size):
    """Where a download continues: after what the part holds, unless the part cannot be
    the beginning of the file (longer than the file)."""
    if part_size <= 0 or (expected_size is not None and part_size > expected_size):
        return 0
    return part_size


def content_range(header):
    """(start, total) of a `bytes a-b/total` Content-Range, or None."""
    match = _CONTENT_RANGE.fullmatch((header or "").strip())
    return (int(match.group(1)), int(match.group(3))) if match else None


def already_there(dest, *, sha256=None, size=None):
    if not dest.is_file():
        return False
    if sha256:
        return file_sha256(dest).hexdigest() == sha256
    return size is not None and dest.stat().st_size == size


class _Download:
    def __init__(self, client, url, dest, *, sha256, size, etag, progress, first, follow_etag=False,
                 etag_is_digest=True):
        self.client, self.url, self.dest = client, url, dest
        self.part = part_path(dest)
        self.sha256, self.size = sha256, size
        self.etag = etag or (f'"{sha256}"' if sha256 else None)
        self.progress = progress
        self.first = first  # an answer already open (receive), used when nothing is to be resumed
        self.restarted = False
        # the archive: a day still receiving calls is rebuilt between requests, so a whole answer's
        # own ETag (its SHA-256) is what its bytes are checked against
        self.follow_etag = follow_etag
        # a WAV is made while it is sent: its ETag names it but is no digest of its bytes
        self.etag_is_digest = etag_is_digest

    def discard_part(self):
        if self.part.exists():
            self.progress.add_bytes(-self.part.stat().st_size)
            self.part.unlink()

    def attempt(self):
        held = self.part.stat().st_size if self.part.exists() else 0
        offset = resume_offset(held, self.size)
        if offset == 0 and held:
            self.discard_part()
        if offset and offset == self.size:
            if self.first is not None:
                self.first.close()
                self.first = None
            return self.finish(file_sha256(self.part), resumed=True)  # complete, but never verified
        response, self.first = self.first, None
        if response is not None and offset:
            response.close()
            response = None
        if response is None:
            headers = {}
            if offset and self.etag:
                headers = {"Range": f"bytes={offset}-", "If-Range": self.etag}
            elif offset:
                self.discard_part()  # nothing to tell the server which bytes the part holds
                offset = 0
            try:
                response = self.client.send("GET", self.url, headers=headers, stream=True, ok=(200, 206))
            except ApiError as exc:
                if exc.status == 416 and offset:
                    self.discard_part()
                    raise Transient("the part is not a beginning of the file; starting again") from None
                raise
        with response:
            total = self.read_headers(response, offset)
            if response.status_code == 200 and offset:
                self.discard_part()  # If-Range did not match: the whole file comes
                offset = 0
            digest = file_sha256(self.part, limit=offset) if offset else hashlib.sha256()
            with open(self.part, "r+b" if offset else "wb") as out:
                out.seek(offset)
                out.truncate()
                try:
                    for chunk in response.iter_content(NET_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        self.progress.add_bytes(len(chunk))
                except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                    raise Transient(f"{self.dest.name}: the connection broke after {out.tell()} bytes: {exc}") from None
                finally:
                    out.flush()
                    os.fsync(out.fileno())
                written = out.tell()
            if total is not None and written != total:
                raise Transient(f"{self.dest.name}: {written} of {total} bytes arrived")
        return self.finish(digest, resumed=offset > 0)

    def read_headers(self, response, offset):
        """Learn what the listing did not say; returns the file's full size when known."""
        if self.follow_etag and response.status_code == 200:
            self.sha256 = sha256_of_etag(response.headers.get("ETag"))
            if self.sha256 is None:
                raise ClientError(f"{self.dest.name}: the ETag {response.headers.get('ETag')!r} is not a SHA-256")
            self.etag, self.size = response.headers["ETag"], None
        if self.etag is None:
            self.etag = response.headers.get("ETag")
        if self.sha256 is None and self.etag_is_digest:
            self.sha256 = sha256_of_etag(response.headers.get("ETag"))
        if response.status_code == 206:
            span = content_range(response.headers.get("Content-Range"))
            if span is None or span[0] != offset:
                self.discard_part()
                raise Transient(f"{self.dest.name}: the range answer does not continue the part")
            total = span[1]
        else:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if self.size is None:
            self.size = total
        elif total is not None and total != self.size:
            raise ClientError(f"{self.dest.name}: the server sends {total} bytes, the listing says {self.size}")
        return total

    def finish(self, digest, *, resumed):
        got = digest.hexdigest()
        if self.sha256 and got != self.sha256:
            self.discard_part()
            if resumed and not self.restarted:
                self.restarted = True
                raise Transient(f"{self.dest.name}: the resumed file did not verify; starting again")
            raise ClientError(f"{self.dest.name}: SHA-256 {got} is not the expected {self.sha256}")
        os.replace(self.part, self.dest)
        return True


def download(client, url, dest, *, sha256=None, size=None, etag=None, progress=NO_PROGRESS, first=None,
             follow_etag=False, etag_is_digest=True):
    """Fetch url into dest. Returns True when it was fetched, False when dest already had the
    right content. Without sha256 the file is checked by its length (and by the answer's ETag
    when that is a SHA-256)."""
    dest = Path(dest)
    if already_there(dest, sha256=sha256, size=size):
        if first is not None:
            first.close()
        progress.add_bytes(dest.stat().st_size)
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    job = _Download(client, url, dest, sha256=sha256, size=size, etag=etag, progress=progress, first=first,
                    follow_etag=follow_etag, etag_is_digest=etag_is_digest)
    if job.part.exists():
        progress.add_bytes(job.part.stat().st_size)  # what an earlier run fetched counts as done
    return client.retrying(job.attempt, what=dest.name)
