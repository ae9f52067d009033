"""An administrator in a real browser (Debian's chromium driven by Playwright),
through nginx over HTTPS: log in, add a number, create a call action targeting it,
send a test, and find the attempt in the delivery log. The last page is kept as
test-artifacts/admin-delivery-log.png (and the settings page with the
month's usage as admin-settings-usage.png)."""

import secrets
import shutil

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import ROOT, ensure_debian_packages
from tests.stack import receiver  # noqa: F401 (fixture)
from tests.stack import product_stack

pytestmark = [pytest.mark.timeout(300), pytest.mark.django_db]

ARTIFACTS = ROOT / "test-artifacts"
NUMBER = "0501234567"


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker):
    with product_stack(django_db_blocker, celery=False, static=True) as running:
        running.admin_password = secrets.token_urlsafe(12)
        running.manage(
            "createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com",
            env={"DJANGO_SUPERUSER_PASSWORD": running.admin_password},
        )
        yield running


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


def test_an_administrator_sends_a_test_and_sees_it_in_the_delivery_log(stack, page, receiver):
    admin = f"{stack.base_url}/admin/"
    page.goto(admin)
    page.fill("#id_username", "admin")
    page.fill("#id_password", stack.admin_password)
    page.click("input[type=submit]")
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
    page.goto(f"{stack.base_url}/admin/login/?next=/admin/biztel/systemsettings/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", stack.admin_password)
    page.click("input[type=submit]")
    meter = page.get_by_role("meter", name="API requests")
    expect(meter).to_be_visible()
    expect(meter).to_have_attribute("aria-valuemax", "100000")
    page.screenshot(path=str(ARTIFACTS / "admin-settings-usage.png"), full_page=True)
