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
# request and `objects_needed` objects; the month's first request creates its row, and it
# returns the month's counts, or no row when the month is used up. Also the head of the
# access log's count-and-log statement (recordings/access_log.py).
COUNT_REQUEST = """
INSERT INTO biztel_monthlyusage AS u (month, requests, response_objects)
SELECT %(month)s, 1, %(objects)s
 WHERE 1 <= %(request_limit)s AND %(objects_needed)s <= %(object_limit)s
    ON CONFLICT (month) DO UPDATE
   SET requests = u.requests + 1, response_objects = u.response_objects + %(objects)s
 WHERE u.requests + 1 <= %(request_limit)s AND u.response_objects + %(objects_needed)s <= %(object_limit)s
RETURNING requests, response_objects
"""


@dataclass(frozen=True)
class QuotaCount:
    """One request, and `objects` response objects, to count against the month: the
    parameters of COUNT_REQUEST and what the row it returns means.

    objects_needed lets a list request insist on room for one object while consuming
    none yet (it reserves the real number with quota_reserve_objects)."""

    objects: int
    request_limit: int
    object_limit: int
    objects_needed: int | None = None
    now: datetime | None = None

    def params(self):
        month, _ = month_bounds(self.now)
        return {
            "month": month,
            "objects": self.objects,
            "objects_needed": self.objects if self.objects_needed is None else self.objects_needed,
            "request_limit": self.request_limit,
            "object_limit": self.object_limit,
        }

    def standing(self, row):
        """The month's Standing after COUNT_REQUEST returned `row`; MonthlyLimitExceeded for no row."""
        _, reset_at = month_bounds(self.now)
        if row is None:
            used_up = Standing(self.request_limit, self.request_limit, self.object_limit, self.object_limit, reset_at)
            raise MonthlyLimitExceeded(headers={**used_up.headers(), "Retry-After": str(used_up.seconds_to_reset())})
        return Standing(self.request_limit, row[0], self.object_limit, row[1], reset_at)


def quota_consume(*, objects, request_limit, object_limit, objects_needed=None, now=None):
    """Count one request against the month, or raise MonthlyLimitExceeded."""
    count = QuotaCount(objects, request_limit, object_limit, objects_needed, now)
    return count.standing(fetch_one(COUNT_REQUEST, count.params()))


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
