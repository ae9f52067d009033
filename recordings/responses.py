"""Answer a download: conditional requests, byte ranges, streaming (RFC 9110).

The body is never read whole: the open file goes to the WSGI server, which
sends it with sendfile(2) where it can; a range is a bounded view of the file (from
a bucket: one GET, ranged for a range, streamed through). Behind nginx (DOWNLOAD_ACCEL_REDIRECT_PREFIX
set) the bytes are sent by nginx, from the disk or from a presigned URL of the object.
"""

import re
from email.utils import parsedate_to_datetime

from django.conf import settings
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.utils.http import http_date, quote_etag

from biztel.errors import ApiError
from recordings import storage

_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
# Longer than any file size: a bigger number is read as this (int() of thousands of digits fails).
_HUGE = 10**19
STREAM_BLOCK = 1024 * 1024


def _offset(digits):
    return int(digits) if len(digits) < 19 else _HUGE


class RangeNotSatisfiable(ApiError):
    status = 416
    name = "RangeNotSatisfiableException"
    type = "RANGE_NOT_SATISFIABLE"
    message = "Requested range not satisfiable."


class BoundedFile:
    """Reads stop `length` bytes after the current offset; fileno() keeps sendfile possible
    (gunicorn limits sendfile to Content-Length)."""

    def __init__(self, f, length):
        self._f = f
        self._left = length

    def read(self, size=-1):
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._f.read(size)
        self._left -= len(data)
        return data

    def fileno(self):
        return self._f.fileno()

    def seek(self, *args):
        return self._f.seek(*args)

    def tell(self):
        return self._f.tell()

    def close(self):
        self._f.close()


def parse_range(header, size):
    """(start, end) inclusive for one satisfiable range, None to send everything;
    raises RangeNotSatisfiable. Several ranges are answered with the whole file."""
    match = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if not match:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = _offset(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
        return max(0, size - suffix), size - 1
    start = _offset(first)
    end = min(_offset(last), size - 1) if last else size - 1
    if start >= size or (last and _offset(last) < start):
        raise RangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return start, end


def _not_modified(request, etag, modified):
    if_none_match = request.META.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:
        tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
        return "*" in tags or etag in tags
    if_modified_since = request.META.get("HTTP_IF_MODIFIED_SINCE")
    if if_modified_since:
        try:
            return int(modified.timestamp()) <= parsedate_to_datetime(if_modified_since).timestamp()
        except (TypeError, ValueError, OverflowError, IndexError):
            return False
    return False


def _range_applies(request, etag, modified):
    if_range = request.META.get("HTTP_IF_RANGE")
    if not if_range:
        return True
    if_range = if_range.strip()
    if if_range.startswith('"'):
        return if_range == etag  # strong comparison
    try:
        return int(modified.timestamp()) == parsedate_to_datetime(if_range).timestamp()
    except (TypeError, ValueError, OverflowError, IndexError):
        return False


def _set_headers(response, headers):
    for name, value in headers.items():
        response[name] = value


def opens_the_file(request):
    """Whether file_response will open the stored file itself (so a missing one raises
    FileNotFoundError): not for HEAD, a conditional request it may answer 304, or nginx
    sending the bytes."""
    meta = request.META
    return (
        request.method == "GET"
        and not settings.DOWNLOAD_ACCEL_REDIRECT_PREFIX
        and "HTTP_IF_NONE_MATCH" not in meta
        and "HTTP_IF_MODIFIED_SINCE" not in meta
    )


def _validators(etag, modified):
    """The headers every answer about a file carries, 304 included."""
    return {
        "ETag": etag,
        "Last-Modified": http_date(modified.timestamp()),
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-transform",
    }


def _not_modified_response(headers):
    response = HttpResponse(status=304)
    _set_headers(response, headers)
    return response


def _requested_span(request, etag, modified, size):
    """(start, end) inclusive when one satisfiable range applies, None for the whole body."""
    range_header = request.META.get("HTTP_RANGE")
    if range_header and _range_applies(request, etag, modified):
        return parse_range(range_header, size)
    return None


def _describe(response, headers, *, name, size, span, length):
    _set_headers(response, headers)
    response["Content-Length"] = str(length)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    if span:
        response["Content-Range"] = f"bytes {span[0]}-{span[1]}/{size}"
    return response


def file_response(request, *, relative_path, name, size, sha256, modified, content_type="audio/mpeg"):
    etag = quote_etag(sha256)
    headers = _validators(etag, modified)
    if _not_modified(request, etag, modified):
        return _not_modified_response(headers)

    span = _requested_span(request, etag, modified, size)
    start, end = span or (0, size - 1)
    length = end - start + 1 if size else 0

    if request.method == "HEAD" or settings.DOWNLOAD_ACCEL_REDIRECT_PREFIX:
        response = HttpResponse(status=206 if span else 200, content_type=content_type)
        if request.method != "HEAD":
            # nginx sends the bytes (and answers the Range itself) from its internal location;
            # from a bucket it asks the store for the range decided here (deploy/nginx.conf).
            response["X-Accel-Redirect"] = storage.accel_redirect(
                relative_path, prefix=settings.DOWNLOAD_ACCEL_REDIRECT_PREFIX, content_type=content_type
            )
            if span and storage.is_bucket():
                response["X-Biztel-Range"] = f"bytes={start}-{end}"
    else:
        # A whole file is one plain GET: a ranged one costs some stores a copy of the object.
        f = storage.open_for_read(relative_path, start, length if span else None)
        response = FileResponse(BoundedFile(f, length), status=206 if span else 200, content_type=content_type)
        if storage.is_bucket():
            # no sendfile from a bucket: larger reads than FileResponse's 4 KiB keep the copy cheap
            response.block_size = STREAM_BLOCK
    _describe(response, headers, name=name, size=size, span=span, length=length)
    if "X-Accel-Redirect" in response:
        # nginx adds its own Accept-Ranges to the file it sends; ours would be a second copy.
        del response["Accept-Ranges"]
    return response


class _Body:
    """A streamed body that releases what it reads from when the server is done with it
    (Django calls close() whether or not the body was read to its end)."""

    def __init__(self, chunks, close):
        self._chunks = chunks
        self.close = close

    def __iter__(self):
        return iter(self._chunks)


def streamed_response(request, *, name, etag, modified, content_type, open_body):
    """Like file_response, for a body made while it is sent (no stored file, so never sent by
    nginx). open_body() opens what the body is made from, only when it is needed (not for a
    304), and returns (size, chunks, close): chunks(start, end) yields bytes start..end
    inclusive of a body of exactly `size` bytes; close() releases what it reads from, and is
    called whatever happens."""
    etag = quote_etag(etag)
    headers = _validators(etag, modified)
    if _not_modified(request, etag, modified):
        return _not_modified_response(headers)
    size, chunks, close = open_body()
    try:
        span = _requested_span(request, etag, modified, size)
    except BaseException:
        close()
        raise
    start, end = span or (0, size - 1)
    status = 206 if span else 200
    if request.method == "HEAD":
        close()
        response = HttpResponse(status=status, content_type=content_type)
    else:
        response = StreamingHttpResponse(_Body(chunks(start, end), close), status=status, content_type=content_type)
    return _describe(response, headers, name=name, size=size, span=span, length=end - start + 1)
