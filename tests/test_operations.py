"""What an operator watches (SPEC.md §11, README → Operations): /healthz, /readyz with
real Celery worker and beat processes, /metrics and who may read it, and counters that
hold across gunicorn worker processes."""

import io
import ipaddress
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.core.cache import caches
from prometheus_client import multiprocess

from tests.callactions_support import celery_worker, receiver, wait_until, worker  # noqa: F401 (fixtures)
from tests.conftest import ROOT, database_url, free_port, wait_for_port
from tests.factories import stored_recording


def test_healthz_says_ok_while_the_process_is_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_503_and_names_each_check_without_a_worker_or_beat(db, client):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {
            "database": {"state": "ok"},
            "redis": {"state": "ok"},
            "storage": {"state": "ok"},
            "worker": {"state": "failing", "detail": "no worker heartbeat yet"},
            "beat": {"state": "failing", "detail": "no beat heartbeat yet"},
        },
    }


def test_readyz_fails_a_worker_last_seen_more_than_60_seconds_ago_and_a_beat_more_than_90(db, client):
    heartbeats = caches["heartbeats"]
    heartbeats.set("heartbeat:worker", time.time() - 61, timeout=None)
    heartbeats.set("heartbeat:beat", time.time() - 85, timeout=None)
    checks = client.get("/readyz").json()["checks"]
    assert checks["worker"] == {"state": "failing", "detail": "last worker heartbeat 61 s ago (more than 60 s)"}
    assert checks["beat"]["state"] == "ok"
    heartbeats.set("heartbeat:beat", time.time() - 91, timeout=None)
    assert client.get("/readyz").json()["checks"]["beat"] == {
        "state": "failing", "detail": "last beat heartbeat 91 s ago (more than 90 s)"
    }


def test_readyz_names_the_storage_failing_when_nothing_can_be_stored(db, client, settings, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    settings.MEDIA_ROOT = blocker
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["storage"] == {"state": "failing", "detail": "NotADirectoryError"}


def start_beat(tmp_path):
    log = open(tmp_path / "beat.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "biztel", "beat", "--loglevel", "INFO",
         "--schedule", str(tmp_path / "celerybeat-schedule")],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url()},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process


def test_readyz_is_200_with_a_real_worker_and_beat_and_503_again_once_the_worker_is_gone(
    worker, client, tmp_path  # noqa: F811
):
    beat = start_beat(tmp_path)
    try:
        answer = wait_until(
            lambda: (r := client.get("/readyz")).status_code == 200 and r, timeout=60, interval=0.5,
            message=f"/readyz 200 (beat log: {(tmp_path / 'beat.log').read_text()[-2000:] if (tmp_path / 'beat.log').exists() else ''})",
        )
        body = answer.json()
        assert body["status"] == "ok"
        assert {name: check["state"] for name, check in body["checks"].items()} == {
            "database": "ok", "redis": "ok", "storage": "ok", "worker": "ok", "beat": "ok",
        }
        assert 0 <= body["checks"]["worker"]["seen_seconds_ago"] <= 60
        assert 0 <= body["checks"]["beat"]["seen_seconds_ago"] <= 90
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        beat.wait(timeout=20)
    # The beat's heartbeat alone does not make a worker: with the worker's removed and the
    # worker stopped, only the worker's check fails.
    worker.stop()
    caches["heartbeats"].delete("heartbeat:worker")
    body = client.get("/readyz").json()
    assert body["checks"]["worker"] == {"state": "failing", "detail": "no worker heartbeat yet"}
    assert body["checks"]["beat"]["state"] == "ok"


def test_metrics_are_readable_from_loopback_in_the_prometheus_text_format(db, client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.content.decode()
    for family in (
        "biztel_ingests_total counter", "biztel_ingest_audio_seconds_total counter",
        "biztel_ingest_encode_seconds histogram", "biztel_downloads_total counter",
        "biztel_download_bytes_total counter", "biztel_callaction_attempts_total counter",
        "biztel_callaction_events_pending gauge", "biztel_callaction_oldest_pending_event_age_seconds gauge",
        "biztel_callaction_commit_to_send_seconds histogram", "biztel_quota_requests_used gauge",
        "biztel_quota_requests_limit gauge", "biztel_quota_objects_used gauge", "biztel_quota_objects_limit gauge",
        "biztel_purge_files_total counter",
    ):
        assert f"# TYPE {family}\n" in text, family


def test_metrics_are_refused_from_an_address_outside_the_allowed_networks(db, client):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 403
    assert b"biztel_" not in response.content


def test_metrics_judge_the_client_nginx_names_and_not_nginx_itself(db, client, settings):
    assert client.get("/metrics", HTTP_X_REAL_IP="203.0.113.7").status_code == 403
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("203.0.113.0/24")]
    assert client.get("/metrics", HTTP_X_REAL_IP="203.0.113.7").status_code == 200
    # Only a proxy on this machine may name the client.
    assert client.get("/metrics", REMOTE_ADDR="198.51.100.1", HTTP_X_REAL_IP="203.0.113.7").status_code == 403


def metric(text, name, **labels):
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    pattern = rf"^{re.escape(name)}{re.escape('{' + wanted + '}') if labels else ''} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def downloads_per_process(folder):
    """{counter file: downloads it counted} of the processes that counted any."""
    counted = {}
    for path in folder.glob("counter_*.db"):
        families = multiprocess.MultiProcessCollector.merge([str(path)], accumulate=True)
        total = sum(s.value for f in families if f.name == "biztel_downloads" for s in f.samples if s.name.endswith("_total"))
        if total:
            counted[path.name] = total
    return counted


def test_metrics_count_every_download_across_two_gunicorn_workers(transactional_db, token, settings, tmp_path, set_system):
    set_system(burst_limit_per_second=1000)  # 12 at once would often meet the default 10 per second
    recording = stored_recording()
    size = recording.files.get(content_type="monaural").size
    port = free_port()
    multiproc = tmp_path / "prometheus"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "DOWNLOAD_ACCEL_REDIRECT_PREFIX": "",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_ACCESS_LOG": "",
        "GUNICORN_LOG_LEVEL": "warning",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
    }
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"], cwd=ROOT, env=env)
    try:
        wait_for_port(port, server)
        base = f"http://127.0.0.1:{port}"
        url = f"{base}/public/api/v1/monitor/{recording.request_id}?content_type=monaural"

        def download(_):
            # A new connection each time, so both workers take some.
            return requests.get(url, headers={"Authorization": f"Token {token}", "Connection": "close"}, timeout=30)

        n = 0
        for _ in range(10):
            with ThreadPoolExecutor(max_workers=8) as pool:
                statuses = [r.status_code for r in pool.map(download, range(12))]
            assert statuses == [200] * 12
            n += 12
            if len(downloads_per_process(multiproc)) == 2:
                break
        assert len(downloads_per_process(multiproc)) == 2, "one worker answered every download"
        assert sum(downloads_per_process(multiproc).values()) == n
        for _ in range(6):  # whichever worker answers the scrape
            text = requests.get(f"{base}/metrics", headers={"Connection": "close"}, timeout=30).text
            assert metric(text, "biztel_downloads_total", status="200", content_type="monaural") == n
            assert metric(text, "biztel_download_bytes_total") == n * size
    finally:
        server.terminate()
        server.wait(timeout=20)


def scrape(client):
    return client.get("/metrics").content.decode()


def test_metrics_count_ingests_by_outcome_and_the_seconds_of_audio_stored(db, client):
    from biztel.errors import ValidationFailed
    from recordings.services import recording_ingest
    from tests.factories import call_fields
    from tests.media import tone, wav_bytes

    before = scrape(client)
    fields = call_fields()
    recording, created = recording_ingest(fields=fields, stereo=io.BytesIO(wav_bytes([tone(440, 2.0), tone(660, 2.0)])))
    assert created
    recording_ingest(fields=fields, stereo=io.BytesIO(wav_bytes([tone(440, 2.0), tone(660, 2.0)])))
    with pytest.raises(ValidationFailed):
        recording_ingest(fields={**call_fields(), "side": "UP"}, stereo=io.BytesIO(b"not audio"))
    after = scrape(client)

    def grew(name, **labels):
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert grew("biztel_ingests_total", outcome="stored") == 1
    assert grew("biztel_ingests_total", outcome="duplicate") == 1
    assert grew("biztel_ingests_total", outcome="rejected") == 1
    assert grew("biztel_ingest_audio_seconds_total") == pytest.approx(2.0, abs=0.1)
    assert grew("biztel_ingest_encode_seconds_count") == 1


def test_metrics_count_call_action_attempts_by_outcome_and_purged_files(db, client, receiver, set_system, settings):
    from datetime import timedelta

    from django.utils import timezone

    from callactions.models import CallAction
    from callactions.services import action_send_test
    from recordings.purge import purge_due

    set_system(call_action=True)
    settings.CALLACTION_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    receiver.expect_request("/ok").respond_with_data("fine")
    receiver.expect_request("/broken").respond_with_data("no", status=500)
    before = scrape(client)
    for number, path in enumerate(("/ok", "/broken", "/broken")):
        action = CallAction(name=f"probe{number}", url=f"http://127.0.0.1:{receiver.port}{path}")
        action.full_clean()
        action.save()
        action_send_test(action=action)
    stored_recording()
    assert purge_due(now=timezone.now() + timedelta(days=8)).files == 2  # the two legs
    after = scrape(client)
    assert metric(after, "biztel_callaction_attempts_total", outcome="succeeded") - metric(
        before, "biztel_callaction_attempts_total", outcome="succeeded") == 1
    assert metric(after, "biztel_callaction_attempts_total", outcome="failed") - metric(
        before, "biztel_callaction_attempts_total", outcome="failed") == 2
    assert metric(after, "biztel_purge_files_total", result="deleted") - metric(
        before, "biztel_purge_files_total", result="deleted") == 2


def test_metrics_time_an_event_from_its_commit_to_its_first_attempt_once(db, client, receiver, set_system, settings):
    from callactions.models import CallAction, Event, ExternalNumber
    from callactions.services import event_deliver

    set_system(call_action=True)
    settings.CALLACTION_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    receiver.expect_request("/hook").respond_with_data("no", status=500)
    action = CallAction(name="hook", url=f"http://127.0.0.1:{receiver.port}/hook", retry_count=1, retry_interval=0)
    action.full_clean()
    action.save()
    action.targets.set([ExternalNumber.objects.get_or_create(number="0312345678")[0]])
    before = scrape(client)
    event = Event.objects.get(recording=stored_recording(external_number="0312345678"))
    event_deliver(event_id=event.pk)
    event_deliver(event_id=event.pk)  # the retry is not a first attempt
    after = scrape(client)
    name = "biztel_callaction_commit_to_send_seconds_count"
    assert metric(after, name) - metric(before, name) == 1
    assert metric(after, "biztel_callaction_attempts_total", outcome="failed") - metric(
        before, "biztel_callaction_attempts_total", outcome="failed") == 2


def test_the_grafana_dashboard_and_the_prometheus_example_use_only_metrics_the_server_exposes(db, client):
    import json

    text = scrape(client)
    exposed = set(re.findall(r"^(biztel_\w+?)(?:\{| )", text, re.MULTILINE))
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    used = {name for p in dashboard["panels"] for t in p["targets"] for name in re.findall(r"biztel_\w+", t["expr"])}
    used |= set(re.findall(r"biztel_\w+", (ROOT / "deploy" / "prometheus.yml").read_text()))
    # A labelled counter nobody has counted yet shows only its HELP and TYPE lines.
    exposed |= set(re.findall(r"^# TYPE (biztel_\w+) counter", text, re.MULTILINE))
    exposed |= {f"{name}_bucket" for name in re.findall(r"^# TYPE (biztel_\w+) histogram", text, re.MULTILINE)}
    assert used - exposed == set()
    assert len(dashboard["panels"]) >= 8
