"""The only module that touches the recordings on disk (under MEDIA_ROOT)."""

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from django.conf import settings

INCOMING = ".incoming"
CHUNK = 1024 * 1024


def root():
    return Path(settings.MEDIA_ROOT)


def full_path(relative):
    return root() / relative


def open_for_read(relative):
    return open(full_path(relative), "rb")


def exists(relative):
    return full_path(relative).is_file()


def new_temp_path(suffix=".part"):
    """A fresh temporary file on the same file system as the stored files, so moving it in is atomic."""
    folder = root() / INCOMING
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(suffix=suffix, dir=folder)
    os.close(fd)
    # mkstemp makes it private; stored recordings are read by nginx too (deploy/).
    os.chmod(name, 0o644)
    return Path(name)


def copy_to_temp(source):
    """Copy a file-like object into a temporary file; returns (path, size, sha256)."""
    path = new_temp_path()
    digest = hashlib.sha256()
    size = 0
    with open(path, "wb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return path, size, digest.hexdigest()


def hash_file(path):
    """(size, sha256) of a file."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def move_into_place(temp_path, relative):
    target = full_path(relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(temp_path, target)


def discard(path):
    Path(path).unlink(missing_ok=True)


def delete(relative):
    """Delete a stored file; a file already gone counts as deleted."""
    full_path(relative).unlink(missing_ok=True)


def copy_out(relative, destination):
    shutil.copyfile(full_path(relative), destination)


def open_new_temp(suffix=".part"):
    """(path, binary file open for writing) of a fresh temporary file; move it in with move_into_place."""
    path = new_temp_path(suffix)
    return path, open(path, "wb")


def check():
    """Raise OSError when no file could be stored now (GET /readyz)."""
    discard(new_temp_path(suffix=".check"))
