from django.conf import settings
from django.contrib import admin
from django.contrib.staticfiles.views import serve as serve_static
from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from biztel import health
from biztel.errors import not_found_view
from biztel.openapi import SchemaFormatNegotiation
from recordings.day_views import DayArchiveView, DayListView
from recordings.ingest_views import RecordingIngestView
from recordings.lifecycle_views import RecordingHoldView, RecordingView
from recordings.views import RecordingDownloadView

handler400 = "biztel.errors.bad_request_view"
handler500 = "biztel.errors.server_error_view"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("public/api/v1/monitor/", DayListView.as_view(), name="monitor-day-list"),
    path("public/api/v1/monitor/archive/<str:day>", DayArchiveView.as_view(), name="monitor-day-archive"),
    path("public/api/v1/monitor/<str:recording_id>", RecordingDownloadView.as_view(), name="monitor-download"),
    path("public/api/v1/recordings/<str:recording_id>", RecordingView.as_view(), name="recording"),
    path("public/api/v1/recordings/<str:recording_id>/hold", RecordingHoldView.as_view(), name="recording-hold"),
    path("internal/api/v1/recordings", RecordingIngestView.as_view(), name="recording-ingest"),
    path("public/api/schema/", SpectacularAPIView.as_view(content_negotiation_class=SchemaFormatNegotiation), name="api-schema"),
    path("public/api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("public/api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    # Anything else under the APIs answers with the six-key JSON too.
    re_path(r"^(public|internal)/api/", not_found_view),
]

if settings.EMBEDDED or settings.DEBUG:
    # The single-machine install has no nginx in front to serve the admin's CSS.
    urlpatterns.append(re_path(r"^static/(?P<path>.*)$", serve_static, {"insecure": True}))
