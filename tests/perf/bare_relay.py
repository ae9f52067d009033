"""Reference for bench_download_s3: the least a relay from the bucket can do, under the same
gunicorn settings. GET /<key> answers the object's bytes, read with boto3's get_object and
handed to gunicorn 1 MiB at a time: no Django, token, limits, log, headers or ranges.

It shows what the second hop alone (the store to the web worker, the worker to the client,
both over loopback on the same cores) costs, whatever the product does on top of it."""

import os

import boto3
from botocore.config import Config

BLOCK = 1024 * 1024

_client = boto3.client(
    "s3", endpoint_url=os.environ["AWS_S3_ENDPOINT_URL"], aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"], region_name=os.environ["AWS_S3_REGION_NAME"],
    config=Config(response_checksum_validation="when_required"),
)
_bucket = os.environ["STORAGE_URL"].removeprefix("s3://").partition("/")[0]


def application(environ, start_response):
    answer = _client.get_object(Bucket=_bucket, Key=environ["PATH_INFO"].lstrip("/"))
    body = answer["Body"]
    start_response("200 OK", [("Content-Type", "audio/mpeg"), ("Content-Length", str(answer["ContentLength"]))])
    return iter(lambda: body.read(BLOCK), b"")
