"""Call actions for the events and variables of SPEC.md §8: import/export and admin accept them."""

import json

import pytest
from django.core.management import CommandError

from callactions.models import CallAction
from tests.test_callactions_admin import run_export, run_import

pytestmark = pytest.mark.django_db

NEW_VARIABLES = "STATUS={STATUS}&CAUSE={END_CAUSE}&L={AUDIO_LEFT}&R={AUDIO_RIGHT}&M={AUDIO_MONAURAL}&S={FILE_STEREO}"


@pytest.mark.parametrize("event_type", ["recording_absent", "recording_deleted"])
def test_import_and_export_take_the_new_event_types_and_variables(tmp_path, event_type):
    item = {"name": event_type, "event_type": event_type, "url": f"https://customer.example/?ID={{ID}}&{NEW_VARIABLES}"}
    run_import(tmp_path, [item])
    assert CallAction.objects.get(name=event_type).event_type == event_type
    (exported,) = json.loads(run_export())
    assert (exported["event_type"], exported["url"]) == (event_type, item["url"])


def test_an_unknown_event_type_is_refused_on_import(tmp_path):
    with pytest.raises(CommandError, match="event_type"):
        run_import(tmp_path, [{"name": "x", "event_type": "recording_purged", "url": "https://e.example/?ID={ID}"}])


def test_admin_offers_and_saves_the_new_event_types(admin_client):
    page = admin_client.get("/admin/callactions/callaction/add/")
    assert 'value="recording_absent"' in page.content.decode()
    assert 'value="recording_deleted"' in page.content.decode()
    response = admin_client.post(
        "/admin/callactions/callaction/add/",
        {
            "name": "gone", "event_type": "recording_deleted", "order": 1, "integration_type": "manual",
            "url": f"https://customer.example/?ID={{ID}}&{NEW_VARIABLES}", "method": "GET", "timeout": 10,
            "retry_count": 0, "retry_interval": 1, "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    assert CallAction.objects.get(name="gone").event_type == "recording_deleted"
