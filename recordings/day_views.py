"""The endpoints that take a whole day (SPEC.md §3.5): the listing and the archive."""

import base64
import binascii
from dataclasses import replace
from datetime import date, datetime
from urllib.parse import urlencode

from django.http import JsonResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers

from biztel.downloads import file_response
from biztel.errors import MonthlyLimitExceeded, NotFound, Unauthorized, ValidationFailed
from biztel.limits import quota_release_objects, quota_reserve_objects
from biztel.models import Role
from biztel.openapi import error_responses
from biztel.public import PublicApiView
from recordings.archive import archive_build, archive_for_day, archive_name
from recordings.selectors import day_recordings
from recordings.serializers import recording_data

PAGE_SIZE_DEFAULT = 100
PAGE_SIZE_MAX = 1000
DATE_MESSAGE = "The date must be a date of the form YYYY-MM-DD."
PAGE_SIZE_MESSAGE = f"The page_size must be a whole number from 1 to {PAGE_SIZE_MAX}."
CURSOR_MESSAGE = "The cursor is invalid; use the next URL of the previous page."


def parse_day(text):
    try:
        return date.fromisoformat(text) if len(text or "") == 10 else None
    except ValueError:
        return None


def cursor_encode(day, recording):
    key = f"{day.isoformat()}|{recording.started_at.isoformat()}|{recording.pk}"
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def cursor_decode(day, cursor):
    """The (started_at, id) key a page continues after, or None when the cursor is not one of ours for that day."""
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        cursor_day, started_at, pk = key.split("|")
        if cursor_day != day.isoformat():
            return None
        return datetime.fromisoformat(started_at), int(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def list_query_clean(params):
    """(day, page_size, after) from the query string, or ValidationFailed naming each bad parameter."""
    errors = {}
    day = parse_day(params.get("date"))
    if not params.get("date"):
        errors["date"] = ["The date field is required."]
    elif day is None:
        errors["date"] = [DATE_MESSAGE]
    page_size = PAGE_SIZE_DEFAULT
    if "page_size" in params:
        raw = params["page_size"]
        page_size = int(raw) if raw.isascii() and raw.isdigit() else 0
        if not 1 <= page_size <= PAGE_SIZE_MAX:
            errors["page_size"] = [PAGE_SIZE_MESSAGE]
    after = None
    if params.get("cursor") and day is not None:
        after = cursor_decode(day, params["cursor"])
        if after is None:
            errors["cursor"] = [CURSOR_MESSAGE]
    if errors:
        raise ValidationFailed(messages=errors)
    return day, page_size, after


def may_list(account):
    return account.role != Role.PBX


def may_download_every_file(account, settings_row):
    """The archive holds every group's files, so only an account that may download them all gets it."""
    if account.role == Role.PBX or account.group_list():
        return False
    return not (settings_row.prohibit_download_below_supervisor and account.role in (Role.SUPERVISOR, Role.OPERATOR))


class DayListView(PublicApiView):
    """GET /public/api/v1/monitor/?date=YYYY-MM-DD[&page_size=N][&cursor=…]"""

    # One object per recording returned, reserved once the page size is known.
    count_at_admission = True

    @extend_schema(
        operation_id="monitor_day_list",
        summary="The recordings of a day, page by page",
        parameters=[
            OpenApiParameter(
                "date", OpenApiTypes.DATE, required=True, description="The day the calls started (local time)."
            ),
            OpenApiParameter("page_size", int, description=f"1 to {PAGE_SIZE_MAX}, default {PAGE_SIZE_DEFAULT}."),
            OpenApiParameter("cursor", str, description="Opaque; take the next URL of the previous page as it is."),
        ],
        responses={
            200: OpenApiResponse(
                inline_serializer(
                    "DayPage",
                    fields={
                        "results": serializers.ListField(
                            child=serializers.DictField(),
                            help_text="Recordings as the ingest answers them: IDs, start, numbers, and per content "
                            "type name, bytes, sha256, duration and exists (null when never produced).",
                        ),
                        "next": serializers.URLField(allow_null=True, help_text="The next page, or null."),
                    },
                ),
                description="Counts 1 request and one response object per recording returned.",
            ),
            **error_responses(400, 401, 403, 429, 500),
        },
    )
    def get(self, request):
        account = self.admit(request)
        if not may_list(account):
            raise Unauthorized()
        day, page_size, after = list_query_clean(request.GET)
        limit = self.system.monthly_response_object_limit
        granted = quota_reserve_objects(wanted=page_size, object_limit=limit)
        if granted == 0:
            # the last objects went to concurrent requests after this one was admitted
            headers = {**self.standing.headers(), "Retry-After": str(self.standing.seconds_to_reset())}
            raise MonthlyLimitExceeded(headers=headers)
        page = []
        try:
            # one row more than granted says whether there is a next page
            page = day_recordings(day, after=after, limit=granted + 1, groups=account.group_list())
        finally:
            returned = min(len(page), granted)
            quota_release_objects(count=granted - returned)
        self.log_objects = returned
        self.standing = replace(self.standing, objects_used=self.standing.objects_used + returned)
        next_url = None
        if len(page) > granted:
            page = page[:granted]
            query = {"date": day.isoformat(), "page_size": page_size, "cursor": cursor_encode(day, page[-1])}
            next_url = request.build_absolute_uri(f"{request.path}?{urlencode(query)}")
        # rendered here: the access log measures the body as the response leaves the view
        return JsonResponse(
            {"results": [recording_data(r) for r in page], "next": next_url}, json_dumps_params={"ensure_ascii": False}
        )


class DayArchiveView(PublicApiView):
    """GET/HEAD /public/api/v1/monitor/archive/<YYYY-MM-DD>"""

    @extend_schema(
        operation_id="monitor_day_archive",
        summary="Every file of a day and manifest.csv in one zip (bulk-download licence)",
        parameters=[
            OpenApiParameter("day", OpenApiTypes.DATE, OpenApiParameter.PATH, description="YYYY-MM-DD, local time.")
        ],
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="The zip; Range gives 206."),
            (206, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="The requested byte range."),
            304: OpenApiResponse(description="Not modified (If-None-Match or If-Modified-Since)."),
            **error_responses(400, 401, 403, 404, 416, 429, 500),
        },
    )
    def get(self, request, day):
        account = self.admit(request)
        if not self.system.bulk_download or not may_download_every_file(account, self.system):
            raise Unauthorized()
        parsed = parse_day(day)
        if parsed is None:
            raise ValidationFailed(DATE_MESSAGE, messages={"date": [DATE_MESSAGE]})
        if parsed > timezone.localdate():
            raise NotFound()
        archive = archive_for_day(day=parsed)
        try:
            return _archive_response(request, archive)
        except FileNotFoundError:
            # purged between the lookup and the open: the day is built again, as for a purged archive
            return _archive_response(request, archive_build(day=parsed))

    head = get


def _archive_response(request, archive):
    return file_response(
        request,
        relative_path=archive.path,
        name=archive_name(archive.day),
        size=archive.size,
        sha256=archive.sha256,
        modified=archive.built_at,
        content_type="application/zip",
    )
