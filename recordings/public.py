"""The base of every endpoint of the public API (download, listing, archive, lifecycle).

Every request goes through three steps, in PublicApiView.dispatch():

1. check: the view's handler calls admit() first, which raises the contract's errors
   in the order of SPEC.md §3.3's table up to the licences (token → burst → quota →
   licences), then makes its own checks (the recording, who may see it, …);
2. answer: the handler's response, or the contract's answer for what it raised;
3. count and log: count_and_log() counts the request against the month and writes its
   access-log entry in one statement (recordings/access_log.py), and adds the month's
   standing to the answer.

The month's quota counts a request once its answer is known (one commit per download).
When the month is used up the answer becomes the 429, as the table puts the quota before
every later check, so the client sees what counting first would have given. A view that
needs the month's standing while it works (the list reserves objects) asks admit() to
count at once.
"""

import enum
from dataclasses import dataclass

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
from biztel.limits import Standing, burst_check, failed_auth_check, quota_consume, quota_standing
from biztel.models import ApiToken, SystemSettings
from biztel.public import client_ip, forwarded_ip_check
from biztel.sql import db_datetime
from biztel.tokens import token_from_header
from recordings.access_log import entry_log, entry_log_counted
from recordings.models import Recording


class Counting(enum.Enum):
    """How a request is counted against the month."""

    NOT = "not counted"  # not admitted: no valid token, or the burst limit
    AT_ADMISSION = "counted at admission"  # the day list: it reserves objects while it works
    WITH_ANSWER = "counted with its answer"  # everything else: in the statement that logs it


@dataclass
class PublicCall:
    """One request of the public API: what admission found, and what its access-log
    entry will say (the view fills in recording, content_type and objects)."""

    token: ApiToken | None = None
    settings: SystemSettings | None = None
    counting: Counting = Counting.NOT
    standing: Standing | None = None
    recording: Recording | None = None
    content_type: str = ""
    objects: int = 0  # response objects the answer consumes
    logged: bool = True  # False: a flood of bad tokens writes no access-log rows

    @property
    def account(self):
        return self.token.account


class PublicApiView(APIView):
    """Subclasses' handlers call self.admit(request) first and use the PublicCall it returns."""

    def dispatch(self, request, *args, **kwargs):
        self.call = PublicCall()
        # Steps 1 and 2: DRF runs the handler and makes whatever it raises the contract's answer.
        response = super().dispatch(request, *args, **kwargs)
        # Step 3.
        return count_and_log(self.request, response, self.call)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        forwarded_ip_check(request)

    def perform_content_negotiation(self, request, force=False):
        # The answers are JSON or files whatever the client asks; and `format` is the audio
        # format here (SPEC.md §7), not DRF's renderer override, which would make it a 404.
        renderer = self.get_renderers()[0]
        return renderer, renderer.media_type

    def admit(self, request, *, count_now=False):
        """The checks of the error table up to the licences; the PublicCall.

        count_now: count the request (and room for one object) now, for a view that
        needs the month's standing while it works; otherwise it is counted with its answer."""
        call = self.call
        try:
            call.token = token_from_header(request.META.get("HTTP_AUTHORIZATION"))
        except InvalidRequest:
            try:
                failed_auth_check(request, client_ip(request))
            except BurstLimitExceeded:
                call.logged = False
                raise
            raise
        cfg = call.settings = config.current()
        burst_check(request, cfg.burst_limit_per_second)
        if count_now:
            call.standing = quota_consume(
                objects=0,
                objects_needed=1,
                request_limit=cfg.monthly_request_limit,
                object_limit=cfg.monthly_response_object_limit,
            )
            call.counting = Counting.AT_ADMISSION
        else:
            call.counting = Counting.WITH_ANSWER
        if not cfg.recording_file_api or not cfg.recording:
            raise NotContracted()
        if not cfg.recording_file_api_enabled:
            raise Unauthorized()
        return call


def count_and_log(request, response, call):
    """Count the request against the month and write its access-log entry (one statement
    for each case, recordings/access_log.py); the answer to send, with the month's standing."""
    if call.counting is Counting.WITH_ANSWER:
        call.objects = 1  # a file answer, or a recording's metadata, is one response object
        try:
            call.standing = entry_log_counted(
                _entry(request, response, call),
                request_limit=call.settings.monthly_request_limit,
                object_limit=call.settings.monthly_response_object_limit,
            )
        except MonthlyLimitExceeded as refused:
            # Not response.close(): that would end the request (request_finished) here.
            # A file it holds is closed when the response is dropped.
            response = error_response(refused)  # carries the month's standing
            call.objects = 0
            entry_log(_entry(request, response, call))
            return response
    elif call.logged:
        entry_log(_entry(request, response, call))
    # SPEC.md §3.4: each answer tells the standing, also one that was not counted (401, burst).
    if call.standing is None:
        cfg = config.current()
        call.standing = quota_standing(
            request_limit=cfg.monthly_request_limit, object_limit=cfg.monthly_response_object_limit
        )
    for header, value in call.standing.headers().items():
        response.headers.setdefault(header, value)
    return response


def _entry(request, response, call):
    if getattr(response, "streaming", False) or request.method == "HEAD":
        sent = 0 if request.method == "HEAD" else int(response.get("Content-Length") or 0)
    else:
        if not getattr(response, "is_rendered", True):
            response.render()  # a DRF Response renders only after finalize_response
        sent = len(response.content)
    token, recording = call.token, call.recording
    return {
        "at": db_datetime(timezone.now()),
        "token_id": token and token.id,
        "account_id": token and token.account.id,
        "method": request.method,
        "path": request.get_full_path()[:500],
        "recording_id": recording and recording.id,
        "recording_request_id": recording.request_id if recording else "",
        "content_type": call.content_type,
        "status": response.status_code,
        "bytes_sent": sent,
        "response_objects": call.objects,
        "client_ip": client_ip(request),
    }
