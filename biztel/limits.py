"""Burst limit and monthly quota (SPEC.md §3.4), both counted atomically.

Burst: django-ratelimit on the shared cache (Redis INCR), one key per second for
the whole server. Quota: one row per month, changed by a single conditional
upsert, so with N left exactly N of any number of concurrent requests pass.
"""

import calendar
from dataclasses import dataclass
from datetime import datetime, time as dtime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_ratelimit.core import get_usage

from biztel.errors import BurstLimitExceeded, MonthlyLimitExceeded
from biztel.models import MonthlyUsage
from biztel.sql import fetch_one


def _whole_server(group, request):
    return "server"


def burst_check(request, limit):
    usage = get_usage(request, group="public-api", key=_whole_server, rate=f"{limit}/s", increment=True)
    if usage["should_limit"]:
        raise BurstLimitExceeded(
            headers={"Retry-After": "1", "RateLimit-Policy": f'"burst";q={limit};w=1', "RateLimit": '"burst";r=0;t=1'}
        )


# Failed authentications one client address may make in ten seconds before it is answered
# 429 (and stops writing access-log rows); requests with a valid token are never counted.
# High enough that a client that mistypes its token, or checks the 401 rows, never meets it.
FAILED_AUTH_RATE = "60/10s"


def failed_auth_check(request, address):
    """Count a failed authentication of this address; BurstLimitExceeded past FAILED_AUTH_RATE."""
    usage = get_usage(
        request, group="failed-auth", key=lambda group, request: address or "unknown", rate=FAILED_AUTH_RATE,
        increment=True,
    )
    if usage["should_limit"]:
        raise BurstLimitExceeded(headers={"Retry-After": str(max(1, usage["time_left"]))})


def month_bounds(now=None):
    """First day of this month and the moment the next one starts, in server time."""
    today = timezone.localdate(now)
    first = today.replace(day=1)
    days = calendar.monthrange(first.year, first.month)[1]
    next_start = timezone.make_aware(datetime.combine(first + timedelta(days=days), dtime.min))
    return first, next_start


@dataclass(frozen=True)
class Standing:
    request_limit: int
    requests_used: int
    object_limit: int
    objects_used: int
    reset_at: datetime

    @property
    def remaining(self):
        return max(0, min(self.request_limit - self.requests_used, self.object_limit - self.objects_used))

    def seconds_to_reset(self, now=None):
        return max(1, int((self.reset_at - (now or timezone.now())).total_seconds()))

    def headers(self):
        reset = self.seconds_to_reset()
        return {
            "X-RateLimit-Limit": str(self.request_limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(int(self.reset_at.timestamp())),
            "RateLimit-Policy": f'"monthly";q={self.request_limit};w={reset}',
            "RateLimit": f'"monthly";r={self.remaining};t={reset}',
        }


# Counts one request and `objects` response objects if the month has room for the
# request and `objects_needed` objects; the month's first request creates its row.
# Also run inside the statement that writes an access-log entry (biztel/access_log.py).
COUNT_REQUEST = """
INSERT INTO biztel_monthlyusage AS u (month, requests, response_objects)
SELECT %(month)s, 1, %(objects)s
 WHERE 1 <= %(request_limit)s AND %(objects_needed)s <= %(object_limit)s
    ON CONFLICT (month) DO UPDATE
   SET requests = u.requests + 1, response_objects = u.response_objects + %(objects)s
 WHERE u.requests + 1 <= %(request_limit)s AND u.response_objects + %(objects_needed)s <= %(object_limit)s
RETURNING requests, response_objects
"""


def quota_consume(
    *, objects, request_limit, object_limit, objects_needed=None, now=None, statement=COUNT_REQUEST, extra_params=None
):
    """Count one request against the month, or raise MonthlyLimitExceeded.

    objects_needed lets a list request insist on room for one object while
    consuming none yet (it reserves the real number with quota_reserve_objects).
    statement may be one built around COUNT_REQUEST that also writes other rows when
    the request is counted and returns its row (biztel/access_log.py), with extra_params.
    """
    month, reset_at = month_bounds(now)
    params = {
        "month": month,
        "objects": objects,
        "objects_needed": objects if objects_needed is None else objects_needed,
        "request_limit": request_limit,
        "object_limit": object_limit,
        **(extra_params or {}),
    }
    row = fetch_one(statement, params)
    if row is None:
        standing = Standing(request_limit, request_limit, object_limit, object_limit, reset_at)
        raise MonthlyLimitExceeded(headers={**standing.headers(), "Retry-After": str(standing.seconds_to_reset())})
    return Standing(request_limit, row[0], object_limit, row[1], reset_at)


def quota_standing(*, request_limit, object_limit, now=None):
    """The month's standing without counting anything (for answers that are not counted)."""
    month, reset_at = month_bounds(now)
    used = MonthlyUsage.objects.filter(month=month).values_list("requests", "response_objects").first()
    requests, objects = used or (0, 0)
    return Standing(request_limit, requests, object_limit, objects, reset_at)


def quota_reserve_objects(*, wanted, object_limit, now=None):
    """Take up to `wanted` objects from the month; returns how many were granted."""
    month, _ = month_bounds(now)
    with transaction.atomic():
        usage = MonthlyUsage.objects.select_for_update().filter(month=month).first()
        if usage is None:
            return 0
        granted = max(0, min(wanted, object_limit - usage.response_objects))
        MonthlyUsage.objects.filter(pk=usage.pk).update(response_objects=F("response_objects") + granted)
    return granted


def quota_release_objects(*, count, now=None):
    """Give back objects reserved but not returned."""
    if count <= 0:
        return
    month, _ = month_bounds(now)
    MonthlyUsage.objects.filter(month=month).update(response_objects=F("response_objects") - count)
