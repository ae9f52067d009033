"""`biztel-client receive` as a running process: the product's Celery worker delivers a
signed call action to it, and it pulls the call through nginx over TLS, then runs --exec."""

import base64
import json
import os
import signal
import subprocess
from datetime import datetime, timezone

import pytest
import requests
from conftest import CLIENT, last_log_id, log_since, wait_until
from standardwebhooks.webhooks import Webhook

from tests.conftest import free_port, wait_for_port
from tests.media import tone, wav_bytes
from tests.stack import ingest_stereo_call

pytestmark = [pytest.mark.timeout(300), pytest.mark.django_db]

RECEIVE_NUMBER = "0502220000"  # the call action's target
OTHER_NUMBER = "0503330000"  # calls that only a hand-sent notification announces
SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


def call_fields(n, external_number):
    return {
        "request_id": f"2109150000{n:04d}000020",
        "unique_id": f"1631700000.{n}",
        "started_at": f"2021-09-15 11:{n:02d}:00",
        "caller": "0312345678",
        "callee": "0502220000",
        "side": "SRC",
        "external_number": external_number,
        "extension": "2002",
        "tel": "0312345678",
        "group": "support",
    }


class ReceiveProcess:
    def __init__(self, live, folder):
        self.live, self.folder = live, folder
        self.port = free_port()
        self.out = folder / "out"
        self.exec_log = folder / "exec.log"
        self.exec_log.write_text("")
        self.log = folder / "receive.log"
        self.process = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/monitor_file_event"

    def start(self):
        command = [
            str(CLIENT), "receive", "--listen", f"127.0.0.1:{self.port}", "--out", str(self.out), "--secret", SECRET,
            "--exec", f"printf '%s|%s|%s|%s\\n' {{ID}} {{MONAURAL}} {{LEFT}} {{RIGHT}} >> {self.exec_log}",
            "--server", self.live.base_url, "--cacert", str(self.live.cert),
        ]
        self.process = subprocess.Popen(
            command, env={**os.environ, "BIZTEL_TOKEN": self.live.token}, stdout=subprocess.DEVNULL,
            stderr=open(self.log, "ab"),
        )
        wait_for_port(self.port, self.process)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)

    def lines(self, request_id):
        return [line.split("|") for line in self.exec_log.read_text().splitlines() if line.startswith(request_id + "|")]


@pytest.fixture(scope="module")
def receiver(live, tmp_path_factory):
    process = ReceiveProcess(live, tmp_path_factory.mktemp("receive"))
    process.start()
    actions = process.folder / "callactions.json"
    actions.write_text(json.dumps([{
        "name": "biztel-client receive",
        "event_type": "recording_completed",
        "order": 1,
        "url": f"http://127.0.0.1:{process.port}/monitor_file_event?ID={{ID}}&TEL={{TEL}}&DATE={{DATE}}",
        "method": "GET",
        "targets": [RECEIVE_NUMBER],
        "enabled": True,
        "signing_secret": SECRET,
    }]))
    live.manage("import_callactions", str(actions))
    yield process
    process.stop()


def signed_headers(message_id, body=""):
    now = datetime.now(tz=timezone.utc)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(SECRET).sign(message_id, now, body),
    }


def stored(live, path):
    return live.stored_file(os.path.basename(path)).read_bytes()


def downloads_of(before, request_id):
    return [(e.method, e.content_type) for e in log_since(before, recording__request_id=request_id)]


def test_a_signed_call_action_from_the_worker_is_pulled_and_exec_gets_the_paths(live, receiver):
    fields = call_fields(1, RECEIVE_NUMBER)
    ingest_stereo_call(live, live.pbx_token, fields, seconds=3.0)
    (line,) = wait_until(lambda: receiver.lines(fields["request_id"]), timeout=90,
                         message=f"--exec for the call\n{receiver.log.read_text()}\n{live.log('worker')[-3000:]}")
    request_id, monaural, left, right = line
    assert request_id == fields["request_id"]
    for path, suffix in ((monaural, "-SRC.mp3"), (left, "-SRC_l.mp3"), (right, "-SRC_r.mp3")):
        assert path.startswith(str(receiver.out / "2021" / "09" / "15") + "/") and path.endswith(suffix)
        assert open(path, "rb").read() == stored(live, path)


def test_an_unsigned_or_badly_signed_notification_is_401_and_pulls_nothing(live, receiver):
    fields = call_fields(2, OTHER_NUMBER)
    ingest_stereo_call(live, live.pbx_token, fields, seconds=2.0)
    before = last_log_id()
    unsigned = requests.get(receiver.url, params={"ID": fields["request_id"]}, timeout=10)
    forged = requests.get(receiver.url, params={"ID": fields["request_id"]}, timeout=10,
                          headers={**signed_headers("msg_forged"), "webhook-signature": "v1,AAAA"})
    assert (unsigned.status_code, unsigned.text) == (401, "The signature does not verify.\n")
    assert forged.status_code == 401
    # a signed notification sent after them is pulled; the refused ones left nothing before it
    assert requests.get(receiver.url, params={"ID": fields["request_id"]}, headers=signed_headers("msg_after_401"),
                        timeout=10).status_code == 200
    wait_until(lambda: receiver.lines(fields["request_id"]), message="the signed notification's --exec")
    assert len(receiver.lines(fields["request_id"])) == 1
    assert sorted(downloads_of(before, fields["request_id"])) == [("GET", "left"), ("GET", "monaural"), ("GET", "right")]


def test_a_notification_sent_twice_with_one_webhook_id_is_pulled_once(live, receiver):
    fields = call_fields(3, OTHER_NUMBER)
    ingest_stereo_call(live, live.pbx_token, fields, seconds=2.0)
    before = last_log_id()
    headers = signed_headers("msg_twice")
    for _ in range(2):
        answer = requests.get(receiver.url, params={"ID": fields["request_id"], "TEL": "0312345678"},
                              headers=headers, timeout=10)
        assert (answer.status_code, answer.text) == (200, "OK\n")
    wait_until(lambda: receiver.lines(fields["request_id"]), message="--exec")
    # a marker call queued after both: once its --exec ran, the second notification's pull would have too
    marker = call_fields(4, OTHER_NUMBER)
    ingest_stereo_call(live, live.pbx_token, marker, seconds=1.0)
    requests.get(receiver.url, params={"ID": marker["request_id"]}, headers=signed_headers("msg_marker"), timeout=10)
    wait_until(lambda: receiver.lines(marker["request_id"]), message="the marker's --exec")
    assert len(receiver.lines(fields["request_id"])) == 1
    assert len(downloads_of(before, fields["request_id"])) == 3


def test_a_restarted_receiver_remembers_the_webhook_ids_it_took(live, receiver):
    fields = call_fields(5, OTHER_NUMBER)
    ingest_stereo_call(live, live.pbx_token, fields, seconds=1.0)
    body = f"ID={fields['request_id']}"
    headers = {**signed_headers("msg_restart", body), "Content-Type": "application/x-www-form-urlencoded"}
    assert requests.post(receiver.url, data=body, headers=headers, timeout=10).status_code == 200
    wait_until(lambda: receiver.lines(fields["request_id"]), message="--exec")
    receiver.stop()
    receiver.start()
    before = last_log_id()
    assert requests.post(receiver.url, data=body, headers=headers, timeout=10).status_code == 200
    marker = call_fields(6, OTHER_NUMBER)
    ingest_stereo_call(live, live.pbx_token, marker, seconds=1.0)
    requests.get(receiver.url, params={"ID": marker["request_id"]}, headers=signed_headers("msg_marker2"), timeout=10)
    wait_until(lambda: receiver.lines(marker["request_id"]), message="the marker's --exec")
    assert len(receiver.lines(fields["request_id"])) == 1
    assert downloads_of(before, fields["request_id"]) == []


def test_a_json_post_is_pulled_and_a_leg_that_is_not_there_is_passed_empty(live, receiver):
    fields = call_fields(7, OTHER_NUMBER)
    mixed = wav_bytes([tone(500, 1.5)])
    answer = requests.post(
        f"{live.base_url}/internal/api/v1/recordings", headers={"Authorization": f"Token {live.pbx_token}"},
        data=fields, files={"mixed": ("mixed.wav", mixed, "audio/wav")}, verify=str(live.cert), timeout=60,
    )
    assert answer.status_code == 201, answer.text
    body = json.dumps({"ID": fields["request_id"], "TEL": "0312345678"})
    headers = {**signed_headers("msg_json", body), "Content-Type": "application/json"}
    assert requests.post(receiver.url, data=body, headers=headers, timeout=10).status_code == 200
    (line,) = wait_until(lambda: receiver.lines(fields["request_id"]), message="--exec")
    request_id, monaural, left, right = line
    assert (left, right) == ("", "")
    assert open(monaural, "rb").read() == stored(live, monaural)
