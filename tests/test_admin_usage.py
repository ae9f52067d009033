"""The licences-and-settings page shows the month's usage against the quota."""

from django.utils import timezone

from biztel.limits import month_bounds
from biztel.models import MonthlyUsage
from tests.factories import stored_recording


def settings_page(admin_client):
    response = admin_client.get("/admin/biztel/systemsettings/", follow=True)
    assert response.status_code == 200
    return response.content.decode()


def test_the_settings_page_shows_requests_and_objects_against_the_monthly_limits(admin_client, set_system):
    set_system(monthly_request_limit=1000, monthly_response_object_limit=400)
    MonthlyUsage.objects.create(month=month_bounds()[0], requests=250, response_objects=400)
    page = settings_page(admin_client)
    assert "250 / 1000 requests" in page
    assert "(25.0%)" in page
    assert 'style="width: 25.0%"' in page
    assert "400 / 400 objects" in page
    assert 'class="fill exhausted" style="width: 100%"' in page


def test_the_settings_page_counts_this_months_mixed_recording_minutes(admin_client):
    started = timezone.localtime().strftime("%Y-%m-%d %H:%M:%S")
    stored_recording(seconds=30.0, started_at=started)
    stored_recording(seconds=30.0, started_at=started)
    stored_recording(seconds=30.0, started_at="2019-07-18 16:10:58")  # another month
    page = settings_page(admin_client)
    assert "Recording time" in page
    # Two calls of about 30 s this month: about one minute (MP3 frames round the duration up).
    minutes = float(page.split("Recording time")[1].split("minutes")[0].split("<td>")[-1].strip())
    assert 1.0 <= minutes <= 1.1


def test_an_empty_month_shows_zero_usage(admin_client):
    page = settings_page(admin_client)
    assert "0 / 100000 requests" in page
    assert "0 / 100000 objects" in page
