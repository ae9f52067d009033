"""create_api_token and biztel_settings, through the commands as an operator runs them."""

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from biztel import config
from biztel.models import Account, ApiToken
from biztel.tokens import digest
from tests.factories import stored_recording


def run(*args):
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_api_token_prints_80_hex_characters_alone(db):
    output = run("create_api_token", "--username", "asr", "--role", "operator", "--groups", "a, b", "--name", "asr")
    assert re.fullmatch(r"[0-9a-f]{80}\n", output)
    account = Account.objects.get(username="asr")
    assert (account.role, account.visible_groups) == ("operator", "a,b")


def test_only_the_hash_of_a_token_is_stored(db):
    plain = run("create_api_token", "--username", "asr").strip()
    token = ApiToken.objects.get()
    assert token.digest == digest(plain)
    assert plain not in {token.digest, token.prefix, token.name}
    assert token.prefix == plain[:8]


def test_a_printed_token_downloads(client, db):
    recording = stored_recording()
    plain = run("create_api_token", "--username", "asr").strip()
    response = client.get(f"/public/api/v1/monitor/{recording.request_id}", HTTP_AUTHORIZATION=f"Token {plain}")
    assert response.status_code == 200


def test_settings_show_every_name_with_its_default(db):
    output = run("biztel_settings")
    lines = dict(line.split("=", 1) for line in output.splitlines())
    assert lines["recording"] == "true"
    assert lines["recording_file_api"] == "true"
    assert lines["voice_file_separation"] == "true"
    assert lines["call_action"] == "true"
    assert lines["bulk_download"] == "false"
    assert lines["recording_file_api_enabled"] == "true"
    assert lines["burst_limit_per_second"] == "10"
    assert lines["monthly_request_limit"] == "100000"
    assert lines["monthly_response_object_limit"] == "100000"
    assert lines["separated_retention_days"] == "7"
    assert lines["bulk_retention_days"] == "30"
    assert lines["monaural_retention_days"] == ""
    assert lines["recording_key"] == "unique_id"
    assert lines["separation_targets"] == ""
    assert lines["prohibit_download_below_supervisor"] == "false"


def test_settings_set_changes_several_at_once(db):
    run("biztel_settings", "--set", "voice_file_separation=false", "--set", "separation_targets=03-1234-5678, 0120111222")
    row = config.load()
    assert row.voice_file_separation is False
    assert row.separation_target_list() == ["0312345678", "0120111222"]


@pytest.mark.parametrize(
    "assignment",
    ["burst_limit_per_second=0", "burst_limit_per_second=ten", "recording=yes", "recording_key=tel",
     "no_such_setting=1", "separation_targets=abc", "missing-equals"],
)
def test_settings_set_refuses_bad_values_and_changes_nothing(db, assignment):
    before = run("biztel_settings")
    with pytest.raises(CommandError):
        run("biztel_settings", "--set", "monthly_request_limit=5", "--set", assignment)
    assert run("biztel_settings") == before
