"""Reference for bench_download: Django answering GET /<path> under MEDIA_ROOT with a
bare FileResponse (no token, limits or log), under the same gunicorn settings."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "biztel.settings")

from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import FileResponse  # noqa: E402
from django.urls import path  # noqa: E402

application = get_wsgi_application()
settings.ROOT_URLCONF = __name__


def bare_file(request, relative):
    return FileResponse(open(settings.MEDIA_ROOT / relative, "rb"), content_type="audio/mpeg")


urlpatterns = [path("<path:relative>", bare_file)]
