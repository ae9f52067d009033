"""Nothing is lost: a worker killed mid-delivery, Redis down when the recording commits.

Each test runs on a redis-server of its own (so it can kill workers and Redis without
disturbing the rest of the suite); the recording is ingested and the sweep run by
separate processes pointed at that Redis, as the web server and beat would be.
"""

import os
import subprocess
import sys
import threading
import time

import pytest
from werkzeug import Response

from callactions.models import Attempt, CallAction, Event, ExternalNumber
from tests.callactions_support import RedisServer, Worker, receiver, wait_until  # noqa: F401
from tests.conftest import ROOT, database_url, free_port

pytestmark = pytest.mark.django_db(transaction=True)
TARGET = "0312345678"


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def workers(tmp_path, own_redis):
    started = []

    def start(name):
        worker = Worker(tmp_path / f"{name}.log", redis_url=own_redis.url).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def django_process(code, redis_url, tmp_path, wait=True):
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "MEDIA_ROOT": str(tmp_path / "media"),
        "CALLACTION_ALLOWED_NETWORKS": "127.0.0.0/8",
    }
    command = [sys.executable, "manage.py", "shell", "-c", code]
    if wait:
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


INGEST = "from tests.factories import stored_recording; print(stored_recording(external_number='%s').pk)" % TARGET
SWEEP_EVERY_SECOND = "import time\nfrom callactions.services import event_sweep\nfor _ in range(90):\n    event_sweep()\n    time.sleep(1)\n"


def make_action(receiver, **fields):
    action = CallAction(name="notify", url=f"http://127.0.0.1:{receiver.port}/hook?ID={{ID}}", **fields)
    action.full_clean()
    action.save()
    action.targets.set([ExternalNumber.objects.create(number=TARGET)])
    return action


@pytest.fixture
def sweeper(own_redis, tmp_path):
    processes = []

    def start():
        processes.append(django_process(SWEEP_EVERY_SECOND, own_redis.url, tmp_path, wait=False))

    yield start
    for process in processes:
        process.kill()
        process.wait()


def test_a_worker_killed_mid_delivery_still_delivers_after_a_new_worker_starts(
    receiver, own_redis, workers, sweeper, tmp_path
):
    arrivals = []
    release = threading.Event()

    def answer(request):
        arrivals.append(request.headers["webhook-id"])
        if len(arrivals) == 1:
            release.wait(10)  # the first delivery is in flight when the worker dies
        return Response("ok")

    receiver.expect_request("/hook").respond_with_handler(answer)
    make_action(receiver, timeout=2)
    first = workers("first")
    recording_id = int(django_process(INGEST, own_redis.url, tmp_path).stdout.strip().splitlines()[-1])
    wait_until(lambda: arrivals, message="the first delivery to start")
    first.kill()
    release.set()
    event = Event.objects.get(recording_id=recording_id)
    assert event.status == Event.Status.PENDING

    workers("second")
    sweeper()
    wait_until(lambda: len(arrivals) >= 2, timeout=60, message="the delivery after the crash")
    wait_until(lambda: Event.objects.get(pk=event.pk).status == Event.Status.DONE, message="the event to be done")
    assert len(set(arrivals)) == 1, "the duplicate carries the same event id"
    interrupted, completed = Attempt.objects.filter(step__event=event).order_by("number")
    assert interrupted.finished_at is None and completed.succeeded


def test_a_recording_committed_while_redis_is_down_is_delivered_once_it_is_back(
    receiver, own_redis, workers, sweeper, tmp_path
):
    receiver.expect_request("/hook").respond_with_data("ok")
    make_action(receiver)
    workers("worker")
    own_redis.stop()

    started = time.monotonic()
    recording_id = int(django_process(INGEST, own_redis.url, tmp_path).stdout.strip().splitlines()[-1])
    event = Event.objects.get(recording_id=recording_id)
    assert event.status == Event.Status.PENDING and event.queued_at is None, "stored, and marked as not queued"
    assert time.monotonic() - started < 15, "the commit did not wait long for the broker"
    time.sleep(1)
    assert receiver.log == []

    own_redis.start()
    sweeper()
    wait_until(lambda: Event.objects.get(pk=event.pk).status == Event.Status.DONE, timeout=60, message="delivery")
    time.sleep(1)
    assert len(receiver.log) == 1
