"""Faults in delivery (issue 10 items 1-3, issue 11 item 5), through a real Celery
worker on Redis and real receivers: one bad event must not hold back the others, the
timeout bounds the whole attempt, the worker outlives a dropped database connection,
and a transport error says whether retrying can help."""

import json
import socket
import threading
import time

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from callactions import services
from callactions.models import Attempt, CallAction, Event, ExternalNumber, Step
from tests.callactions_support import celery_worker, receiver, wait_until, worker  # noqa: F401 (fixtures)
from tests.factories import stored_recording
from tests.test_callactions_delivery import finished_event, make_action, requests_to

TARGET = "0312345678"
OTHER = "0311111111"


def test_a_header_value_a_request_cannot_carry_is_refused_when_saved(db):
    action = CallAction(name="memo", url="http://example.com/hook", headers="X-Memo: 折り返し希望")
    with pytest.raises(Exception) as refused:
        action.full_clean()
    assert "header line 1 holds characters a header cannot carry (only Latin-1)" in str(refused.value)


def test_import_refuses_a_header_value_a_request_cannot_carry_and_imports_nothing(db, tmp_path):
    path = tmp_path / "actions.json"
    path.write_text(json.dumps([
        {"name": "fine", "url": "http://example.com/a"},
        {"name": "memo", "url": "http://example.com/b", "headers": "X-Memo: 折り返し希望"},
    ]), encoding="utf-8")
    with pytest.raises(Exception) as refused:
        call_command("import_callactions", str(path))
    assert "memo: headers" in str(refused.value) and "only Latin-1" in str(refused.value)
    assert not CallAction.objects.exists()


def test_a_url_with_characters_outside_ascii_is_refused_when_saved(db):
    action = CallAction(name="jp", url="http://example.com/通知?ID={ID}")
    with pytest.raises(Exception) as refused:
        action.full_clean()
    assert "the URL may hold only ASCII characters" in str(refused.value)


def events_committed_together(numbers):
    """Recordings (and their events) committed in one transaction, as a burst of calls is,
    so that one task claims them all in one batch."""
    with transaction.atomic():
        return [stored_recording(external_number=number, separated=False) for number in numbers]


def test_an_action_that_cannot_be_sent_fails_its_own_step_and_the_other_events_arrive(worker, receiver):
    receiver.expect_request("/hook").respond_with_data("ok")
    receiver.expect_request("/memo").respond_with_data("ok")
    make_action(receiver, "/hook", targets=(TARGET,))
    memo = make_action(receiver, "/memo", targets=(OTHER,))
    # saved before save-time validation refused such headers (or written straight to the table)
    CallAction.objects.filter(pk=memo.pk).update(headers="X-Memo: 折り返し希望")
    recordings = events_committed_together([TARGET, OTHER, TARGET, TARGET])
    for recording in recordings:
        finished_event(recording)
    assert sorted(r.args["ID"] for r in requests_to(receiver, "/hook")) == sorted(
        r.request_id for r in recordings if r.external_number == TARGET
    )
    assert requests_to(receiver, "/memo") == []
    step = Step.objects.get(action_name="memo")
    assert step.status == Step.Status.FAILED
    assert step.error.startswith("cannot build the request: header line 1 holds characters a header cannot carry")


def test_an_extracted_value_a_header_cannot_carry_fails_that_step_with_a_clear_error(worker, receiver):
    receiver.expect_request("/login").respond_with_data("name=山田")
    receiver.expect_request("/use").respond_with_data("ok")
    make_action(receiver, "/login", extraction_pattern="name=(?P<NAME>.+)")
    make_action(receiver, "/use", order=2, headers="X-Name: {NAME}")
    recording = stored_recording()
    finished_event(recording)
    assert requests_to(receiver, "/use") == []
    step = Step.objects.get(event__recording=recording, action_name="use")
    assert step.status == Step.Status.FAILED
    assert step.error == (
        "cannot build the request: a header value can only hold Latin-1 characters, not '山田': put such text in the body"
    )


def test_an_event_whose_recording_cannot_be_read_fails_alone_and_says_why(worker, receiver):
    receiver.expect_request("/hook").respond_with_data("ok")
    make_action(receiver)
    worker_batch = [stored_recording(separated=False) for _ in range(3)]
    for recording in worker_batch:
        finished_event(recording)  # delivered once; now they come again, one of them unreadable
    receiver.clear_log()
    bad = worker_batch[1]
    with connection.cursor() as cursor:
        # what an ingest without date checks could store: a start the driver cannot read back
        cursor.execute("UPDATE recordings_recording SET started_at = '0001-01-01 00:00:00+09' WHERE id = %s", [bad.pk])
    with transaction.atomic():
        events = [Event.objects.create(recording_id=r.pk, queued_at=None) for r in worker_batch]
    services.event_queue(event_id=events[0].pk)
    for event in (events[0], events[2]):
        wait_until(lambda: Event.objects.get(pk=event.pk).status == Event.Status.DONE, message="the good events")
    failed = wait_until(lambda: Event.objects.filter(pk=events[1].pk, status=Event.Status.FAILED).first(),
                        message="the bad event to fail")
    assert failed.error == f"cannot be run: LookupError: its recording (id {bad.pk}) cannot be read"
    assert sorted(r.args["ID"] for r in requests_to(receiver, "/hook")) == sorted(
        [worker_batch[0].request_id, worker_batch[2].request_id]
    )
    with connection.cursor() as cursor:
        cursor.execute("UPDATE recordings_recording SET started_at = now() WHERE id = %s", [bad.pk])


def test_an_administrator_can_cancel_an_event_and_nothing_more_is_sent(worker, receiver, admin_client):
    receiver.expect_request("/hook").respond_with_data("busy", status=500)
    make_action(receiver, retry_count=50, retry_interval=1)
    recording = stored_recording()
    event = Event.objects.get(recording=recording)
    wait_until(lambda: len(requests_to(receiver, "/hook")) >= 2, message="a first retry")
    answer = admin_client.post("/admin/callactions/event/", {"action": "cancel", "_selected_action": [str(event.pk)]},
                               follow=True)
    assert "Cancelled 1 event(s)." in answer.content.decode()
    sent = len(requests_to(receiver, "/hook"))
    time.sleep(3)
    assert len(requests_to(receiver, "/hook")) <= sent + 1, "at most the attempt in flight when cancelled"
    event.refresh_from_db()
    assert event.status == Event.Status.CANCELLED and event.finished_at is not None
    page = admin_client.get("/admin/callactions/event/?status=cancelled").content.decode()
    assert "cancelled by an administrator" in page or "Cancelled" in page
    assert services.event_sweep() == 0


class TricklingReceiver:
    """A raw socket server that answers one header line at a time, a line every
    `interval` seconds, forever: a per-read timeout never fires on it. Counts the
    connections it has open at once."""

    def __init__(self, interval=0.3, tls_handshake=False):
        self.interval = interval
        self.tls_handshake = tls_handshake
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.requests = []
        self.open_now = 0
        self.most_open = 0
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.server.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(client,), daemon=True).start()

    def _answer(self, client):
        with self.lock:
            self.open_now += 1
            self.most_open = max(self.most_open, self.open_now)
        try:
            if self.tls_handshake:
                self._trickle_server_hello(client)
                return
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            self.requests.append((time.monotonic(), head.split(b"\r\n", 1)[0].decode()))
            client.sendall(b"HTTP/1.1 200 OK\r\n")
            for number in range(1000):
                if self.stopped.wait(self.interval):
                    return
                client.sendall(b"X-Line-%d: still coming\r\n" % number)
        except OSError:
            pass
        finally:
            with self.lock:
                self.open_now -= 1
            client.close()

    def _trickle_server_hello(self, client):
        """Answer a ClientHello with a TLS record header announcing 16 KiB of handshake, then
        one byte of it every `interval`: the handshake never ends, no single read times out."""
        client.recv(4096)
        client.sendall(b"\x16\x03\x03\x40\x00")
        for _ in range(1000):
            if self.stopped.wait(self.interval):
                return
            client.sendall(b"\x00")

    def stop(self):
        self.stopped.set()
        self.server.close()


@pytest.fixture
def trickler():
    server = TricklingReceiver()
    yield server
    server.stop()


def test_a_receiver_trickling_its_headers_is_cut_at_the_timeout(trickler, settings):
    import ipaddress

    from callactions import transport

    settings.CALLACTION_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    started = time.monotonic()
    with pytest.raises(transport.TransportError) as failed:
        transport.send(method="GET", url=f"http://127.0.0.1:{trickler.port}/hook", headers=[], body="", timeout=2)
    assert failed.value.message == "timed out after 2 s" and not failed.value.permanent
    assert 1.9 < time.monotonic() - started < 3


def test_a_receiver_trickling_its_tls_handshake_is_cut_at_the_timeout(settings):
    import ipaddress

    from callactions import transport

    settings.CALLACTION_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    server = TricklingReceiver(tls_handshake=True)
    try:
        started = time.monotonic()
        with pytest.raises(transport.TransportError) as failed:
            transport.send(method="GET", url=f"https://127.0.0.1:{server.port}/hook", headers=[], body="", timeout=2)
        assert not failed.value.permanent
        assert 1.9 < time.monotonic() - started < 3
    finally:
        server.stop()


def test_through_the_worker_a_trickling_receiver_gets_one_attempt_cut_at_the_timeout(worker, trickler):
    action = CallAction(name="trickle", url=f"http://127.0.0.1:{trickler.port}/hook?ID={{ID}}", timeout=2)
    action.full_clean()
    action.save()
    action.targets.set([ExternalNumber.objects.get_or_create(number=TARGET)[0]])
    recording = stored_recording()
    wait_until(lambda: trickler.requests, message="the request to arrive")
    event = Event.objects.get(recording=recording)
    # the claim covers the whole attempt with room to spare: no second worker can take it meanwhile
    assert (event.claimed_until - Attempt.objects.get(step__event=event).started_at).total_seconds() >= 2 + 10
    finished_event(recording, timeout=15)
    attempt = Attempt.objects.get(step__event=event)
    assert attempt.error == "timed out after 2 s" and attempt.succeeded is False
    assert 1900 <= attempt.elapsed_ms < 3500
    time.sleep(1)
    assert len(trickler.requests) == 1 and trickler.most_open == 1


def terminate_the_test_databases_other_connections():
    """What a PostgreSQL restart or failover does to every open connection (ours excepted)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_the_worker_delivers_again_right_after_its_database_connections_were_dropped(worker, receiver):
    receiver.expect_request("/hook").respond_with_data("ok")
    make_action(receiver)
    finished_event(stored_recording())  # the worker now holds open connections
    assert terminate_the_test_databases_other_connections() >= 1
    recordings = [stored_recording() for _ in range(3)]
    for recording in recordings:
        finished_event(recording, timeout=15)
    assert len(requests_to(receiver, "/hook")) == 4


def test_the_web_answers_without_a_500_right_after_its_database_connections_were_dropped(
    gunicorn_server, make_token, set_system
):
    import requests

    set_system(burst_limit_per_second=1000)
    token = make_token()
    url = f"{gunicorn_server}/public/api/v1/monitor/21061600000268009999"
    headers = {"Authorization": f"Token {token}"}
    with requests.Session() as session:
        for _ in range(16):  # every worker thread gets a connection of its own
            assert session.get(url, headers=headers, timeout=10).status_code == 404
        assert terminate_the_test_databases_other_connections() >= 1
        statuses = [session.get(url, headers=headers, timeout=10).status_code for _ in range(16)]
    assert statuses == [404] * 16
