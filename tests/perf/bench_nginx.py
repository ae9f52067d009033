"""Download through nginx with X-Accel-Redirect (Django authenticates, limits, counts
and logs; nginx sends the bytes) against nginx serving the same file statically,
over HTTPS, in one run: deploy/nginx.conf and deploy/gunicorn.conf.py as shipped.

Prints `nginx accel / static` for throughput and median latency.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.media import tone, wav_bytes
from tests.perf.support import bench_database, wrk
from tests.conftest import ensure_debian_packages
from tests.stack import start_stack

SECONDS = 10
CONNECTIONS = 16
# A five-minute call: about 1.2 MB at the default 32 kbps.
CALL_SECONDS = 300
REQUEST_ID = "21091300000468000050"


def store_call(stack):
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "call.wav"
        wav.write_bytes(wav_bytes([tone(440, CALL_SECONDS), tone(1000, CALL_SECONDS)]))
        stack.manage(
            "ingest_recording", "--request-id", REQUEST_ID, "--unique-id", "1631512345.50",
            "--started-at", "2021-09-13 10:15:00", "--caller", "0312345678", "--callee", "0501234567",
            "--side", "DST", "--external-number", "0501234567", "--extension", "2001", "--tel", "0312345678",
            "--stereo", str(wav),
        )
    (stored,) = [p for p in stack.media_root.rglob("*-DST.mp3")]
    return stored.relative_to(stack.media_root)


def main():
    ensure_debian_packages(("wrk", "wrk"), ("nginx", "nginx"))
    with bench_database() as database_url:
        stack = start_stack(
            database_url=database_url, redis_url=os.environ["REDIS_URL"], celery=False, web_workers=None,
            nginx_extra="    location /bench-static/ { alias {media_root}/; }\n",
        )
        try:
            stack.set_system(
                burst_limit_per_second="1000000", monthly_request_limit="100000000",
                monthly_response_object_limit="100000000",
            )
            relative = store_call(stack)
            token = stack.manage("create_api_token", "--username", "bench").strip()
            size = (stack.media_root / relative).stat().st_size
            base = f"https://127.0.0.1:{stack.port}"
            # Warm-up: the month's quota row is created by the first request, not under load.
            subprocess.run(["curl", "-sfk", "-o", "/dev/null", "-H", f"Authorization: Token {token}",
                            f"{base}/public/api/v1/monitor/{REQUEST_ID}"], check=True)
            accel_rate, accel_p50 = wrk(
                f"{base}/public/api/v1/monitor/{REQUEST_ID}?content_type=monaural",
                headers={"Authorization": f"Token {token}"}, seconds=SECONDS, connections=CONNECTIONS,
            )
            static_rate, static_p50 = wrk(f"{base}/bench-static/{relative}", seconds=SECONDS, connections=CONNECTIONS)
        finally:
            stack.stop()
            shutil.rmtree(stack.folder, ignore_errors=True)
    print(f"file: {size} bytes, {CONNECTIONS} connections, {SECONDS} s each, HTTPS")
    print(f"nginx accel: {accel_rate:.0f} req/s, median {accel_p50 * 1000:.2f} ms")
    print(f"nginx static: {static_rate:.0f} req/s, median {static_p50 * 1000:.2f} ms")
    print(f"nginx accel / static throughput: {accel_rate / static_rate:.3f}")
    print(f"nginx accel / static median latency: {accel_p50 / static_p50:.2f}")
