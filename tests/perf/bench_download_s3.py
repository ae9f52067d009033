"""Download from an S3-compatible bucket (SPEC.md §9) through the full API on the direct
path (gunicorn streaming a GET of the object), against a bare boto3 `get_object`
read of the same object from the same S3 server (moto's), in one run; the disk path
(the same rows and bytes on MEDIA_ROOT) is measured the same way beside it.

The ratio says what the product adds on top of reading the object at all. Beside it, a
bare relay (tests/perf/bare_relay.py: gunicorn and boto3, no Django) shows what the second
hop alone costs: store to web worker to client, over loopback on the cores the store and the
client use too. Prints throughput ratios at 1 MB and 15 MB and the peak memory of the web
workers while 200 MB files stream.
"""

import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import requests
from botocore.config import Config

from tests import s3
from tests.perf.bench_download import store_file
from tests.perf.support import bench_database, children, gunicorn, media_root, peak_rss_kib

SIZES = {"1MB": 1024 * 1024, "15MB": 15 * 1024 * 1024}
BIG = 200 * 1024 * 1024
CLIENTS = 4
CHUNK = 1024 * 1024


def upload(client, bucket, media, relative):
    client.upload_file(str(media / relative), bucket, f"bench/{relative}")


def rate(read_once, seconds):
    """Downloads per second with CLIENTS threads reading whole bodies for `seconds`."""
    deadline = time.monotonic() + seconds

    def loop():
        count = 0
        while time.monotonic() < deadline:
            read_once()
            count += 1
        return count

    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        total = sum(pool.map(lambda _: loop(), range(CLIENTS)))
    return total / (time.monotonic() - started)


def main():
    from biztel import config
    from biztel.models import Account
    from biztel.tokens import token_issue

    with s3.moto_server() as endpoint, bench_database() as database_url, media_root() as media:
        bucket = s3.new_bucket(endpoint)
        # like the product's client: no CRC32 of each download (recordings/storage.py)
        client = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id=s3.ACCESS_KEY, aws_secret_access_key=s3.SECRET_KEY,
            region_name=s3.REGION, config=Config(response_checksum_validation="when_required"),
        )
        config.settings_update(
            burst_limit_per_second="1000000", monthly_request_limit="1000000000",
            monthly_response_object_limit="1000000000",
        )
        account = Account.objects.create(username="bench", role="administrator")
        _, token = token_issue(account=account)
        auth = {"Authorization": f"Token {token}"}
        paths = {label: store_file(media, f"{i:020d}", size) for i, (label, size) in enumerate(SIZES.items(), 1)}
        big = store_file(media, "9" * 20, BIG)
        for relative in [*paths.values(), big]:
            upload(client, bucket, media, relative)
        bucket_env = s3.storage_env(endpoint, bucket, prefix="bench")
        with gunicorn(database_url, media, extra_env=bucket_env) as (bucket_port, master), \
                gunicorn(database_url, media) as (disk_port, _), \
                gunicorn(database_url, media, extra_env=bucket_env, app="tests.perf.bare_relay:application") as (relay_port, _):
            def pull(url, headers=None):
                def read_once():
                    with requests.get(url, headers=headers, stream=True, timeout=120) as response:
                        response.raise_for_status()
                        for _ in response.iter_content(CHUNK):
                            pass
                return read_once

            def api(port, request_id):
                return pull(f"http://127.0.0.1:{port}/public/api/v1/monitor/{request_id}", auth)

            def bare(relative):
                def read_once():
                    body = client.get_object(Bucket=bucket, Key=f"bench/{relative}")["Body"]
                    while body.read(CHUNK):
                        pass
                return read_once

            for index, (label, relative) in enumerate(paths.items(), 1):
                readers = {
                    "bare boto3 get_object": bare(relative),
                    "API from the bucket": api(bucket_port, f"{index:020d}"),
                    "API from the disk": api(disk_port, f"{index:020d}"),
                    "bare relay": pull(f"http://127.0.0.1:{relay_port}/bench/{relative}"),
                }
                for read_once in readers.values():
                    rate(read_once, 3)  # warm-up: every web worker makes its S3 client once
                runs = {name: [] for name in readers}
                for _ in range(2):  # the servers in turn, so drift on a shared machine hits each alike
                    for name, read_once in readers.items():
                        runs[name].append(rate(read_once, 4))
                measured = {name: sum(values) / len(values) for name, values in runs.items()}
                print(f"download_s3 {label}: " + "; ".join(f"{name} {r:.1f}/s" for name, r in measured.items()))
                bare_rate = measured["bare boto3 get_object"]
                print(f"download_s3 {label} throughput ratio (API from the bucket / bare boto3 get_object): "
                      f"{measured['API from the bucket'] / bare_rate:.2f}")
                print(f"download_s3 {label} disk path beside it (API from the disk / bare boto3 get_object): "
                      f"{measured['API from the disk'] / bare_rate:.2f}")
                print(f"download_s3 {label} the second hop alone (bare relay, no Django / bare boto3 get_object): "
                      f"{measured['bare relay'] / bare_rate:.2f}")

            workers = children(master.pid)
            read_big = api(bucket_port, "9" * 20)
            read_big()  # the first large answer of a worker may settle its allocations
            before = {pid: peak_rss_kib(pid) for pid in workers}
            for _ in range(3):  # most likely served by more than one worker
                read_big()
            after = {pid: peak_rss_kib(pid) for pid in workers}
            growth = max(after[pid] - before[pid] for pid in workers)
            print(f"download_s3 200MB from the bucket: 3 downloads; worker peak RSS {max(after.values()) / 1024:.0f} MB, "
                  f"grew by {growth / 1024:.1f} MB while streaming")
        s3.empty_bucket(endpoint, bucket)

