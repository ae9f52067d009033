"""The audit trail of configuration changes (SPEC.md §10): licences and settings, call
actions, accounts and tokens, changed in admin or by a command, are recorded with who,
when, which object and each field before → after, and shown (read-only) in admin."""

import getpass
import json
from datetime import datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from biztel import config
from biztel.models import Account, ApiToken, ConfigChange
from callactions.models import CallAction, ExternalNumber

pytestmark = pytest.mark.django_db
OS_USER = getpass.getuser()


def form_data(client, page, **changes):
    """What the admin page's form would post as it is, with `changes` typed in."""
    form = client.get(page).context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if isinstance(value, datetime):  # admin's split date and time widget
            value = timezone.localtime(value)
            data[f"{name}_0"], data[f"{name}_1"] = value.strftime("%Y-%m-%d"), value.strftime("%H:%M:%S")
        elif isinstance(value, bool):
            if value:
                data[name] = "on"
        elif isinstance(value, (list, tuple)):
            data[name] = [str(item) for item in value]
        elif value is not None:
            data[name] = str(value)
    for name, value in changes.items():
        if value is False:
            data.pop(name, None)
        else:
            data[name] = "on" if value is True else value
    return data


def only_row(**filters):
    rows = list(ConfigChange.objects.filter(**filters))
    assert len(rows) == 1, rows
    return rows[0]


def test_a_settings_change_in_admin_is_recorded_with_the_admin_and_before_after(admin_client, admin_user):
    url = f"/admin/biztel/systemsettings/{config.load().pk}/change/"
    answer = admin_client.post(url, form_data(admin_client, url, voice_file_separation=False, burst_limit_per_second="3"))
    assert answer.status_code == 302
    row = only_row(content_type__model="systemsettings")
    assert (row.source, row.who, row.account, row.action) == ("admin", "admin", admin_user, "changed")
    assert row.changes == {"burst_limit_per_second": [10, 3], "voice_file_separation": [True, False]}
    assert row.object_repr == "Licences and settings"


def test_biztel_settings_set_is_recorded_as_a_command_with_the_os_user():
    call_command("biztel_settings", "--set", "bulk_download=true", "--set", "separation_targets=03-1234-5678",
                 stdout=StringIO())
    row = only_row(content_type__model="systemsettings")
    assert (row.source, row.who, row.account, row.action) == ("command", OS_USER, None, "changed")
    assert row.changes == {"bulk_download": [False, True], "separation_targets": ["", "0312345678"]}


def test_a_biztel_settings_set_that_changes_nothing_records_nothing():
    call_command("biztel_settings", "--set", "recording=true", stdout=StringIO())
    assert not ConfigChange.objects.exists()


def test_a_refused_biztel_settings_set_records_nothing():
    with pytest.raises(CommandError):
        call_command("biztel_settings", "--set", "burst_limit_per_second=0", stdout=StringIO())
    assert not ConfigChange.objects.exists()


def test_a_call_action_added_and_changed_in_admin_is_recorded_with_its_targets(admin_client):
    number = ExternalNumber.objects.create(number="0312345678")
    add = "/admin/callactions/callaction/add/"
    answer = admin_client.post(add, form_data(admin_client, add, name="notify", url="https://customer.example/e?ID={ID}",
                                              targets=[str(number.pk)]))
    assert answer.status_code == 302
    action = CallAction.objects.get(name="notify")
    created = only_row(content_type__model="callaction", action="created")
    assert created.changes["name"] == [None, "notify"]
    assert created.changes["targets"] == [None, ["0312345678"]]
    assert created.object_id == str(action.pk)

    change = f"/admin/callactions/callaction/{action.pk}/change/"
    answer = admin_client.post(change, form_data(admin_client, change, url="https://customer.example/v2?ID={ID}",
                                                 targets=[], enabled=False))
    assert answer.status_code == 302
    changed = only_row(content_type__model="callaction", action="changed")
    assert changed.changes == {
        "enabled": [True, False],
        "targets": [["0312345678"], []],
        "url": ["https://customer.example/e?ID={ID}", "https://customer.example/v2?ID={ID}"],
    }


def test_a_call_action_deleted_in_admin_is_recorded(admin_client):
    action = CallAction.objects.create(name="old", url="https://customer.example/e?ID={ID}")
    answer = admin_client.post(f"/admin/callactions/callaction/{action.pk}/delete/", {"post": "yes"})
    assert answer.status_code == 302
    row = only_row(content_type__model="callaction")
    assert (row.action, row.object_repr, row.object_id) == ("deleted", "old", str(action.pk))
    assert row.changes["url"] == ["https://customer.example/e?ID={ID}", None]


def test_import_callactions_records_each_created_and_replaced_action(tmp_path):
    CallAction.objects.create(name="replaced", url="https://customer.example/old?ID={ID}", retry_count=1)
    path = tmp_path / "actions.json"
    path.write_text(json.dumps([
        {"name": "replaced", "url": "https://customer.example/new?ID={ID}", "targets": ["03-1234-5678"]},
        {"name": "new", "url": "https://customer.example/n?ID={ID}"},
    ]))
    call_command("import_callactions", str(path), stdout=StringIO())
    replaced = only_row(object_repr="replaced")
    assert (replaced.source, replaced.who, replaced.action) == ("command", OS_USER, "changed")
    assert replaced.changes == {
        "retry_count": [1, 0],
        "targets": [[], ["0312345678"]],
        "url": ["https://customer.example/old?ID={ID}", "https://customer.example/new?ID={ID}"],
    }
    new = only_row(object_repr="new")
    assert new.action == "created" and new.changes["url"] == [None, "https://customer.example/n?ID={ID}"]


def test_a_refused_import_records_nothing(tmp_path):
    path = tmp_path / "actions.json"
    path.write_text(json.dumps([{"name": "ok", "url": "https://customer.example/?ID={ID}"},
                                {"name": "bad", "url": "https://customer.example/?X={NOPE}"}]))
    with pytest.raises(CommandError):
        call_command("import_callactions", str(path), stdout=StringIO())
    assert not ConfigChange.objects.exists()


def test_an_account_added_and_changed_in_admin_is_recorded_without_its_password(admin_client):
    add = "/admin/biztel/account/add/"
    answer = admin_client.post(add, {"username": "carol", "password1": "a long enough passphrase",
                                     "password2": "a long enough passphrase", "usable_password": "true",
                                     "role": "supervisor", "visible_groups": "sales"})
    assert answer.status_code == 302
    carol = Account.objects.get(username="carol")
    created = only_row(content_type__model="account", action="created")
    assert created.changes["role"] == [None, "supervisor"]
    assert created.changes["password"][1].startswith("sha256:")
    assert carol.password not in json.dumps(created.changes)

    change = f"/admin/biztel/account/{carol.pk}/change/"
    answer = admin_client.post(change, form_data(admin_client, change, role="operator", visible_groups="sales,support"))
    assert answer.status_code == 302, answer.context["adminform"].form.errors
    changed = only_row(content_type__model="account", action="changed")
    assert changed.changes == {"role": ["supervisor", "operator"], "visible_groups": ["sales", "sales,support"]}


def test_a_password_change_in_admin_is_recorded_as_a_fingerprint(admin_client):
    carol = Account.objects.create_user("carol", password="a long enough passphrase")
    answer = admin_client.post(f"/admin/biztel/account/{carol.pk}/password/", {
        "password1": "another long passphrase", "password2": "another long passphrase", "usable_password": "true",
    })
    assert answer.status_code == 302, answer.context["form"].errors
    row = only_row(content_type__model="account")
    assert list(row.changes) == ["password"]
    old, new = row.changes["password"]
    assert old.startswith("sha256:") and new.startswith("sha256:") and old != new


def test_a_token_issued_and_revoked_in_admin_is_recorded_without_the_secret(admin_client):
    carol = Account.objects.create_user("carol")
    add = "/admin/biztel/apitoken/add/"
    answer = admin_client.post(add, {"account": carol.pk, "name": "asr"}, follow=True)
    plain = answer.content.decode().split("shown only this once: ")[1][:80]
    token = ApiToken.objects.get(account=carol)
    created = only_row(content_type__model="apitoken")
    assert created.action == "created" and created.changes["name"] == [None, "asr"]
    assert created.changes["account"] == [None, "carol"]
    assert plain not in json.dumps(created.changes) and token.digest not in json.dumps(created.changes)

    admin_client.post("/admin/biztel/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    revoked = only_row(content_type__model="apitoken", action="changed")
    assert list(revoked.changes) == ["revoked_at"] and revoked.changes["revoked_at"][0] is None


def test_create_api_token_records_the_new_account_and_the_token():
    call_command("create_api_token", "--username", "asr", "--role", "operator", "--groups", "a,b", "--name", "ASR",
                 stdout=StringIO())
    account = only_row(content_type__model="account")
    assert (account.source, account.who, account.action) == ("command", OS_USER, "created")
    assert account.changes["role"] == [None, "operator"] and account.changes["visible_groups"] == [None, "a,b"]
    token = only_row(content_type__model="apitoken")
    assert token.action == "created" and token.changes["name"] == [None, "ASR"]


def test_create_api_token_for_an_existing_account_records_what_changed_in_it():
    Account.objects.create(username="asr", role="operator")
    call_command("create_api_token", "--username", "asr", "--role", "supervisor", stdout=StringIO())
    account = only_row(content_type__model="account")
    assert account.action == "changed" and account.changes == {"role": ["operator", "supervisor"]}


def test_the_trail_is_read_only_in_admin(admin_client):
    call_command("biztel_settings", "--set", "bulk_download=true", stdout=StringIO())
    row = ConfigChange.objects.get()
    assert admin_client.get("/admin/biztel/configchange/add/").status_code == 403
    page = admin_client.get(f"/admin/biztel/configchange/{row.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "<td>bulk_download</td><td>false</td><td>true</td>" in text
    assert 'name="_save"' not in text
    assert admin_client.post(f"/admin/biztel/configchange/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ConfigChange.objects.count() == 1


def test_the_trail_is_filtered_by_kind_who_and_date_in_admin(admin_client):
    call_command("biztel_settings", "--set", "bulk_download=true", stdout=StringIO())
    CallAction.objects.create(name="notify", url="https://customer.example/e?ID={ID}")
    admin_client.post("/admin/callactions/callaction/", {
        "action": "delete_selected", "_selected_action": [CallAction.objects.get().pk], "post": "yes"})
    settings_kind = ConfigChange.objects.get(source="command").content_type_id
    changelist = "/admin/biztel/configchange/"

    def shown(**query):
        return admin_client.get(changelist, query).context["cl"].result_list

    assert [r.object_repr for r in shown(content_type__id__exact=settings_kind)] == ["Licences and settings"]
    assert [r.object_repr for r in shown(who="admin")] == ["notify"]
    assert [r.object_repr for r in shown(source__exact="command")] == ["Licences and settings"]
    row = ConfigChange.objects.get(source="command")
    day = timezone.localdate(row.at)
    assert len(shown(at__year=str(day.year), at__month=str(day.month), at__day=str(day.day))) == 2
    assert len(shown(at__year="2001")) == 0
    page = admin_client.get(changelist).content.decode()
    assert "By kind" in page and "By who" in page
