"""The base of every endpoint of the public API (download, listing, archive, lifecycle):
the checks of the error table up to the licences, the quota and its headers, and the
access log."""

from django.utils import timezone
from rest_framework.views import APIView

from biztel import config
from biztel.errors import (
    BurstLimitExceeded,
    InvalidRequest,
    MonthlyLimitExceeded,
    NotContracted,
    Unauthorized,
    error_response,
)
from biztel.limits import burst_check, failed_auth_check, quota_consume, quota_standing
from biztel.public import client_ip, forwarded_ip_check
from biztel.sql import db_datetime
from biztel.tokens import token_from_header
from recordings.access_log import entry_write, entry_write_counted


class PublicApiView(APIView):
    """Subclasses call self.admit() first; it raises the contract's errors in table order.

    The month's quota counts a request once its answer is known, in the statement that
    writes its access-log entry (one commit per download). When the month is used up the
    answer becomes the 429, as the error table puts the quota before every later check.
    A view that needs the month's standing while it works (the list reserves objects)
    sets count_at_admission.
    """

    count_at_admission = False

    def initial(self, request, *args, **kwargs):
        self.token = None
        self.system = None
        self.standing = None
        self.count_pending = False
        self.log_recording = None
        self.log_content_type = ""
        self.log_objects = 0
        self.flooding = False
        super().initial(request, *args, **kwargs)
        forwarded_ip_check(request)

    def perform_content_negotiation(self, request, force=False):
        # The answers are JSON or files whatever the client asks; and `format` is the audio
        # format here (SPEC.md §7), not DRF's renderer override, which would make it a 404.
        renderer = self.get_renderers()[0]
        return renderer, renderer.media_type

    def admit(self, request):
        try:
            self.token = token_from_header(request.META.get("HTTP_AUTHORIZATION"))
        except InvalidRequest:
            try:
                failed_auth_check(request, client_ip(request))
            except BurstLimitExceeded:
                self.flooding = True  # a flood of bad tokens writes no access-log rows
                raise
            raise
        cfg = self.system = config.current()
        burst_check(request, cfg.burst_limit_per_second)
        if self.count_at_admission:
            self.standing = quota_consume(
                objects=0,
                objects_needed=1,
                request_limit=cfg.monthly_request_limit,
                object_limit=cfg.monthly_response_object_limit,
            )
        else:
            self.count_pending = True
        if not cfg.recording_file_api or not cfg.recording:
            raise NotContracted()
        if not cfg.recording_file_api_enabled:
            raise Unauthorized()
        return self.token.account

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if self.count_pending:
            self.log_objects = 1  # a file answer is one response object
            try:
                self.standing = entry_write_counted(
                    self.log_entry(request, response),
                    request_limit=self.system.monthly_request_limit,
                    object_limit=self.system.monthly_response_object_limit,
                )
            except MonthlyLimitExceeded as refused:
                # Not response.close(): that would end the request (request_finished) here.
                # A file it holds is closed when the response is dropped.
                response = error_response(refused)  # carries the month's standing
                self.log_objects = 0
                entry_write(self.log_entry(request, response))
                return response
        elif not getattr(self, "flooding", False):
            entry_write(self.log_entry(request, response))
        # SPEC.md §3.4: each answer tells the standing, also one that was not counted (401, burst).
        if self.standing is None:
            cfg = config.current()
            self.standing = quota_standing(
                request_limit=cfg.monthly_request_limit, object_limit=cfg.monthly_response_object_limit
            )
        for header, value in self.standing.headers().items():
            response.headers.setdefault(header, value)
        return response

    def log_entry(self, request, response):
        if getattr(response, "streaming", False) or request.method == "HEAD":
            sent = 0 if request.method == "HEAD" else int(response.get("Content-Length") or 0)
        else:
            if not getattr(response, "is_rendered", True):
                response.render()  # a DRF Response renders only after finalize_response
            sent = len(response.content)
        token = self.token
        recording = self.log_recording
        return {
            "at": db_datetime(timezone.now()),
            "token_id": token and token.id,
            "account_id": token and token.account.id,
            "method": request.method,
            "path": request.get_full_path()[:500],
            "recording_id": recording and recording.id,
            "recording_request_id": recording.request_id if recording else "",
            "content_type": self.log_content_type,
            "status": response.status_code,
            "bytes_sent": sent,
            "response_objects": self.log_objects,
            "client_ip": client_ip(request),
        }
