"""Every admin page an administrator reaches opens, with rows to show.

The database runs with server-side binding (prepared statements), where a query whose
parameter PostgreSQL cannot type fails; this walks every list, search, add and change
page so such a query cannot hide in a page no other test opens.
"""

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse

from callactions.models import CallAction, ExternalNumber
from tests.factories import stored_recording

MODELS = sorted(admin.site._registry, key=lambda model: model._meta.label)


@pytest.fixture
def rows(db, client, token):
    action = CallAction(name="notify", url="https://customer.example/e?ID={ID}")
    action.full_clean()
    action.save()
    action.targets.set([ExternalNumber.objects.create(number="0312345678")])
    recording = stored_recording(external_number="0312345678")
    # a download: an access-log row and the month's usage
    client.get(f"/public/api/v1/monitor/{recording.request_id}", HTTP_AUTHORIZATION=f"Token {token}")
    # a legal hold: an audit-trail row
    client.put(f"/public/api/v1/recordings/{recording.request_id}/hold", HTTP_AUTHORIZATION=f"Token {token}")


@pytest.mark.parametrize("model", MODELS, ids=[model._meta.label for model in MODELS])
def test_every_admin_page_of_a_model_opens(admin_client, admin_user, rows, model):
    model_admin = admin.site._registry[model]
    info = model._meta.app_label, model._meta.model_name
    changelist = reverse("admin:{}_{}_changelist".format(*info))
    assert admin_client.get(changelist, follow=True).status_code == 200
    if model_admin.search_fields:
        assert admin_client.get(changelist, {"q": "03"}).status_code == 200
    if model_admin.date_hierarchy:
        assert admin_client.get(changelist, {f"{model_admin.date_hierarchy}__year": "2026"}).status_code == 200
    as_admin = RequestFactory().get("/admin/")
    as_admin.user = admin_user
    if model_admin.has_add_permission(as_admin):
        assert admin_client.get(reverse("admin:{}_{}_add".format(*info))).status_code == 200
    first = model.objects.first()
    if first is not None:
        assert admin_client.get(reverse("admin:{}_{}_change".format(*info), args=[first.pk])).status_code == 200

