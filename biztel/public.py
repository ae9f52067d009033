"""Plumbing shared by every endpoint of the public API: the checks of the
error table up to the licences, the quota headers, and the access log."""

import ipaddress

from django.db import connection
from django.utils import timezone
from rest_framework.views import APIView

from biztel import config
from biztel.errors import NotContracted, Unauthorized
from biztel.limits import burst_check, quota_consume
from biztel.sql import db_datetime
from biztel.tokens import token_from_header


# One row per public request, so plain SQL (biztel/sql.py).
_LOG_ENTRY = """
INSERT INTO biztel_accesslogentry (at, token_id, account_id, method, path, recording_id, content_type, status,
                                   bytes_sent, response_objects, client_ip)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


def client_ip(request):
    remote = request.META.get("REMOTE_ADDR", "")
    forwarded = request.META.get("HTTP_X_REAL_IP", "")
    # Only a proxy on this machine (deploy/nginx.conf) is trusted to say who the client is.
    if forwarded and remote and ipaddress.ip_address(remote).is_loopback:
        return forwarded
    return remote or None


class PublicApiView(APIView):
    """Subclasses call self.admit() first; it raises the contract's errors in table order."""

    # Response objects a request consumes at admission; a list consumes per item instead.
    objects_at_admission = 1

    def initial(self, request, *args, **kwargs):
        self.token = None
        self.system = None
        self.standing = None
        self.log_recording = None
        self.log_content_type = ""
        self.log_objects = 0
        super().initial(request, *args, **kwargs)

    def admit(self, request):
        self.token = token_from_header(request.META.get("HTTP_AUTHORIZATION"))
        cfg = self.system = config.current()
        burst_check(request, cfg.burst_limit_per_second)
        self.standing = quota_consume(
            requests=1,
            objects=self.objects_at_admission,
            objects_needed=1,
            request_limit=cfg.monthly_request_limit,
            object_limit=cfg.monthly_response_object_limit,
        )
        self.log_objects = self.objects_at_admission
        if not cfg.recording_file_api or not cfg.recording:
            raise NotContracted()
        if not cfg.recording_file_api_enabled:
            raise Unauthorized()
        return self.token.account

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if self.standing is not None:
            for header, value in self.standing.headers().items():
                response.headers.setdefault(header, value)
        self.write_access_log(request, response)
        return response

    def write_access_log(self, request, response):
        if getattr(response, "streaming", False) or request.method == "HEAD":
            sent = 0 if request.method == "HEAD" else int(response.get("Content-Length") or 0)
        else:
            if not getattr(response, "is_rendered", True):
                response.render()  # a DRF Response renders only after finalize_response
            sent = len(response.content)
        token = self.token
        recording = self.log_recording
        with connection.cursor() as cursor:
            cursor.execute(
                _LOG_ENTRY,
                (
                    db_datetime(timezone.now()), token and token.id, token and token.account.id, request.method,
                    request.get_full_path()[:500], recording and recording.id, self.log_content_type,
                    response.status_code, sent, self.log_objects, client_ip(request),
                ),
            )
