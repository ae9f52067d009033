"""The endpoints that take a whole day (SPEC.md §3.5): the listing and the archive."""

import base64
import binascii
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from urllib.parse import urlencode

from django.http import JsonResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers

from biztel.errors import MonthlyLimitExceeded, NotFound, Unauthorized, ValidationFailed
from biztel.limits import quota_release_objects, quota_reserve_objects
from biztel.models import Role
from biztel.numbers import normalize_number
from biztel.openapi import error_responses
from recordings.archive import archive_build, archive_for_day, archive_name
from recordings.public import PublicApiView
from recordings.responses import file_response
from recordings.selectors import day_bounds, recordings_page
from recordings.serializers import recording_data

PAGE_SIZE_DEFAULT = 100
PAGE_SIZE_MAX = 1000
DATE_MESSAGE = "The date must be a date of the form YYYY-MM-DD."
PAGE_SIZE_MESSAGE = f"The page_size must be a whole number from 1 to {PAGE_SIZE_MAX}."
CURSOR_MESSAGE = "The cursor is invalid; use the next URL of the previous page."
TIME_MESSAGE = "The {name} must be a local time of the form YYYY-MM-DD HH:MM:SS."
BOTH_FORMS_MESSAGE = "Give either date or from and to, not both."
MAX_WINDOW = timedelta(days=31)
WINDOW_MESSAGE = "The to must be later than from, at most 31 days later."
INCLUDE_DELETED_MESSAGE = "The include_deleted must be true or false."
NUMBER_FILTERS = ("tel", "external_number", "extension")


def parse_day(text):
    """The day of a YYYY-MM-DD text, or None; only years whose bounds the database can hold."""
    try:
        day = date.fromisoformat(text) if len(text or "") == 10 else None
    except ValueError:
        return None
    return day if day is not None and 1900 <= day.year <= 9998 else None


def parse_local_time(text):
    try:
        return timezone.make_aware(datetime.strptime(text or "", "%Y-%m-%d %H:%M:%S"))
    except ValueError:
        return None


def cursor_encode(scope, recording):
    key = f"{scope}|{recording.started_at.isoformat()}|{recording.pk}"
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def cursor_decode(scope, cursor):
    """The (started_at, id) key a page continues after, or None when the cursor is not one of ours for that window."""
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        cursor_scope, started_at, pk = key.split("|")
        if cursor_scope != scope:
            return None
        started, pk = datetime.fromisoformat(started_at), int(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    # only what this server writes: an aware start time the database can hold, a bigint id
    if started.tzinfo is None or not 1900 <= started.year <= 9998 or not 0 < pk < 2**63:
        return None
    return started, pk


@dataclass
class ListQuery:
    """A listing request: the window of call starts [start, end), the filters, the page."""

    start: datetime
    end: datetime
    scope: str  # what a cursor is bound to: the day, or the from/to window
    window: dict  # the query parameters that give the window, for the next URL
    filters: dict = field(default_factory=dict)
    include_deleted: bool = False
    page_size: int = PAGE_SIZE_DEFAULT
    after: tuple = None

    def next_query(self, last):
        extra = {"include_deleted": "true"} if self.include_deleted else {}
        return {
            **self.window, **self.filters, **extra, "page_size": self.page_size, "cursor": cursor_encode(self.scope, last)
        }


def _window_clean(params, errors):
    """(start, end, scope, window params) from date or from/to; None after naming the bad parameters."""
    ranged = "from" in params or "to" in params
    if ranged:
        if params.get("date"):
            errors["date"] = [BOTH_FORMS_MESSAGE]
        bounds = {}
        for name in ("from", "to"):
            if not params.get(name):
                errors[name] = [f"The {name} field is required with {'to' if name == 'from' else 'from'}."]
            elif (moment := parse_local_time(params[name])) is None:
                errors[name] = [TIME_MESSAGE.format(name=name)]
            else:
                bounds[name] = moment
        if len(bounds) == 2 and not timedelta(0) < bounds["to"] - bounds["from"] <= MAX_WINDOW:
            errors["to"] = [WINDOW_MESSAGE]
        if errors:
            return None
        window = {"from": params["from"], "to": params["to"]}
        return bounds["from"], bounds["to"], f"{params['from']}/{params['to']}", window
    day = parse_day(params.get("date"))
    if not params.get("date"):
        errors["date"] = ["The date field is required."]
    elif day is None:
        errors["date"] = [DATE_MESSAGE]
    if day is None:
        return None
    start, end = day_bounds(day)
    return start, end, day.isoformat(), {"date": day.isoformat()}


def list_query_clean(params):
    """The ListQuery of the query string, or ValidationFailed naming each bad parameter."""
    errors = {}
    window = _window_clean(params, errors)
    filters = {}
    for name in NUMBER_FILTERS:
        if params.get(name):
            try:
                filters[name] = normalize_number(params[name])
            except ValueError:
                errors[name] = [f"The {name} must be a phone number (digits and hyphens)."]
    if params.get("group"):
        filters["group"] = params["group"]
    include_deleted = params.get("include_deleted", "false")
    if include_deleted not in ("true", "false"):
        errors["include_deleted"] = [INCLUDE_DELETED_MESSAGE]
    page_size = PAGE_SIZE_DEFAULT
    if "page_size" in params:
        raw = params["page_size"]
        page_size = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else 0
        if not 1 <= page_size <= PAGE_SIZE_MAX:
            errors["page_size"] = [PAGE_SIZE_MESSAGE]
    after = None
    if params.get("cursor") and window is not None:
        after = cursor_decode(window[2], params["cursor"])
        if after is None:
            errors["cursor"] = [CURSOR_MESSAGE]
    if errors:
        raise ValidationFailed(messages=errors)
    start, end, scope, window_params = window
    return ListQuery(
        start=start, end=end, scope=scope, window=window_params, filters=filters,
        include_deleted=include_deleted == "true", page_size=page_size, after=after,
    )


def may_list(account):
    return account.role != Role.PBX


def may_download_every_file(account, settings_row):
    """The archive holds every group's files, so only an account that may download them all gets it."""
    if account.role == Role.PBX or account.group_list():
        return False
    return not (settings_row.prohibit_download_below_supervisor and account.role in (Role.SUPERVISOR, Role.OPERATOR))


class DayListView(PublicApiView):
    """GET /public/api/v1/monitor/?date=YYYY-MM-DD (or from=…&to=…)[&tel=…][&page_size=N][&cursor=…]"""

    @extend_schema(
        operation_id="monitor_day_list",
        summary="The recordings of a day, page by page",
        parameters=[
            OpenApiParameter(
                "date", OpenApiTypes.DATE, description="The day the calls started (local time); or give from and to."
            ),
            OpenApiParameter(
                "from", str, description="Calls started at or after this local time, YYYY-MM-DD HH:MM:SS (with to).",
                examples=[OpenApiExample("from", value="2021-09-13 00:00:00")],
            ),
            OpenApiParameter(
                "to", str, description="Calls started before this local time (exclusive), at most 31 days after from.",
                examples=[OpenApiExample("to", value="2021-09-14 00:00:00")],
            ),
            OpenApiParameter("tel", str, description="The customer's number, exact (hyphens ignored)."),
            OpenApiParameter("external_number", str, description="The trunk/DID number, exact (hyphens ignored)."),
            OpenApiParameter("extension", str, description="The operator's extension, exact (hyphens ignored)."),
            OpenApiParameter("group", str, description="The operator group, exact."),
            OpenApiParameter(
                "include_deleted", OpenApiTypes.BOOL, description="true: recordings deleted on request too (status deleted)."
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
        # Counted now: one object per recording returned is reserved once the page size is known.
        call = self.admit(request, count_now=True)
        account = call.account
        if not may_list(account):
            raise Unauthorized()
        query = list_query_clean(request.GET)
        limit = call.settings.monthly_response_object_limit
        granted = quota_reserve_objects(wanted=query.page_size, object_limit=limit)
        if granted == 0:
            # the last objects went to concurrent requests after this one was admitted
            headers = {**call.standing.headers(), "Retry-After": str(call.standing.seconds_to_reset())}
            raise MonthlyLimitExceeded(headers=headers)
        page = []
        try:
            # one row more than granted says whether there is a next page
            page = recordings_page(
                start=query.start, end=query.end, after=query.after, limit=granted + 1, groups=account.group_list(),
                filters=query.filters, include_deleted=query.include_deleted,
            )
        finally:
            returned = min(len(page), granted)
            quota_release_objects(count=granted - returned)
        call.objects = returned
        call.standing = replace(call.standing, objects_used=call.standing.objects_used + returned)
        next_url = None
        if len(page) > granted:
            page = page[:granted]
            next_url = request.build_absolute_uri(f"{request.path}?{urlencode(query.next_query(page[-1]))}")
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
        call = self.admit(request)
        if not call.settings.bulk_download or not may_download_every_file(call.account, call.settings):
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
