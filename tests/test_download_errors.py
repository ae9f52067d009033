"""Every row of the error table of SPEC.md §3.3, sent as the real bad request."""

import logging
import time

import pytest
from django.utils import timezone

from recordings import storage
from tests.factories import stored_recording

URL = "/public/api/v1/monitor/{}"

INVALID_REQUEST = {
    "name": "AuthenticationException",
    "type": "UNAUTHENTICATED",
    "exception_id": None,
    "message": "Unauthenticated: method=personal_token, cause=invalid request",
    "messages": None,
    "reason": "Unauthenticated: method=personal_token, cause=invalid request",
}
INVALID_TOKEN = {
    "name": "AuthenticationException",
    "type": "UNAUTHENTICATED",
    "exception_id": None,
    "message": "Unauthenticated: method=personal_token, cause=invalid token.",
    "messages": None,
    "reason": "Unauthenticated: method=personal_token, cause=invalid token.",
}
BURST = {
    "name": "AuthenticationException",
    "type": "REQUEST_BURST_LIMIT_EXCEEDED",
    "exception_id": None,
    "message": "exceptions.AccessLimitException.",
    "messages": None,
    "reason": "exceptions.AccessLimitException.",
}
MONTHLY = {**BURST, "type": "MONTHLY_LIMIT_EXCEEDED"}
NOT_CONTRACTED = {
    "name": "AuthenticationException",
    "type": "FORBIDDEN",
    "exception_id": None,
    "message": "This action is unauthorized.",
    "messages": None,
    "reason": "This action is unauthorized.",
}
UNAUTHORIZED = {**NOT_CONTRACTED, "name": "AuthorizationException"}
BAD_CONTENT_TYPE = {
    "name": "ValidateException",
    "type": "VALIDATE_ERROR",
    "exception_id": None,
    "message": "選択されたmonitor log monitor typeは正しくありません",
    "messages": {"content_type": ["選択されたmonitor log monitor typeは正しくありません"]},
    "reason": "選択されたmonitor log monitor typeは正しくありません",
}
NOT_FOUND = {
    "name": "EntityNotFoundException",
    "type": "NOT_FOUND",
    "exception_id": None,
    "message": "対象が存在しません",
    "messages": None,
    "reason": "対象が存在しません",
}


@pytest.fixture
def recording(db):
    return stored_recording(group="support")


def get(client, recording_id, token=None, authorization=None, **params):
    headers = {}
    if authorization is not None:
        headers["HTTP_AUTHORIZATION"] = authorization
    elif token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Token {token}"
    return client.get(URL.format(recording_id), params, **headers)


@pytest.mark.parametrize("authorization", [None, "Token", "Token ", "Bearer abc", "Basic dXNlcjpwYXNz"])
def test_missing_or_malformed_authorization_is_an_invalid_request(client, recording, authorization):
    response = get(client, recording.request_id, authorization=authorization)
    assert response.status_code == 401
    assert response.json() == INVALID_REQUEST


def test_unknown_token_is_an_invalid_token(client, recording):
    response = get(client, recording.request_id, token="0" * 80)
    assert response.status_code == 401
    assert response.json() == INVALID_TOKEN


def test_revoked_token_is_an_invalid_token(client, recording, token):
    from biztel.models import ApiToken

    ApiToken.objects.update(revoked_at=timezone.now())
    response = get(client, recording.request_id, token=token)
    assert response.json() == INVALID_TOKEN


def test_expired_token_is_an_invalid_token(client, recording, token):
    from biztel.models import ApiToken

    ApiToken.objects.update(expires_at=timezone.now())
    response = get(client, recording.request_id, token=token)
    assert response.status_code == 401
    assert response.json() == INVALID_TOKEN


def wait_for_fresh_second():
    time.sleep(1 - time.time() % 1 + 0.01)


def test_more_requests_in_a_second_than_the_burst_limit_are_refused(client, recording, token, set_system):
    set_system(burst_limit_per_second=1)
    wait_for_fresh_second()
    first = get(client, recording.request_id, token=token)
    second = get(client, recording.request_id, token=token)
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json() == BURST
    assert second["Retry-After"] == "1"
    assert second["RateLimit-Policy"] == '"burst";q=1;w=1'
    assert second["RateLimit"] == '"burst";r=0;t=1'
    assert (second["X-RateLimit-Limit"], second["X-RateLimit-Remaining"]) == ("100000", "99999")


def test_an_answer_that_is_not_counted_still_tells_the_months_standing(client, recording, token, set_system):
    set_system(monthly_request_limit=10)
    get(client, recording.request_id, token=token)
    refused = get(client, recording.request_id, token="wrong")
    assert refused.status_code == 401
    assert (refused["X-RateLimit-Limit"], refused["X-RateLimit-Remaining"]) == ("10", "9")
    assert int(refused["X-RateLimit-Reset"]) > time.time()


def test_used_up_monthly_request_quota_is_refused_with_seconds_to_reset(client, recording, token, set_system):
    set_system(monthly_request_limit=2)
    assert get(client, recording.request_id, token=token).status_code == 200
    assert get(client, recording.request_id, token=token).status_code == 200
    response = get(client, recording.request_id, token=token)
    assert response.status_code == 429
    assert response.json() == MONTHLY
    assert int(response["Retry-After"]) > 1
    assert response["X-RateLimit-Remaining"] == "0"


def test_used_up_monthly_object_quota_is_refused(client, recording, token, set_system):
    set_system(monthly_response_object_limit=1)
    assert get(client, recording.request_id, token=token).status_code == 200
    response = get(client, recording.request_id, token=token)
    assert response.status_code == 429
    assert response.json() == MONTHLY


def test_recording_file_api_not_contracted_is_forbidden(client, recording, token, set_system):
    set_system(recording_file_api=False)
    response = get(client, recording.request_id, token=token)
    assert response.status_code == 403
    assert response.json() == NOT_CONTRACTED


def test_recording_licence_switched_off_forbids_past_files(client, recording, token, set_system):
    set_system(recording=False)
    response = get(client, recording.request_id, token=token)
    assert response.status_code == 403
    assert response.json() == NOT_CONTRACTED


def test_recording_file_api_disabled_in_settings_is_unauthorized(client, recording, token, set_system):
    set_system(recording_file_api_enabled=False)
    response = get(client, recording.request_id, token=token)
    assert response.status_code == 403
    assert response.json() == UNAUTHORIZED


@pytest.mark.parametrize("content_type", ["lr", "", "LEFT", "mono"])
def test_unknown_content_type_is_a_validation_error(client, recording, token, content_type):
    response = get(client, recording.request_id, token=token, content_type=content_type)
    assert response.status_code == 400
    assert response.json() == BAD_CONTENT_TYPE


@pytest.mark.parametrize("content_type", ["left", "right"])
def test_separated_leg_without_separation_licence_is_unauthorized(client, recording, token, set_system, content_type):
    set_system(voice_file_separation=False)
    response = get(client, recording.request_id, token=token, content_type=content_type)
    assert response.status_code == 403
    assert response.json() == UNAUTHORIZED


@pytest.mark.parametrize("recording_id", ["99999999999999999999", "no-such", "bad%20id", "a" * 65])
def test_unknown_or_malformed_id_is_not_found(client, recording, token, recording_id):
    response = get(client, recording_id, token=token)
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_account_outside_the_recordings_group_is_unauthorized(client, recording, make_token):
    response = get(client, recording.request_id, token=make_token(groups="sales,billing"))
    assert response.status_code == 403
    assert response.json() == UNAUTHORIZED


def test_account_inside_the_recordings_group_may_download(client, recording, make_token):
    response = get(client, recording.request_id, token=make_token(groups="sales,support"))
    assert response.status_code == 200


@pytest.mark.parametrize("role", ["supervisor", "operator"])
def test_prohibition_below_supervisor_forbids_supervisors_and_operators(client, recording, make_token, set_system, role):
    set_system(prohibit_download_below_supervisor=True)
    response = get(client, recording.request_id, token=make_token(role=role))
    assert response.status_code == 403
    assert response.json() == UNAUTHORIZED


def test_prohibition_below_supervisor_still_lets_administrators_download(client, recording, make_token, set_system):
    set_system(prohibit_download_below_supervisor=True)
    assert get(client, recording.request_id, token=make_token(role="administrator")).status_code == 200


def test_without_the_prohibition_operators_may_download(client, recording, make_token):
    assert get(client, recording.request_id, token=make_token(role="operator")).status_code == 200


def test_pbx_accounts_may_not_download(client, recording, make_token):
    response = get(client, recording.request_id, token=make_token(role="pbx"))
    assert response.status_code == 403
    assert response.json() == UNAUTHORIZED


def test_purged_leg_is_not_found(client, recording, token):
    recording.files.filter(content_type="left").update(deleted_at=timezone.now())
    response = get(client, recording.request_id, token=token, content_type="left")
    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert get(client, recording.request_id, token=token, content_type="right").status_code == 200


def test_leg_never_produced_is_not_found(client, db, token):
    mixed_only = stored_recording(separated=False)
    response = get(client, mixed_only.request_id, token=token, content_type="right")
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_unexpected_failure_is_a_system_error_with_an_id_that_is_in_the_log(client, recording, token, caplog):
    # The file vanished from storage behind the product's back.
    storage.delete(recording.files.get(content_type="monaural").path)
    with caplog.at_level(logging.ERROR):
        response = get(client, recording.request_id, token=token)
    assert response.status_code == 500
    body = response.json()
    exception_id = body.pop("exception_id")
    assert body == {
        "name": "SystemException",
        "type": "INTERNAL_SERVER_ERROR",
        "message": "System error.",
        "messages": None,
        "reason": "System error.",
    }
    assert len(exception_id) == 32
    assert exception_id in caplog.text
    assert "Traceback" not in response.content.decode()


def test_checks_run_in_table_order_invalid_token_before_licence(client, recording, set_system):
    set_system(recording_file_api=False)
    assert get(client, recording.request_id, token="f" * 80).json() == INVALID_TOKEN


def test_checks_run_in_table_order_quota_before_licence(client, recording, token, set_system):
    set_system(recording_file_api=False, monthly_request_limit=1)
    assert get(client, recording.request_id, token=token).json() == NOT_CONTRACTED
    assert get(client, recording.request_id, token=token).json() == MONTHLY


def test_checks_run_in_table_order_content_type_before_lookup(client, db, token):
    assert get(client, "no-such-call", token=token, content_type="bogus").json() == BAD_CONTENT_TYPE


def test_checks_run_in_table_order_scope_before_missing_leg(client, db, make_token):
    mixed_only = stored_recording(separated=False, group="support")
    response = get(client, mixed_only.request_id, token=make_token(groups="sales"), content_type="left")
    assert response.json() == UNAUTHORIZED


def test_unknown_path_under_the_public_api_has_the_six_keys(client, db):
    response = client.get("/public/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_wrong_method_has_the_six_keys(client, recording, token):
    response = client.delete(URL.format(recording.request_id), HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 405
    assert set(response.json()) == {"name", "type", "exception_id", "message", "messages", "reason"}
    assert response.json()["type"] == "METHOD_NOT_ALLOWED"


def test_a_bad_host_header_under_the_public_api_still_has_the_six_keys(client, db):
    response = client.get(URL.format("x"), HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert set(response.json()) == {"name", "type", "exception_id", "message", "messages", "reason"}

