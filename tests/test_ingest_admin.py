"""The month's recording time for administrators, and the recordings in admin."""

import io
from datetime import timedelta

import pytest
from django.utils import timezone

from recordings.selectors import recording_minutes_in_month
from recordings.services import recording_ingest
from tests.factories import call_fields
from tests.media import tone, wav_bytes

pytestmark = pytest.mark.django_db


def ingest_call(started_at, seconds, **overrides):
    stamp = started_at.strftime("%Y-%m-%d %H:%M:%S")
    data = wav_bytes([tone(440, seconds), tone(1000, seconds)])
    return recording_ingest(fields=call_fields(started_at=stamp, **overrides), stereo=io.BytesIO(data))[0]


def test_the_months_minutes_count_the_mixed_recordings_only():
    ingest_call(timezone.localtime().replace(day=2, hour=10), 45)
    ingest_call(timezone.localtime().replace(day=3, hour=11), 15)
    now = timezone.localdate()
    # 60 s of mixed recordings; the two 60 s of separated legs do not count.
    assert recording_minutes_in_month(year=now.year, month=now.month) == 1.0


def test_the_months_minutes_follow_the_local_calendar_month():
    start_of_month = timezone.localtime().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    ingest_call(start_of_month, 30)  # first second of this month
    ingest_call(start_of_month - timedelta(seconds=1), 12)  # last second of last month
    last = (start_of_month - timedelta(days=1)).date()
    assert recording_minutes_in_month(year=start_of_month.year, month=start_of_month.month) == 0.5
    assert recording_minutes_in_month(year=last.year, month=last.month) == 0.2


def test_administrators_see_the_months_minutes_on_the_recordings_page(admin_client):
    ingest_call(timezone.localtime().replace(day=1, hour=12), 30)
    response = admin_client.get("/admin/recordings/recording/")
    assert response.status_code == 200
    page = response.content.decode()
    assert f"{timezone.localdate():%Y-%m}: 0.5 min" in page


def test_recordings_can_be_found_by_customer_number_in_admin(admin_client):
    wanted = ingest_call(timezone.localtime(), 1, tel="090-5555-6666")
    ingest_call(timezone.localtime(), 1, tel="090-7777-8888")
    response = admin_client.get("/admin/recordings/recording/", {"q": "09055556666"})
    page = response.content.decode()
    assert wanted.request_id in page
    assert "09077778888" not in page


def test_a_recordings_admin_page_lists_its_files(admin_client):
    recording = ingest_call(timezone.localtime(), 1)
    response = admin_client.get(f"/admin/recordings/recording/{recording.pk}/change/")
    assert response.status_code == 200
    for stored in recording.files.all():
        assert stored.name in response.content.decode()
