"""Templates, encodings, patterns and signatures (pure functions)."""

import base64
import json
import time

import pytest
from standardwebhooks.webhooks import Webhook

from callactions import patterns, render

SAMPLE = {"ID": "21061600000268000060", "TEL": "09012345678", "DATE": "2021-06-16 20:03:33"}


def build(url="http://receiver.example/x", method="GET", headers="", body="", values=SAMPLE):
    return render.render_request(method=method, url=url, headers=headers, body=body, values=values)


def test_url_values_are_percent_encoded_as_the_spec_shows():
    request = build(url="https://customer.example/monitor_file_event?ID={ID}&TEL={TEL}&DATE={DATE}")
    assert request["url"] == (
        "https://customer.example/monitor_file_event?ID=21061600000268000060&TEL=09012345678"
        "&DATE=2021-06-16%2020%3A03%3A33"
    )


def test_a_url_value_cannot_add_parameters_or_change_the_path():
    request = build(url="http://receiver.example/x?TEL={TEL}", values={"TEL": "1&admin=1/../#x"})
    assert request["url"] == "http://receiver.example/x?TEL=1%26admin%3D1%2F..%2F%23x"


def test_json_body_values_are_json_escaped_and_other_braces_are_literal():
    request = build(method="POST", body='{"id": "{ID}", "note": "{TEL}", "nested": {"x": 1}}',
                    values={"ID": 'a"b\\c\nd', "TEL": "{ID}"})
    assert json.loads(request["body"]) == {"id": 'a"b\\c\nd', "note": "{ID}", "nested": {"x": 1}}
    assert ["Content-Type", "application/json"] in request["headers"]


def test_form_body_values_are_form_encoded():
    request = build(method="POST", body="id={ID}&date={DATE}", values={**SAMPLE, "ID": "a&b=c"})
    assert request["body"] == "id=a%26b%3Dc&date=2021-06-16+20%3A03%3A33"
    assert ["Content-Type", "application/x-www-form-urlencoded"] in request["headers"]


def test_the_content_type_header_decides_the_body_encoding():
    request = build(method="POST", headers="Content-Type: application/vnd.api+json", body='["{ID}"]',
                    values={"ID": 'x"y'})
    assert json.loads(request["body"]) == ['x"y']
    raw = build(method="POST", headers="Content-Type: text/plain", body="id={ID}", values={"ID": "a b&c"})
    assert raw["body"] == "id=a b&c"


def test_only_capitalised_names_are_variables():
    assert render.variables_in("{ID} {id} {Id} { ID } {ID2_X} {}") == ["ID", "ID2_X"]
    assert render.render("{id}{ID}{ }", {"ID": "1"}) == "{id}1{ }"


def test_a_header_value_with_cr_or_lf_is_refused():
    with pytest.raises(render.RenderError, match="CR or LF"):
        build(headers="X-Tel: {TEL}", values={"TEL": "1\r\nX-Injected: yes"})


def test_header_lines_accept_crlf_line_ends_and_refuse_a_bare_cr():
    assert render.header_lines("A: 1\r\nB: 2\r\n") == [("A", "1"), ("B", "2")]
    with pytest.raises(render.RenderError, match="header injection"):
        render.header_lines("A: 1\rB: 2")


def test_a_missing_variable_is_named():
    with pytest.raises(render.RenderError, match=r"\{TOKEN\} has no value"):
        build(url="http://receiver.example/?t={TOKEN}")


def test_signatures_verify_with_the_standard_webhooks_library():
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    timestamp = int(time.time())
    body = '{"id": "1"}'
    headers = dict(render.identity_headers(message_id="msg_1", secret=secret, timestamp=timestamp, body=body))
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == {"id": "1"}


def test_without_a_secret_only_the_event_id_is_sent():
    assert render.identity_headers(message_id="m", secret="", timestamp=1, body="") == [["webhook-id", "m"]]


@pytest.mark.parametrize("secret", ["abc", "whsec_!!!", "whsec_" + base64.b64encode(b"short").decode()])
def test_malformed_signing_secrets_are_refused(secret):
    with pytest.raises(ValueError):
        render.signing_key(secret)


def test_patterns_accept_the_pcre_form_with_flags_and_the_bare_form():
    assert patterns.search("/^ok$/im", "x\nOK\ny")
    assert patterns.search("^ok$", "x\nOK\ny") is None
    assert patterns.search("(?<TOKEN>[a-z]+)", "  abc ").group("TOKEN") == "abc"
    assert patterns.group_names("/token=(?P<TOKEN>\\w+)/") == ["TOKEN"]


def test_an_unknown_pcre_flag_or_a_broken_pattern_is_explained():
    with pytest.raises(patterns.PatternError, match="unknown flag 'g'"):
        patterns.compile_pattern("/x/g")
    with pytest.raises(patterns.PatternError, match="invalid regular expression"):
        patterns.compile_pattern("(unclosed")


def test_a_catastrophic_pattern_gives_up_in_time():
    started = time.monotonic()
    with pytest.raises(patterns.PatternError, match="gave up"):
        patterns.search("(a+)+$", "a" * 60_000 + "!")
    # Unbounded, this backtracking would run for longer than anyone waits; the limit is
    # checked between steps of the matcher, so allow for a loaded machine.
    assert time.monotonic() - started < patterns.TIME_LIMIT_SECONDS + 8
