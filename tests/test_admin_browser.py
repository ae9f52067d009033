"""An administrator in a real browser (Debian's chromium driven by Playwright),
through nginx over HTTPS, with two-factor sign-in required (ADMIN_2FA_REQUIRED=true, as
deploy/env.example sets it): log in with the authenticator's code (computed here from the
key `enrol_totp` printed, as the phone would) or a recovery code, add a number, create a call action targeting it,
send a test, and find the attempt in the delivery log. The last page is kept as
test-artifacts/admin-delivery-log.png (and the settings page with the
month's usage as admin-settings-usage.png)."""

import base64
import secrets
import shutil
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from django_otp.oath import totp
from playwright.sync_api import expect, sync_playwright

from tests.conftest import ROOT, ensure_debian_packages
from tests.stack import receiver  # noqa: F401 (fixture)
from tests.stack import product_stack

pytestmark = [pytest.mark.timeout(300), pytest.mark.django_db]

ARTIFACTS = ROOT / "test-artifacts"
NUMBER = "0501234567"


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker):
    with product_stack(django_db_blocker, celery=False, static=True, extra_env={"ADMIN_2FA_REQUIRED": "true"}) as running:
        running.admin_password = secrets.token_urlsafe(12)
        running.manage(
            "createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com",
            env={"DJANGO_SUPERUSER_PASSWORD": running.admin_password},
        )
        lines = running.manage("enrol_totp", "--username", "admin").splitlines()
        secret = parse_qs(urlparse(lines[0]).query)["secret"][0]
        running.totp_key = base64.b32decode(secret + "=" * (-len(secret) % 8))
        running.recovery_codes = lines[-10:]
        yield running


def authenticator_code(stack):
    return f"{totp(stack.totp_key, step=30, t0=0, digits=6):06d}"


def sign_in(page, stack, code, url="/admin/"):
    page.goto(f"{stack.base_url}{url}")
    page.fill("#id_username", "admin")
    page.fill("#id_password", stack.admin_password)
    page.fill("#id_otp_token", code)
    page.click("input[type=submit]")


@pytest.fixture
def page(stack):
    """Function-scoped: Playwright's event loop must be gone before pytest-django touches the database."""
    ensure_debian_packages(("chromium", "chromium"))
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        # Playwright cannot download its own browser here; Debian's chromium is driven instead.
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        context = browser.new_context(ignore_https_errors=True, viewport={"width": 1400, "height": 900})
        context.set_default_timeout(15_000)
        yield context.new_page()
        browser.close()


def test_a_sign_in_without_the_authenticator_code_is_refused(stack, page):
    sign_in(page, stack, "")
    expect(page.locator(".errornote")).to_have_text("Enter the code your authenticator app shows (or a recovery code).")


def test_an_administrator_sends_a_test_and_sees_it_in_the_delivery_log(stack, page, receiver):
    admin = f"{stack.base_url}/admin/"
    sign_in(page, stack, authenticator_code(stack))
    expect(page.locator("#site-name")).to_be_visible()

    page.goto(admin + "callactions/externalnumber/add/")
    page.fill("#id_number", "050-123-4567")
    page.fill("#id_label", "support line")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist .success")).to_be_visible()

    page.goto(admin + "callactions/callaction/add/")
    page.fill("#id_name", "speech recognition")
    page.fill("#id_url", f"http://127.0.0.1:{receiver.port}/monitor_file_event?ID={{ID}}&TEL={{TEL}}&DATE={{DATE}}")
    page.get_by_label(f"{NUMBER} (support line)").check()
    page.click("input[name=_save]")
    expect(page.locator(".messagelist .success")).to_be_visible()

    page.locator("#result_list tbody tr", has_text="speech recognition").locator("input.action-select").check()
    page.select_option("select[name=action]", "send_test")
    page.click("button[name=index]")
    expect(page.locator(".messagelist")).to_contain_text("HTTP 200")
    assert len(receiver.log) == 1
    assert receiver.log[0][0].args["ID"] != ""

    page.goto(admin + "callactions/attempt/")
    row = page.locator("#result_list tbody tr", has_text=f"127.0.0.1:{receiver.port}/monitor_file_event")
    expect(row).to_have_count(1)
    expect(row.locator("td.field-status_code")).to_have_text("200")
    page.screenshot(path=str(ARTIFACTS / "admin-delivery-log.png"), full_page=True)


def test_the_settings_page_shows_the_months_usage_as_bars(stack, page):
    # A recovery code, as with a lost phone (and the authenticator's code of the test above
    # may not be used twice within its 30 seconds).
    sign_in(page, stack, stack.recovery_codes[0], url="/admin/login/?next=/admin/biztel/systemsettings/")
    meter = page.get_by_role("meter", name="API requests")
    expect(meter).to_be_visible()
    expect(meter).to_have_attribute("aria-valuemax", "100000")
    page.screenshot(path=str(ARTIFACTS / "admin-settings-usage.png"), full_page=True)


def test_through_nginx_the_admin_cookies_are_secure_httponly_samesite_and_hsts_is_sent(stack):
    answer = requests.get(f"{stack.base_url}/admin/login/", verify=str(stack.cert), timeout=30)
    assert answer.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    csrf = answer.raw.headers.getlist("Set-Cookie")
    assert len(csrf) == 1 and csrf[0].startswith("csrftoken=")
    assert {"Secure", "HttpOnly", "SameSite=Lax"} <= {part.strip() for part in csrf[0].split(";")}
    session = requests.Session()
    session.get(f"{stack.base_url}/admin/login/", verify=str(stack.cert), timeout=30)
    signed = session.post(
        f"{stack.base_url}/admin/login/?next=/admin/",
        {"username": "admin", "password": stack.admin_password, "otp_token": stack.recovery_codes[1],
         "next": "/admin/", "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{stack.base_url}/admin/login/"}, verify=str(stack.cert), allow_redirects=False,
        timeout=30,
    )
    assert signed.status_code == 302, signed.text[:2000]
    cookies = {c.split("=")[0]: c for c in signed.raw.headers.getlist("Set-Cookie")}
    assert {"Secure", "HttpOnly", "SameSite=Lax"} <= {part.strip() for part in cookies["sessionid"].split(";")}
    for path in ("/static/admin/css/base.css", "/public/api/v1/monitor/nothing"):
        assert requests.get(stack.base_url + path, verify=str(stack.cert), timeout=30).headers[
            "Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload", path
