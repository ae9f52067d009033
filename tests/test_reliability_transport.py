"""The SSRF guard sees through every IPv6 form that embeds an IPv4 address (issue 10
item 7), and a transport error says whether retrying can help (issue 11 item 5)."""

import ipaddress
import time

import pytest
from werkzeug import Response

from callactions import services, transport
from callactions.models import Attempt, Step
from tests.callactions_support import celery_worker, receiver, wait_until, worker  # noqa: F401 (fixtures)
from tests.factories import stored_recording
from tests.test_callactions_delivery import finished_event, make_action


@pytest.mark.parametrize(
    "address, embedded",
    [
        ("::ffff:169.254.169.254", "169.254.169.254"),  # IPv4-mapped
        ("::a9fe:a9fe", "169.254.169.254"),  # IPv4-compatible (deprecated)
        ("::127.0.0.1", "127.0.0.1"),
        ("::10.0.0.1", "10.0.0.1"),
        ("::ffff:0:a9fe:a9fe", "169.254.169.254"),  # IPv4-translated
        ("2002:a9fe:a9fe::1", "169.254.169.254"),  # 6to4
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # NAT64, well-known prefix
        ("64:ff9b:1::a9fe:a9fe", "169.254.169.254"),  # NAT64, local-use prefix
        ("2001:0:4136:e378:8000:63bf:5601:5601", "169.254.169.254"),  # Teredo (client address inverted)
    ],
)
def test_every_ipv6_form_embedding_an_ipv4_address_is_checked_as_that_address(settings, address, embedded):
    settings.CALLACTION_ALLOWED_NETWORKS = []
    ip = ipaddress.ip_address(address)
    assert transport.embedded_ipv4(ip) == ipaddress.ip_address(embedded)
    assert transport.address_refusal(ip) is not None


@pytest.mark.parametrize("address", ["::", "::1", "2606:4700:4700::1111"])
def test_plain_ipv6_addresses_are_not_taken_for_embedded_ipv4(address):
    assert transport.embedded_ipv4(ipaddress.ip_address(address)) is None


def test_a_public_ipv4_address_in_an_ipv6_wrapper_is_allowed(settings):
    settings.CALLACTION_ALLOWED_NETWORKS = []
    assert transport.address_refusal(ipaddress.ip_address("::ffff:8.8.8.8")) is None
    assert transport.address_refusal(ipaddress.ip_address("64:ff9b::808:808")) is None


@pytest.mark.parametrize("host", ["[::a9fe:a9fe]", "[::127.0.0.1]", "[::ffff:0:7f00:1]", "[64:ff9b:1::7f00:1]"])
def test_send_refuses_ipv4_compatible_and_translated_forms_before_connecting(settings, host):
    settings.CALLACTION_ALLOWED_NETWORKS = []
    started = time.monotonic()
    with pytest.raises(transport.TransportError, match="refused") as refused:
        transport.send(method="GET", url=f"http://{host}/latest/meta-data/", headers=[], body="", timeout=5)
    assert refused.value.permanent
    assert time.monotonic() - started < 1


def test_a_call_action_to_the_metadata_address_in_ipv4_compatible_form_fails_at_once(worker, receiver, settings):
    settings.CALLACTION_ALLOWED_NETWORKS = []
    action = make_action(receiver, url="http://[::a9fe:a9fe]/latest/meta-data/?ID={ID}", retry_count=3)
    attempt = services.action_send_test(action=action)
    assert attempt.succeeded is False
    assert attempt.error.startswith("refused: ::a9fe:a9fe resolves to ::a9fe:a9fe, a loopback, private, link-local")
    recording = stored_recording()
    finished_event(recording)
    step = Step.objects.get(event__recording=recording)
    assert step.status == Step.Status.FAILED and step.failures == 1, "permanent: no retries spent on it"
    assert step.error.startswith("gave up at once (retrying cannot help): refused:")


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://no-such-host.invalid/hook", "cannot resolve no-such-host.invalid"),
        ("http://127.0.0.1:99999/hook", "malformed URL"),
    ],
)
def test_an_unresolvable_host_or_a_malformed_url_is_permanent(settings, url, message):
    settings.CALLACTION_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    with pytest.raises(transport.TransportError, match=message) as failed:
        transport.send(method="GET", url=url, headers=[], body="", timeout=5)
    assert failed.value.permanent


def test_a_refused_connection_and_a_timeout_stay_retryable(receiver, settings):
    from tests.conftest import free_port

    settings.CALLACTION_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    with pytest.raises(transport.TransportError) as refused:
        transport.send(method="GET", url=f"http://127.0.0.1:{free_port()}/", headers=[], body="", timeout=2)
    assert not refused.value.permanent
    receiver.expect_request("/slow").respond_with_handler(lambda request: time.sleep(2) or Response("late"))
    with pytest.raises(transport.TransportError) as timed_out:
        transport.send(method="GET", url=receiver.url_for("/slow"), headers=[], body="", timeout=1)
    assert not timed_out.value.permanent


def test_an_unresolvable_destination_fails_the_step_without_spending_its_retries(worker, receiver):
    make_action(receiver, url="http://no-such-host.invalid/hook?ID={ID}", retry_count=5, retry_interval=1)
    recording = stored_recording()
    finished_event(recording, timeout=10)
    step = Step.objects.get(event__recording=recording)
    assert step.status == Step.Status.FAILED and Attempt.objects.filter(step=step).count() == 1


@pytest.mark.parametrize("status", [429, 503])
def test_a_receivers_retry_after_longer_than_the_interval_is_honoured(worker, receiver, status):
    times = []

    def answer(request):
        times.append(time.monotonic())
        if len(times) == 1:
            return Response("slow down", status=status, headers={"Retry-After": "3"})
        return Response("ok")

    receiver.expect_request("/hook").respond_with_handler(answer)
    make_action(receiver, retry_count=2, retry_interval=1)
    recording = stored_recording()
    finished_event(recording, timeout=20)
    assert len(times) == 2 and times[1] - times[0] >= 2.9
    step = Step.objects.get(event__recording=recording)
    assert step.status == Step.Status.SUCCEEDED


def test_a_retry_after_shorter_than_the_interval_leaves_the_interval(worker, receiver):
    times = []

    def answer(request):
        times.append(time.monotonic())
        return Response("busy", status=503, headers={"Retry-After": "0"}) if len(times) == 1 else Response("ok")

    receiver.expect_request("/hook").respond_with_handler(answer)
    make_action(receiver, retry_count=1, retry_interval=2)
    finished_event(stored_recording(), timeout=20)
    assert len(times) == 2 and times[1] - times[0] >= 1.95


def test_retry_after_is_read_as_seconds_or_an_http_date():
    from datetime import datetime, timezone

    now = datetime(2026, 1, 1, 0, 0, 0, tzinfo=timezone.utc)
    assert transport.retry_after_seconds("120") == 120
    assert transport.retry_after_seconds("Thu, 01 Jan 2026 00:01:00 GMT", now=now) == 60
    assert transport.retry_after_seconds("soon") is None
    assert transport.retry_after_seconds("9" * 5000) is None
