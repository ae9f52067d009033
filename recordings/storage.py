"""The only module that touches stored bytes (SPEC.md §9).

STORAGE_URL chooses where they live: the disk (unset: MEDIA_ROOT; `file:///path`) or an
S3-compatible bucket (`s3://bucket[/prefix]`, through django-storages and boto3). Both are
behind the same few operations on relative paths (`YYYY/MM/DD/<name>`, `archives/…`):
move_into_place (write a prepared temporary file in, durably), open_for_read (a seekable
read-only binary file; ranged GETs on a bucket, so nothing is read whole), delete, exists,
listing (path and age), copy_out, size_and_hash, and accel_redirect for nginx; on a bucket
also object_writer (an object written as a stream, for archives).

Temporary files are always local, in `<local root>/.incoming` (the disk's root, or MEDIA_ROOT
beside a bucket): the encoder writes there, uploads are copied there, archives are built there.
"""

import errno
import functools
import hashlib
import io
import mimetypes
import os
import shutil
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile, UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, TemporaryFileUploadHandler

INCOMING = ".incoming"
CHUNK = 1024 * 1024
# What the purge sweeps: temporary files a killed process left, and stored files no row
# names (a crash between the upload and the commit), once they are this old.
DEBRIS_AGE_SECONDS = 3600
# How long a presigned URL handed to nginx stays valid; nginx starts the request at once.
PRESIGNED_SECONDS = 60
# Parts of an object written as a stream (archives); S3 wants at least 5 MiB but the last.
PART_SIZE = 8 * 1024 * 1024


class StorageError(OSError):
    """The store refused or could not be reached; callers that handle OSError handle this."""


class Disk:
    kind = "disk"

    def __init__(self, root):
        self.root = Path(root)

    def path(self, relative):
        return self.root / relative

    def put(self, temp_path, relative, sha256=None):
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Durable before the row that names it commits: the bytes, then the rename.
        with open(temp_path, "rb") as f:
            os.fsync(f.fileno())
        try:
            os.replace(temp_path, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # Prepared on another file system (storage_copy to a disk mounted elsewhere).
            self._copy_in(temp_path, target)
        _fsync_folder(target.parent)

    @staticmethod
    def _copy_in(temp_path, target):
        """Copy into a temporary file beside the target, then rename it over: the target is
        never half-written."""
        fd, beside = tempfile.mkstemp(suffix=".part", dir=target.parent)
        try:
            with open(temp_path, "rb") as source, os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
            shutil.copymode(temp_path, beside)
            os.replace(beside, target)
        except BaseException:
            Path(beside).unlink(missing_ok=True)
            raise
        Path(temp_path).unlink()

    def open_for_read(self, relative, offset=0, length=None):
        f = open(self.path(relative), "rb")
        if offset:
            f.seek(offset)
        return f

    def exists(self, relative):
        return self.path(relative).is_file()

    def delete(self, relative):
        self.path(relative).unlink(missing_ok=True)

    def listing(self):
        for folder, folders, files in os.walk(self.root):
            if Path(folder) == self.root and INCOMING in folders:
                folders.remove(INCOMING)
            for name in files:
                path = Path(folder) / name
                try:
                    modified = path.stat().st_mtime
                except FileNotFoundError:
                    continue
                yield path.relative_to(self.root).as_posix(), datetime.fromtimestamp(modified, timezone.utc)

    def copy_out(self, relative, destination):
        shutil.copyfile(self.path(relative), destination)

    def holds(self, relative, size, sha256):
        path = self.path(relative)
        return path.is_file() and path.stat().st_size == size and hash_file(path) == (size, sha256)


def _fsync_folder(folder):
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Bucket:
    """An S3-compatible bucket: django-storages' S3Storage holds the configuration (client and
    transfer settings, object parameters); one boto3 client made from it does the requests."""

    kind = "s3"

    def __init__(self, *, bucket, prefix, endpoint_url, access_key, secret_key, region, sse, kms_key_id):
        from botocore.config import Config
        from storages.backends.s3 import S3Storage

        parameters = {}
        if sse:
            parameters["ServerSideEncryption"] = sse
        if kms_key_id:
            parameters["SSEKMSKeyId"] = kms_key_id
        self.bucket = bucket
        self.prefix = prefix
        self.s3 = S3Storage(
            bucket_name=bucket,
            location=prefix,
            endpoint_url=endpoint_url or None,
            access_key=access_key or None,
            secret_key=secret_key or None,
            region_name=region or None,
            object_parameters=parameters,
            client_config=Config(
                # a custom endpoint (MinIO, Ceph RGW, moto) is addressed by path: /bucket/key
                s3={"addressing_style": "path" if endpoint_url else None},
                signature_version="s3v4",
                # A CRC32 of every download would cost about 40% of the relay's CPU; each file's
                # SHA-256 is in its row (and its ETag), and storage_copy checks it.
                response_checksum_validation="when_required",
            ),
            file_overwrite=True,
            default_acl=None,
            querystring_expire=PRESIGNED_SECONDS,
        )

    @functools.cached_property
    def client(self):
        # One client per process: botocore clients are thread-safe, and making one (what
        # django-storages does per thread) costs about a second of CPU and tens of MB.
        return self.s3._create_session().client(
            "s3", region_name=self.s3.region_name, endpoint_url=self.s3.endpoint_url, use_ssl=self.s3.use_ssl,
            verify=self.s3.verify, config=self.s3.client_config,
        )

    def key(self, relative):
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def put(self, temp_path, relative, sha256=None):
        extra = {**self.s3.get_object_parameters(relative), "ContentType": content_type_of(relative)}
        if sha256:
            extra["Metadata"] = {"sha256": sha256}
        try:
            # upload_file sends large files in parts (multipart) and gives up cleanly on failure.
            self.client.upload_file(
                str(temp_path), self.bucket, self.key(relative), ExtraArgs=extra, Config=self.s3.transfer_config
            )
        except Exception as exc:
            raise StorageError(f"cannot upload {relative}: {exc}") from exc
        Path(temp_path).unlink(missing_ok=True)

    def open_for_read(self, relative, offset=0, length=None):
        return ObjectReader(self, relative, offset, length)

    def head(self, relative):
        """The object's HEAD answer, or None when there is no such object."""
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.key(relative))
        except Exception as exc:
            if _status(exc) == 404:
                return None
            raise StorageError(f"cannot read {relative}: {exc}") from exc

    def exists(self, relative):
        return self.head(relative) is not None

    def check(self):
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise StorageError(f"cannot reach the bucket: {exc}") from exc

    def delete(self, relative):
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key(relative))
        except Exception as exc:
            if _status(exc) != 404:
                raise StorageError(f"cannot delete {relative}: {exc}") from exc

    def listing(self):
        start = f"{self.prefix}/" if self.prefix else ""
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start):
                for entry in page.get("Contents", ()):
                    yield entry["Key"][len(start):], entry["LastModified"]
        except Exception as exc:
            raise StorageError(f"cannot list the bucket: {exc}") from exc

    def copy_out(self, relative, destination):
        with self.open_for_read(relative) as source, open(destination, "wb") as out:
            shutil.copyfileobj(source, out, CHUNK)

    def holds(self, relative, size, sha256):
        head = self.head(relative)
        if head is None or head["ContentLength"] != size:
            return False
        if head.get("Metadata", {}).get("sha256") == sha256:
            return True
        with self.open_for_read(relative) as f:
            return _hash_stream(f) == (size, sha256)

    def presigned_url(self, relative, content_type):
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.key(relative), "ResponseContentType": content_type},
            ExpiresIn=PRESIGNED_SECONDS,
        )


class ObjectWriter(io.RawIOBase):
    """A new object written as a stream: a multipart upload whose parts go out as they fill,
    so memory holds one part whatever the size. Completed by complete(), dropped by abort()."""

    def __init__(self, bucket, relative):
        super().__init__()
        self._bucket = bucket
        self._key = bucket.key(relative)
        self._buffer = bytearray()
        self._parts = []
        self._digest = hashlib.sha256()
        self.size = 0
        extra = {**bucket.s3.get_object_parameters(relative), "ContentType": content_type_of(relative)}
        self._upload_id = self._call("create_multipart_upload", **extra)["UploadId"]

    def _call(self, operation, **arguments):
        try:
            return getattr(self._bucket.client, operation)(Bucket=self._bucket.bucket, Key=self._key, **arguments)
        except Exception as exc:
            raise StorageError(f"cannot write {self._key}: {exc}") from exc

    def writable(self):
        return True

    def write(self, data):
        self._buffer += data
        self._digest.update(data)
        self.size += len(data)
        if len(self._buffer) >= PART_SIZE:
            self._send_part()
        return len(data)

    def _send_part(self):
        number = len(self._parts) + 1
        answer = self._call("upload_part", UploadId=self._upload_id, PartNumber=number, Body=bytes(self._buffer))
        self._parts.append({"ETag": answer["ETag"], "PartNumber": number})
        self._buffer.clear()

    @property
    def sha256(self):
        return self._digest.hexdigest()

    def complete(self):
        if self._buffer or not self._parts:
            self._send_part()
        self._call("complete_multipart_upload", UploadId=self._upload_id, MultipartUpload={"Parts": self._parts})

    def abort(self):
        self._call("abort_multipart_upload", UploadId=self._upload_id)


def _status(exc):
    response = getattr(exc, "response", None) or {}
    code = response.get("Error", {}).get("Code", "")
    if code in ("NoSuchKey", "404", "NotFound"):
        return 404
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode")


class ObjectReader(io.RawIOBase):
    """A stored object as a seekable, read-only binary file. Each run of reads is one ranged
    GET streamed from the store; seeking elsewhere starts another at the next read. With
    `length`, the reads end `length` bytes after `offset` (one exact range, for a download)."""

    def __init__(self, bucket, relative, offset=0, length=None):
        super().__init__()
        self._bucket = bucket
        self._relative = relative
        self._pos = offset
        self._end = None if length is None else offset + length
        self._body = None
        self._body_pos = offset  # where the open GET's stream is
        self.size = None
        # The first GET happens now, so a missing object is FileNotFoundError at open, as on disk.
        self._start()

    def _start(self):
        arguments = {"Bucket": self._bucket.bucket, "Key": self._bucket.key(self._relative)}
        if self._end is not None and self._pos >= self._end:
            return
        if self._end is not None:
            arguments["Range"] = f"bytes={self._pos}-{self._end - 1}"
        elif self._pos:
            arguments["Range"] = f"bytes={self._pos}-"
        try:
            answer = self._bucket.client.get_object(**arguments)
        except Exception as exc:
            status = _status(exc)
            if status == 404:
                raise FileNotFoundError(f"not in storage: {self._relative}") from None
            if status == 416:  # at or past the end
                head = self._bucket.head(self._relative)
                if head is None:
                    raise FileNotFoundError(f"not in storage: {self._relative}") from None
                self.size = head["ContentLength"]
                return
            raise StorageError(f"cannot read {self._relative}: {exc}") from exc
        content_range = answer.get("ContentRange")
        self.size = int(content_range.rsplit("/", 1)[1]) if content_range else answer["ContentLength"]
        self._body = answer["Body"]
        self._body_pos = self._pos

    def readable(self):
        return True

    def seekable(self):
        return True

    def read(self, size=-1):
        if self._pos >= (self._end if self._end is not None else self.size):
            return b""
        if self._body is not None and self._body_pos != self._pos:
            self._drop_body()  # seeked away since: another GET from here
        if self._body is None:
            self._start()
            if self._body is None:
                return b""
        try:
            data = self._body.read(None if size is None or size < 0 else size)
        except Exception as exc:
            raise StorageError(f"cannot read {self._relative}: {exc}") from exc
        self._pos += len(data)
        self._body_pos = self._pos
        return data

    def readall(self):
        return self.read(-1)

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset, whence=io.SEEK_SET):
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence == io.SEEK_END:
            offset += self.size
        if offset < 0:
            raise ValueError("negative seek position")
        # Only moved: the stream is kept, so a seek there and back (FileResponse measuring
        # the length) costs no second GET.
        self._pos = offset
        return self._pos

    def tell(self):
        return self._pos

    def _drop_body(self):
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self):
        self._drop_body()
        super().close()


@functools.lru_cache(maxsize=8)
def _backend(storage_url, media_root, endpoint_url, access_key, secret_key, region, sse, kms_key_id):
    parts = urlsplit(storage_url)
    if parts.scheme == "s3":
        return Bucket(
            bucket=parts.netloc, prefix=parts.path.strip("/"), endpoint_url=endpoint_url, access_key=access_key,
            secret_key=secret_key, region=region, sse=sse, kms_key_id=kms_key_id,
        )
    return Disk(parts.path if parts.scheme == "file" else media_root)


def backend():
    """The storage in force, per the settings of the moment (tests switch them)."""
    return backend_for_url(settings.STORAGE_URL)


def backend_for_url(storage_url):
    """The storage at this URL with this installation's S3 settings (storage_copy --to)."""
    return _backend(
        storage_url, str(settings.MEDIA_ROOT), settings.AWS_S3_ENDPOINT_URL, settings.AWS_ACCESS_KEY_ID,
        settings.AWS_SECRET_ACCESS_KEY, settings.AWS_S3_REGION_NAME, settings.STORAGE_S3_SSE,
        settings.STORAGE_S3_KMS_KEY_ID,
    )


def is_bucket():
    return backend().kind == "s3"


def root():
    """The local root: the disk's, or MEDIA_ROOT beside a bucket (temporary files only)."""
    store = backend()
    return store.root if store.kind == "disk" else Path(settings.MEDIA_ROOT)


def full_path(relative):
    """Disk only: the absolute path of a stored file."""
    store = backend()
    if store.kind != "disk":
        raise RuntimeError("full_path() is for the disk; use open_for_read()")
    return store.path(relative)


def content_type_of(relative):
    return mimetypes.guess_type(relative)[0] or "application/octet-stream"


def open_for_read(relative, offset=0, length=None):
    """A read-only, seekable binary file positioned at `offset` (from a bucket, with `length`,
    reads stop that many bytes on); FileNotFoundError when it is not stored."""
    return backend().open_for_read(relative, offset, length)


def exists(relative):
    return backend().exists(relative)


def incoming_folder():
    folder = root() / INCOMING
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def new_temp_path(suffix=".part"):
    """A fresh local temporary file (on the disk's file system, so moving it in is atomic)."""
    fd, name = tempfile.mkstemp(suffix=suffix, dir=incoming_folder())
    os.close(fd)
    # mkstemp makes it private; stored recordings are read by nginx too (deploy/).
    os.chmod(name, 0o644)
    return Path(name)


class IncomingUploadedFile(TemporaryUploadedFile):
    """Django's temporary copy of an upload, kept in .incoming (recordings/ingest_views.py)."""

    def __init__(self, name, content_type, size, charset, content_type_extra=None):
        file = tempfile.NamedTemporaryFile(suffix=".upload" + os.path.splitext(name)[1], dir=incoming_folder())
        UploadedFile.__init__(self, file, name, content_type, size, charset, content_type_extra)


class IncomingUploadHandler(TemporaryFileUploadHandler):
    def new_file(self, *args, **kwargs):
        FileUploadHandler.new_file(self, *args, **kwargs)
        self.file = IncomingUploadedFile(self.file_name, self.content_type, 0, self.charset, self.content_type_extra)


def copy_to_temp(source):
    """Copy a file-like object into a temporary file; returns (path, size, sha256)."""
    path = new_temp_path()
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "wb") as out:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except BaseException:
        discard(path)
        raise
    return path, size, digest.hexdigest()


def hash_file(path):
    """(size, sha256) of a local file."""
    with open(path, "rb") as f:
        return _hash_stream(f)


def _hash_stream(f):
    digest = hashlib.sha256()
    size = 0
    while chunk := f.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def size_and_hash(relative):
    """(size, sha256) of a stored file, read as a stream."""
    with open_for_read(relative) as f:
        return _hash_stream(f)


def move_into_place(temp_path, relative, sha256=None):
    """Store a prepared temporary file under `relative`, durably (fsync on disk; on a bucket
    the upload has completed). The temporary file is gone afterwards."""
    backend().put(temp_path, relative, sha256)


def discard(path):
    Path(path).unlink(missing_ok=True)


def delete(relative):
    """Delete a stored file; a file already gone counts as deleted. OSError when the storage fails."""
    backend().delete(relative)


def copy_out(relative, destination):
    backend().copy_out(relative, destination)


def open_new_temp(suffix=".part"):
    """(path, binary file open for writing) of a fresh temporary file; move it in with move_into_place."""
    path = new_temp_path(suffix)
    return path, open(path, "wb")


def check():
    """Raise OSError when no file could be stored now (GET /readyz): this node's temporary
    folder takes a file, and a bucket answers."""
    discard(new_temp_path(suffix=".check"))
    store = backend()
    if store.kind == "s3":
        store.check()
def copy_to(target, relative, *, size, sha256):
    """Copy one stored file from the storage in force to `target` (another backend), checking
    its bytes against the row's size and SHA-256. Returns False when the target already holds
    exactly those bytes, True when copied; StorageError when the source does not match."""
    if target.holds(relative, size, sha256):
        return False
    with open_for_read(relative) as source:
        temp_path, copied, copied_sha256 = copy_to_temp(source)
    try:
        if (copied, copied_sha256) != (size, sha256):
            raise StorageError(f"{relative} does not match its row (SHA-256 or size differs); not copied")
        # each file goes in whole (a rename, or one upload), so an interrupted copy leaves none half-written
        target.put(temp_path, relative, sha256)
    finally:
        discard(temp_path)
    return True


@contextmanager
def object_writer(relative):
    """Bucket only: a binary file open for writing that becomes the object `relative` when the
    block ends (and nothing when it raises). Its .size and .sha256 are known afterwards."""
    store = backend()
    if store.kind != "s3":
        raise RuntimeError("object_writer() is for a bucket; on the disk use open_new_temp()")
    writer = ObjectWriter(store, relative)
    try:
        yield writer
    except BaseException:
        writer.abort()
        raise
    writer.complete()


def listing():
    """(relative path, last modified) of everything stored (temporary files excluded)."""
    return backend().listing()


def accel_redirect(relative, *, prefix, content_type):
    """Where nginx fetches the bytes from (X-Accel-Redirect, deploy/nginx.conf): the disk's
    internal location, or /_s3/ followed by the path and query of a presigned URL."""
    store = backend()
    if store.kind == "disk":
        return prefix + relative
    url = urlsplit(store.presigned_url(relative, content_type))
    return f"/_s3{url.path}?{url.query}"


def debris_remove(*, before, report=None):
    """Delete this node's temporary files (encoder output, upload copies, archives being built)
    last written before `before` (a datetime): what a killed process left. Returns how many."""
    folder = root() / INCOMING
    if not folder.is_dir():
        return 0
    cutoff = before.timestamp()
    removed = 0
    for path in folder.iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
                if report:
                    report("deleted debris", f"{INCOMING}/{path.name}", None)
        except FileNotFoundError:
            continue
    return removed
