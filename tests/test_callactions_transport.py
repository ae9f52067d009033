"""Sending one request: the SSRF guard, the pinned connection, and what is read."""

import ipaddress
import ssl
import subprocess
import time

import pytest
from werkzeug import Response

from callactions import transport
from tests.callactions_support import receiver  # noqa: F401 (fixture)

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


def send(url, timeout=5, method="GET", headers=(), body=""):
    return transport.send(method=method, url=url, headers=list(headers), body=body, timeout=timeout)


@pytest.fixture
def allow_loopback(settings):
    settings.CALLACTION_ALLOWED_NETWORKS = LOOPBACK


def test_loopback_is_refused_without_the_allowance(receiver, settings):
    settings.CALLACTION_ALLOWED_NETWORKS = []
    receiver.expect_request("/hook").respond_with_data("ok")
    with pytest.raises(transport.TransportError, match="refused: 127.0.0.1 resolves to 127.0.0.1"):
        send(receiver.url_for("/hook"))
    assert receiver.log == []


def test_loopback_is_reached_when_its_network_is_allowed(receiver, allow_loopback):
    receiver.expect_request("/hook").respond_with_data("ok")
    assert send(receiver.url_for("/hook")).status == 200


@pytest.mark.parametrize(
    "host",
    [
        "localhost",  # a name resolving to a loopback address
        "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
        "2130706433",  # 127.0.0.1 written as one number
        "0177.0.0.1",  # octal
        "[::1]",
        "0.0.0.0",
        "[2002:7f00:1::1]",  # 6to4 around 127.0.0.1
        "[64:ff9b::7f00:1]",  # NAT64 around 127.0.0.1
    ],
)
def test_disguised_loopback_destinations_are_refused(receiver, settings, host):
    settings.CALLACTION_ALLOWED_NETWORKS = []
    receiver.expect_request("/hook").respond_with_data("ok")
    port = receiver.port
    with pytest.raises(transport.TransportError, match="refused"):
        send(f"http://{host}:{port}/hook")
    assert receiver.log == []


@pytest.mark.parametrize("host", ["169.254.169.254", "10.0.0.1", "192.168.1.1", "172.16.0.1", "[fe80::1]", "[fd00::1]"])
def test_private_and_link_local_destinations_are_refused_even_with_loopback_allowed(allow_loopback, host):
    started = time.monotonic()
    with pytest.raises(transport.TransportError, match="refused"):
        send(f"http://{host}/latest/meta-data/")
    assert time.monotonic() - started < 1, "refused before any connection attempt"


def test_the_mapped_form_of_an_allowed_address_counts_as_that_address(receiver, allow_loopback):
    receiver.expect_request("/hook").respond_with_data("ok")
    assert send(f"http://[::ffff:127.0.0.1]:{receiver.port}/hook").status == 200


def test_the_connection_goes_to_the_checked_address_with_the_urls_host_header(receiver, allow_loopback):
    receiver.expect_request("/hook").respond_with_data("ok")
    assert transport.checked_address("localhost", receiver.port) == ipaddress.ip_address("127.0.0.1")
    send(f"http://localhost:{receiver.port}/hook", headers=[("Host", "evil.example")])
    (request, _), = receiver.log
    assert request.headers["Host"] == f"localhost:{receiver.port}"


def test_a_redirect_is_returned_and_its_target_never_requested(receiver, allow_loopback):
    receiver.expect_request("/hook").respond_with_data("", status=302, headers={"Location": "/elsewhere"})
    receiver.expect_request("/elsewhere").respond_with_data("should never be fetched")
    response = send(receiver.url_for("/hook"))
    assert (response.status, response.location) == (302, "/elsewhere")
    assert [r.path for r, _ in receiver.log] == ["/hook"]


def test_at_most_64_kb_of_the_body_is_read(receiver, allow_loopback):
    receiver.expect_request("/big").respond_with_data(b"x" * (4 * 1024 * 1024))
    response = send(receiver.url_for("/big"))
    assert len(response.body) == transport.MAX_BODY_BYTES and response.truncated


def test_no_answer_within_the_timeout_is_a_failure(receiver, allow_loopback):
    receiver.expect_request("/slow").respond_with_handler(lambda request: time.sleep(3) or Response("late"))
    started = time.monotonic()
    with pytest.raises(transport.TransportError, match="timed out after 1 s"):
        send(receiver.url_for("/slow"), timeout=1)
    assert time.monotonic() - started < 2


def test_a_body_dripping_in_slowly_is_cut_at_the_timeout(receiver, allow_loopback):
    def drip(request):
        def chunks():
            for _ in range(20):
                time.sleep(0.2)
                yield b"."

        return Response(chunks())

    receiver.expect_request("/drip").respond_with_handler(drip)
    started = time.monotonic()
    with pytest.raises(transport.TransportError, match="while reading"):
        send(receiver.url_for("/drip"), timeout=1)
    assert time.monotonic() - started < 2


def test_a_refused_connection_is_a_failure(allow_loopback):
    from tests.conftest import free_port

    with pytest.raises(transport.TransportError, match="connection"):
        send(f"http://127.0.0.1:{free_port()}/")


@pytest.fixture
def tls_receiver(tmp_path, monkeypatch):
    """An HTTPS receiver whose certificate names only `localhost`, trusted through SSL_CERT_FILE."""
    from pytest_httpserver import HTTPServer

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context, threaded=True)
    server.start()
    yield server
    server.stop()


def test_https_to_a_name_verifies_the_certificate_against_that_name(tls_receiver, allow_loopback):
    tls_receiver.expect_request("/hook").respond_with_data("ok")
    assert send(f"https://localhost:{tls_receiver.port}/hook").status == 200
    with pytest.raises(transport.TransportError, match="connection failed"):
        send(f"https://127.0.0.1:{tls_receiver.port}/hook")
