from django.conf import settings
from django.contrib import admin
from django.contrib.staticfiles.views import serve as serve_static
from django.urls import path, re_path

from biztel.errors import not_found_view
from recordings.views import RecordingDownloadView

handler400 = "biztel.errors.bad_request_view"
handler500 = "biztel.errors.server_error_view"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("public/api/v1/monitor/<str:recording_id>", RecordingDownloadView.as_view(), name="monitor-download"),
    # Anything else under the APIs answers with the six-key JSON too.
    re_path(r"^(public|internal)/api/", not_found_view),
]

if settings.EMBEDDED or settings.DEBUG:
    # The single-machine install has no nginx in front to serve the admin's CSS.
    urlpatterns.append(re_path(r"^static/(?P<path>.*)$", serve_static, {"insecure": True}))
