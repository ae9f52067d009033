"""Two-factor sign-in to admin (SPEC.md §10), on the real admin login page: an
authenticator's code (TOTP, computed here from the device's key as the phone would),
recovery codes, enrolment from admin and by `enrol_totp`, and ADMIN_2FA_REQUIRED."""

import base64
from io import StringIO
from urllib.parse import parse_qs, urlparse

import pytest
from django.core.management import call_command
from django_otp.oath import totp
from freezegun import freeze_time
from django_otp.plugins.otp_totp.models import TOTPDevice

from biztel import twofactor
from biztel.models import Account, ConfigChange, Role

PASSWORD = "correct horse battery staple"


@pytest.fixture
def alice(db):
    return Account.objects.create_user("alice", password=PASSWORD, is_staff=True, is_superuser=True,
                                       role=Role.ADMINISTRATOR)


def code_of(device, offset=0):
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=offset):06d}"


def log_in(client, code=None, username="alice", password=PASSWORD):
    data = {"username": username, "password": password, "next": "/admin/"}
    if code is not None:
        data["otp_token"] = code
    return client.post("/admin/login/?next=/admin/", data, HTTP_X_REAL_IP="203.0.113.7")


def signed_in(response):
    return response.status_code == 302 and response["Location"] == "/admin/"


def test_the_login_page_asks_for_the_authenticator_code(client, db):
    page = client.get("/admin/login/").content.decode()
    assert 'name="otp_token"' in page and "Authenticator code" in page


def test_an_account_with_an_authenticator_needs_its_code(client, alice):
    twofactor.totp_enrol(account=alice)
    answer = log_in(client)
    assert answer.status_code == 200
    assert "Enter the code your authenticator app shows (or a recovery code)." in answer.content.decode()
    assert client.get("/admin/").status_code == 302


def test_the_authenticators_current_code_signs_in(client, alice):
    device = twofactor.totp_enrol(account=alice)
    assert signed_in(log_in(client, code_of(device)))
    assert client.get("/admin/").status_code == 200


def test_a_wrong_code_is_refused(client, alice):
    device = twofactor.totp_enrol(account=alice)
    wrong = f"{(int(code_of(device)) + 1) % 1_000_000:06d}"
    answer = log_in(client, wrong)
    assert answer.status_code == 200
    assert "That code is not valid." in answer.content.decode()
    assert client.get("/admin/").status_code == 302


def test_five_wrong_codes_lock_the_pair_like_wrong_passwords(client, alice):
    device = twofactor.totp_enrol(account=alice)
    for _ in range(5):
        answer = log_in(client, "000000" if code_of(device) != "000000" else "111111")
    assert answer.status_code == 429
    assert log_in(client, code_of(device)).status_code == 429


def test_a_code_is_accepted_once(client, alice):
    device = twofactor.totp_enrol(account=alice)
    code = code_of(device)
    assert signed_in(log_in(client, code))
    client.post("/admin/logout/")
    if code_of(device) == code:  # still the same 30-second step: a replay
        assert log_in(client, code).status_code == 200


def test_a_recovery_code_signs_in_once(client, alice):
    twofactor.totp_enrol(account=alice)
    codes = twofactor.recovery_codes_issue(account=alice)
    assert len(codes) == 10
    assert signed_in(log_in(client, codes[0]))
    client.post("/admin/logout/")
    with freeze_time() as clock:
        assert "That code is not valid." in log_in(client, codes[0]).content.decode()
        # django-otp's pause after one wrong code: one second
        assert "Too many wrong codes in a row" in log_in(client, codes[1]).content.decode()
        clock.tick(1.5)
        assert signed_in(log_in(client, codes[1].upper()))


def test_without_the_requirement_an_account_without_an_authenticator_signs_in_with_its_password(client, alice):
    assert signed_in(log_in(client))


def test_when_required_an_account_without_an_authenticator_is_told_how_to_get_one(client, alice, settings):
    settings.ADMIN_2FA_REQUIRED = True
    answer = log_in(client)
    assert answer.status_code == 200
    assert (
        "Two-factor sign-in is required and this account has no authenticator yet. An administrator can add one "
        "(admin → TOTP devices), or the server&#x27;s operator can run "
        "`python manage.py enrol_totp --username alice`."
    ) in answer.content.decode()
    assert client.get("/admin/").status_code == 302


def test_when_required_a_session_without_a_code_does_not_open_admin(client, alice, settings):
    settings.ADMIN_2FA_REQUIRED = True
    client.force_login(alice)
    assert client.get("/admin/").status_code == 302


def test_when_required_the_code_of_an_authenticator_from_enrol_totp_signs_in(client, alice, settings):
    settings.ADMIN_2FA_REQUIRED = True
    out = StringIO()
    call_command("enrol_totp", "--username", "alice", stdout=out)
    lines = out.getvalue().splitlines()
    url = urlparse(lines[0])
    assert (url.scheme, url.netloc, url.path) == ("otpauth", "totp", "/biztel%3Aalice")
    secret = parse_qs(url.query)["secret"][0]
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    recovery = lines[-10:]
    assert all(len(code) == 8 for code in recovery)
    code = f"{totp(key, step=30, t0=0, digits=6):06d}"
    assert signed_in(log_in(client, code))
    assert client.get("/admin/").status_code == 200
    client.post("/admin/logout/")
    assert signed_in(log_in(client, recovery[0]))


def test_enrol_totp_again_replaces_the_old_key(alice):
    first = twofactor.totp_enrol(account=alice)
    call_command("enrol_totp", "--username", "alice", stdout=StringIO())
    assert list(TOTPDevice.objects.filter(user=alice)) != [first]
    assert TOTPDevice.objects.filter(user=alice).count() == 1
    assert ConfigChange.objects.filter(content_type__model="totpdevice", source="command").count() == 1


def test_enrol_totp_names_an_unknown_account(db):
    with pytest.raises(Exception, match="no account nobody"):
        call_command("enrol_totp", "--username", "nobody", stdout=StringIO())


def test_an_administrator_enrols_an_authenticator_in_admin_and_sees_its_qr_code(client, alice, admin_client):
    answer = admin_client.post(
        "/admin/otp_totp/totpdevice/add/",
        {"user": alice.pk, "name": "phone", "confirmed": "on", "key": "3132333435363738393031323334353637383930",
         "step": 30, "t0": 0, "digits": 6, "tolerance": 1, "drift": 0, "throttling_failure_count": 0},
    )
    assert answer.status_code == 302, answer.content.decode()[:3000]
    device = TOTPDevice.objects.get(user=alice)
    config = admin_client.get(f"/admin/otp_totp/totpdevice/{device.pk}/config/")
    assert config.status_code == 200 and device.config_url.replace("&", "&amp;") in config.content.decode()
    qr = admin_client.get(f"/admin/otp_totp/totpdevice/{device.pk}/qrcode/")
    assert qr["Content-Type"] == "image/svg+xml" and b"<svg" in qr.content
    assert signed_in(log_in(client, code_of(device)))


def test_an_administrator_issues_recovery_codes_in_admin_shown_once(client, alice, admin_client):
    twofactor.totp_enrol(account=alice)
    answer = admin_client.post(
        "/admin/biztel/account/", {"action": "issue_recovery_codes", "_selected_action": [alice.pk]}, follow=True
    )
    page = answer.content.decode()
    assert "Recovery codes of alice, shown only this once: " in page
    codes = page.split("Recovery codes of alice, shown only this once: ")[1].split("<")[0].split()
    assert len(codes) == 10
    assert signed_in(log_in(client, codes[3]))
