"""Call actions as the administrator sees them: validation on save, admin pages,
import/export round trip."""

import base64
import json
import re
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from callactions.models import CallAction, ExternalNumber

pytestmark = pytest.mark.django_db


def action(**fields):
    values = {"name": "notify", "url": "https://customer.example/e?ID={ID}"} | fields
    return CallAction(**values)


def errors_of(candidate):
    with pytest.raises(ValidationError) as caught:
        candidate.full_clean()
    return caught.value.message_dict


def test_a_template_with_an_unknown_variable_is_rejected_with_its_name():
    errors = errors_of(action(url="https://customer.example/e?X={NOPE}"))
    assert "Unknown variable {NOPE}" in errors["url"][0]


def test_a_variable_extracted_by_an_earlier_action_may_be_used():
    first = action(name="login", order=1, extraction_pattern="token=(?P<TOKEN>\\w+)")
    first.full_clean()
    first.save()
    action(name="use", order=2, url="https://customer.example/e?T={TOKEN}").full_clean()


def test_a_variable_extracted_by_a_later_or_same_order_action_is_rejected():
    later = action(name="later", order=3, extraction_pattern="(?P<TOKEN>\\w+)")
    later.save()
    same = action(name="same", order=2, extraction_pattern="(?P<OTHER>\\w+)")
    same.save()
    errors = errors_of(action(name="use", order=2, url="https://customer.example/e?T={TOKEN}&O={OTHER}"))
    assert "Unknown variable {OTHER}, {TOKEN}" in errors["url"][0]


@pytest.mark.parametrize("field", ["condition_pattern", "extraction_pattern", "error_pattern"])
def test_an_invalid_regex_is_rejected(field):
    errors = errors_of(action(**{field: "(unclosed"}))
    assert errors[field][0].startswith("Invalid pattern:")


def test_extraction_groups_must_be_usable_as_variables():
    errors = errors_of(action(extraction_pattern="(?P<token>\\w+)"))
    assert "cannot be a variable" in errors["extraction_pattern"][0]


def test_a_header_template_with_a_bare_cr_is_rejected_as_header_injection():
    errors = errors_of(action(headers="X-A: 1\rX-B: 2"))
    assert "header injection" in errors["headers"][0]


def test_a_malformed_header_line_is_rejected():
    errors = errors_of(action(headers="just text"))
    assert "Name: value" in errors["headers"][0]


def test_a_get_with_a_body_and_a_non_http_url_are_rejected():
    assert "GET request has no body" in errors_of(action(body="x={ID}"))["body"][0]
    assert "http://" in errors_of(action(url="ftp://customer.example/{ID}"))["url"][0]


def test_a_json_body_that_is_not_json_once_filled_is_rejected():
    errors = errors_of(action(method="POST", body='{"id": {TEL}}'))
    assert "not valid JSON" in errors["body"][0]


def test_a_signing_secret_must_be_whsec_base64():
    assert "whsec_" in errors_of(action(signing_secret="secret"))["signing_secret"][0]
    action(signing_secret="whsec_" + base64.b64encode(b"s" * 32).decode()).full_clean()


def test_admin_pages_show_actions_events_and_attempts(admin_client):
    saved = action()
    saved.save()
    for path in (
        "/admin/callactions/callaction/",
        f"/admin/callactions/callaction/{saved.pk}/change/",
        "/admin/callactions/event/",
        "/admin/callactions/attempt/",
        "/admin/callactions/externalnumber/",
    ):
        assert admin_client.get(path).status_code == 200, path


def test_admin_save_shows_the_validation_message(admin_client):
    response = admin_client.post(
        "/admin/callactions/callaction/add/",
        {
            "name": "bad", "event_type": "recording_completed", "order": 1, "integration_type": "manual",
            "url": "https://customer.example/?x={NOPE}", "method": "GET", "timeout": 10,
            "retry_count": 0, "retry_interval": 1, "enabled": "on",
        },
    )
    assert response.status_code == 200
    assert "Unknown variable {NOPE}" in response.content.decode()
    assert not CallAction.objects.exists()


def test_a_new_number_is_not_a_target_until_ticked(admin_client):
    saved = action()
    saved.save()
    ExternalNumber.objects.create(number="0312345678")
    page = admin_client.get(f"/admin/callactions/callaction/{saved.pk}/change/").content.decode()
    assert 'type="checkbox" name="targets"' in page
    assert "checked" not in page.split('name="targets"')[1].split(">")[0]
    assert saved.targets.count() == 0


FULL = {
    "name": "speech-recognition",
    "event_type": "recording_completed",
    "order": 2,
    "condition_code": "{TEL}",
    "condition_pattern": "/^090/",
    "integration_type": "manual",
    "url": "https://customer.example/monitor_file_event?ID={ID}&TEL={TEL}&DATE={DATE}",
    "method": "POST",
    "headers": "X-Token: {TOKEN}\nContent-Type: application/json",
    "body": '{"id": "{ID}"}',
    "timeout": 5,
    "extraction_pattern": "job=(?P<JOB>\\d+)",
    "memo": "Transcription",
    "error_pattern": "/error/i",
    "retry_count": 3,
    "retry_interval": 2,
    "targets": ["0312345678", "0501112222"],
    "enabled": False,
    "signing_secret": "whsec_" + base64.b64encode(b"s" * 32).decode(),
}
LOGIN = {"name": "login", "order": 1, "url": "https://customer.example/login?EXT={EXT}",
         "extraction_pattern": "token=(?P<TOKEN>\\w+)", "targets": ["0312345678"]}


def run_import(tmp_path, items):
    path = tmp_path / "actions.json"
    path.write_text(json.dumps(items))
    out = StringIO()
    call_command("import_callactions", str(path), stdout=out)
    return out.getvalue()


def run_export():
    out = StringIO()
    call_command("export_callactions", stdout=out)
    return out.getvalue()


def test_export_writes_every_key_of_the_spec_in_order(tmp_path):
    run_import(tmp_path, [FULL, LOGIN])
    exported = json.loads(run_export())
    assert exported[1] == FULL
    assert list(exported[1]) == list(FULL)


def test_export_then_import_round_trips_exactly(tmp_path):
    run_import(tmp_path, [FULL, LOGIN])
    first = run_export()
    CallAction.objects.all().delete()
    (tmp_path / "again.json").write_text(first)
    call_command("import_callactions", str(tmp_path / "again.json"), stdout=StringIO())
    assert run_export() == first


def test_omitted_keys_take_their_defaults(tmp_path):
    run_import(tmp_path, [{"name": "minimal", "url": "https://customer.example/?ID={ID}"}])
    (item,) = json.loads(run_export())
    assert item == {
        "name": "minimal", "event_type": "recording_completed", "order": 1, "condition_code": "",
        "condition_pattern": "", "integration_type": "manual", "url": "https://customer.example/?ID={ID}",
        "method": "GET", "headers": "", "body": "", "timeout": 10, "extraction_pattern": "", "memo": "",
        "error_pattern": "", "retry_count": 0, "retry_interval": 1, "targets": [], "enabled": True,
        "signing_secret": "",
    }


def test_import_replaces_the_action_of_the_same_name(tmp_path):
    run_import(tmp_path, [LOGIN])
    original = CallAction.objects.get(name="login")
    run_import(tmp_path, [{"name": "login", "url": "https://other.example/?ID={ID}"}])
    replaced = CallAction.objects.get(name="login")
    assert replaced.pk == original.pk
    assert replaced.url == "https://other.example/?ID={ID}"
    assert replaced.extraction_pattern == ""
    assert replaced.targets.count() == 0


def test_a_bad_file_imports_nothing_and_says_why(tmp_path):
    bad = {"name": "broken", "url": "https://customer.example/?x={NOPE}"}
    with pytest.raises(CommandError) as caught:
        run_import(tmp_path, [LOGIN, bad])
    assert "broken: url" in str(caught.value) and "{NOPE}" in str(caught.value)
    assert not CallAction.objects.exists()


@pytest.mark.parametrize(
    "item, message",
    [
        ({"name": "x", "url": "https://e.example/", "colour": "red"}, "unknown key(s): colour"),
        ({"name": "x", "url": "https://e.example/", "timeout": "10"}, "must be a whole number"),
        ({"name": "x", "url": "https://e.example/", "targets": ["not-a-number!"]}, "not a phone number"),
    ],
)
def test_malformed_items_are_refused(tmp_path, item, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run_import(tmp_path, [item])
