"""Download through the full API (token, burst, quota, access log) under gunicorn,
against nginx serving the same files statically, in one run.

Prints throughput and median-latency ratios at 1 MB and 15 MB, and the peak
memory of the web workers while a 200 MB file is downloaded.
"""

import os
import secrets

import requests
from django.utils import timezone

from tests.conftest import ensure_debian_packages
from tests.perf.support import bench_database, children, gunicorn, media_root, nginx, peak_rss_kib, wrk

SIZES = {"1MB": 1024 * 1024, "15MB": 15 * 1024 * 1024}
BIG = 200 * 1024 * 1024


def store_file(media, request_id, size):
    """A recording row with a monaural file of `size` random bytes (content does not matter here)."""
    from recordings.models import Recording, RecordingFile

    relative = f"2026/01/01/{request_id}.mp3"
    path = media / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        remaining = size
        while remaining:
            chunk = min(remaining, 4 * 1024 * 1024)
            f.write(os.urandom(chunk))
            remaining -= chunk
    path.chmod(0o644)
    now = timezone.now()
    recording = Recording.objects.create(
        request_id=request_id, unique_id=f"{request_id}.1", started_at=now, caller="1", callee="2", side="SRC",
    )
    RecordingFile.objects.create(
        recording=recording, content_type="monaural", name=f"{request_id}.mp3", path=relative, size=size,
        sha256=secrets.token_hex(32), duration=1.0, created_at=now,
    )
    return relative


def compare(urls, headers, rounds=2, seconds=4):
    """{label: (requests per second, median latency)}, averaged over rounds that take
    the servers in turn, so drift on a shared machine hits each of them alike."""
    for label, url in urls.items():
        wrk(url, headers, seconds=1)  # warm-up
    runs = {label: [] for label in urls}
    for _ in range(rounds):
        for label, url in urls.items():
            runs[label].append(wrk(url, headers, seconds=seconds))
    return {label: tuple(sum(values) / rounds for values in zip(*results)) for label, results in runs.items()}


def main():
    from biztel import config
    from biztel.models import Account
    from biztel.tokens import token_issue

    ensure_debian_packages(("wrk", "wrk"), ("nginx", "nginx"))
    with bench_database() as database_url, media_root() as media:
        config.settings_update(
            burst_limit_per_second="1000000", monthly_request_limit="1000000000",
            monthly_response_object_limit="1000000000",
        )
        account = Account.objects.create(username="bench", role="administrator")
        _, token = token_issue(account=account)
        paths = {label: store_file(media, f"{i:020d}", size) for i, (label, size) in enumerate(SIZES.items(), 1)}
        store_file(media, "9" * 20, BIG)

        static = "server { listen 127.0.0.1:{port}; root " + str(media) + "; }"
        bare_app = "tests.perf.bare_wsgi:application"
        with nginx(static) as nginx_port, gunicorn(database_url, media) as (api_port, master), \
                gunicorn(database_url, media, app=bare_app) as (bare_port, _):
            auth = {"Authorization": f"Token {token}"}
            for index, (label, relative) in enumerate(paths.items(), 1):
                measured = compare(
                    {
                        "nginx static": f"http://127.0.0.1:{nginx_port}/{relative}",
                        "bare Django": f"http://127.0.0.1:{bare_port}/{relative}",
                        "API": f"http://127.0.0.1:{api_port}/public/api/v1/monitor/{index:020d}",
                    },
                    auth,
                )
                print(f"download {label}: " + "; ".join(
                    f"{name} {rate:.0f} req/s p50 {p50 * 1000:.2f} ms" for name, (rate, p50) in measured.items()
                ))
                (static_rate, static_p50), (bare_rate, _), (api_rate, api_p50) = measured.values()
                print(f"download {label} throughput ratio (API / nginx static): {api_rate / static_rate:.2f}")
                print(f"download {label} median latency ratio (API / nginx static): {api_p50 / static_p50:.2f}")
                print(f"download {label} reference (bare Django FileResponse / nginx static): {bare_rate / static_rate:.2f}")

            workers = children(master.pid)
            big_url = f"http://127.0.0.1:{api_port}/public/api/v1/monitor/{'9' * 20}"

            def download_big():
                received = 0
                with requests.get(big_url, headers=auth, stream=True, timeout=60) as response:
                    for chunk in response.iter_content(1024 * 1024):
                        received += len(chunk)
                return received

            download_big()  # the first large answer of a worker may settle its allocations
            before = {pid: peak_rss_kib(pid) for pid in workers}
            received = sum(download_big() for _ in range(3))  # most likely served by more than one worker
            after = {pid: peak_rss_kib(pid) for pid in workers}
            growth = max(after[pid] - before[pid] for pid in workers)
            print(f"download 200MB: received {received // (1024 * 1024)} MB in 3 downloads; worker peak RSS "
                  f"{max(after.values()) / 1024:.0f} MB, grew by {growth / 1024:.1f} MB while streaming")
