"""SPEC.md §9: several nodes sharing one bucket, PostgreSQL and Redis behave as one server.

Two gunicorn nodes, each with its own local disk (MEDIA_ROOT), the test database, the
test Redis and one bucket on moto's S3 server; the command and the purge run as further
processes with disks of their own. No node sees another's disk."""

import os
import subprocess
import sys
from contextlib import contextmanager
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from tests import s3
from tests.conftest import ROOT, database_url, free_port, gunicorn_command, serving
from tests.factories import call_fields
from tests.media import tone, wav_bytes, write_wav

pytestmark = pytest.mark.timeout(300)
URL = "/public/api/v1/monitor/{}"


@contextmanager
def node(env, media_root):
    port = free_port()
    with serving(gunicorn_command(port), port, stop_timeout=15, cwd=ROOT, env={**env, "MEDIA_ROOT": str(media_root)}) as url:
        yield url


def manage(env, media_root, *args):
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**env, "MEDIA_ROOT": str(media_root)},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def stored_mp3s(folder):
    return [p for p in folder.rglob("*.mp3")]


def test_two_nodes_with_their_own_disks_share_one_bucket(transactional_db, make_token, set_system, s3_endpoint, tmp_path):
    bucket = s3.new_bucket(s3_endpoint)
    env = {
        **os.environ, **s3.storage_env(s3_endpoint, bucket), "DATABASE_URL": database_url(),
        "DOWNLOAD_ACCEL_REDIRECT_PREFIX": "",
    }
    disks = {name: tmp_path / name for name in ("a", "b", "command", "purge")}
    pbx = {"Authorization": f"Token {make_token(role='pbx')}"}
    reader = {"Authorization": f"Token {make_token()}"}
    try:
        with node(env, disks["a"]) as node_a, node(env, disks["b"]) as node_b:
            # a call through node A's ingest endpoint downloads through node B
            posted = call_fields()
            stereo = wav_bytes([tone(440, 2), tone(1000, 2)])
            answer = requests.post(
                f"{node_a}/internal/api/v1/recordings", headers=pbx, data=posted,
                files={"stereo": ("call.wav", stereo, "audio/wav")}, timeout=60,
            )
            assert answer.status_code == 201, answer.text
            files = answer.json()["files"]
            for content_type in ("monaural", "left", "right"):
                got = requests.get(
                    node_b + URL.format(posted["request_id"]), params={"content_type": content_type}, headers=reader,
                    timeout=30,
                )
                assert got.status_code == 200, got.text
                assert (len(got.content), got.headers["ETag"]) == (
                    files[content_type]["bytes"], f'"{files[content_type]["sha256"]}"'
                )
                part = requests.get(
                    node_b + URL.format(posted["request_id"]), params={"content_type": content_type},
                    headers={**reader, "Range": "bytes=10-19"}, timeout=30,
                )
                assert (part.status_code, part.content) == (206, got.content[10:20])

            # a call ingested by the command (a third machine, as it were) downloads through both
            commanded = call_fields()
            wav = write_wav(tmp_path / "call.wav", [tone(500, 2), tone(900, 2)])
            options = [f"--{name.replace('_', '-')}={value}" for name, value in commanded.items() if value]
            manage(env, disks["command"], "ingest_recording", *options, f"--stereo={wav}")
            bodies = [
                requests.get(base + URL.format(commanded["request_id"]), headers=reader, timeout=30)
                for base in (node_a, node_b)
            ]
            assert [b.status_code for b in bodies] == [200, 200]
            assert bodies[0].content == bodies[1].content and bodies[0].content

            # nothing was stored on any node's own disk
            assert all(stored_mp3s(disk) == [] for disk in disks.values() if disk.exists())
            assert len(s3.keys(s3_endpoint, bucket)) == 6

            # a purge from yet another process removes the objects; both nodes answer 404 after
            set_system(monaural_retention_days=1)
            later = timezone.localtime(timezone.now() + timedelta(days=8)).strftime("%Y-%m-%d %H:%M:%S")
            out = manage(env, disks["purge"], "purge_recordings", "--now", later)
            assert "deleted: 6 files" in out
            assert s3.keys(s3_endpoint, bucket) == []
            for base in (node_a, node_b):
                gone = requests.get(base + URL.format(posted["request_id"]), headers=reader, timeout=30)
                assert (gone.status_code, gone.json()["type"]) == (404, "NOT_FOUND")
    finally:
        s3.empty_bucket(s3_endpoint, bucket)
