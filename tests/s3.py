"""An S3-compatible server for the storage tests: moto's standalone server (moto[server]),
a separate process speaking the S3 HTTP API on a free local port. Nothing is mocked in
the product: boto3 talks HTTP to it as it would to MinIO, Ceph RGW or AWS S3."""

import os
import subprocess
import sys
import uuid
from contextlib import contextmanager

import pytest

ACCESS_KEY = "biztel-test"
SECRET_KEY = "biztel-test-secret"
REGION = "us-east-1"


@contextmanager
def moto_server():
    """Start moto's server; yields its endpoint URL."""
    from tests.conftest import free_port, serving  # conftest imports this module's fixtures

    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with serving(command, port, timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as url:
        yield url


def client(endpoint):
    import boto3

    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )


def new_bucket(endpoint):
    name = f"biztel-{uuid.uuid4().hex[:16]}"
    client(endpoint).create_bucket(Bucket=name)
    return name


def keys(endpoint, bucket, prefix=""):
    """Every key in the bucket under `prefix`, sorted."""
    found = []
    for page in client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found += [entry["Key"] for entry in page.get("Contents", ())]
    return sorted(found)


def empty_bucket(endpoint, bucket):
    s3 = client(endpoint)
    for key in keys(endpoint, bucket):
        s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_bucket(Bucket=bucket)


def storage_env(endpoint, bucket, prefix="recordings"):
    """The environment of a process (gunicorn, a command) that stores into this bucket."""
    return {
        "STORAGE_URL": f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}",
        "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_S3_REGION_NAME": REGION,
    }


def settings_env(settings):
    """The storage variables of the test's settings, for child processes."""
    names = ("STORAGE_URL", "AWS_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_S3_REGION_NAME",
             "STORAGE_S3_SSE", "STORAGE_S3_KMS_KEY_ID")
    return {name: str(getattr(settings, name) or "") for name in names}


@pytest.fixture(scope="session")
def s3_endpoint():
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket(s3_endpoint, settings):
    """The test's storage is a fresh bucket (under the prefix `recordings`)."""
    bucket = new_bucket(s3_endpoint)
    for name, value in storage_env(s3_endpoint, bucket).items():
        setattr(settings, name, value)
    yield bucket
    empty_bucket(s3_endpoint, bucket)


@pytest.fixture(params=["disk", "s3"])
def storage_backend(request, settings):
    """Runs the test on the disk and on a bucket; yields "disk" or "s3"."""
    if request.param == "s3":
        request.getfixturevalue("s3_bucket")
    yield request.param


os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")  # boto3 must not look for an instance profile
