"""Burst limit and monthly quota (SPEC.md §3.4), both counted atomically.

Burst: django-ratelimit on the shared cache (Redis INCR), one key per second for
the whole server. Quota: one row per month, changed by a single conditional
UPDATE, so with N left exactly N of any number of concurrent requests pass.
"""

import calendar
from dataclasses import dataclass
from datetime import datetime, time as dtime, timedelta

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django_ratelimit.core import get_usage

from biztel.errors import BurstLimitExceeded, MonthlyLimitExceeded
from biztel.models import MonthlyUsage



def _whole_server(group, request):
    return "server"


def burst_check(request, limit):
    usage = get_usage(request, group="public-api", key=_whole_server, rate=f"{limit}/s", increment=True)
    if usage["should_limit"]:
        raise BurstLimitExceeded(
            headers={"Retry-After": "1", "RateLimit-Policy": f'"burst";q={limit};w=1', "RateLimit": '"burst";r=0;t=1'}
        )


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


_CONSUME = """
UPDATE biztel_monthlyusage
   SET requests = requests + %(requests)s,
       response_objects = response_objects + %(objects)s
 WHERE month = %(month)s
   AND requests + %(requests)s <= %(request_limit)s
   AND response_objects + %(objects_needed)s <= %(object_limit)s
RETURNING requests, response_objects
"""


def quota_consume(*, requests, objects, request_limit, object_limit, objects_needed=None, now=None):
    """Count this request against the month, or raise MonthlyLimitExceeded.

    objects_needed lets a list request insist on room for one object while
    consuming none yet (it reserves the real number with quota_reserve_objects).
    """
    month, reset_at = month_bounds(now)
    params = {
        "requests": requests,
        "objects": objects,
        "objects_needed": objects if objects_needed is None else objects_needed,
        "month": month,
        "request_limit": request_limit,
        "object_limit": object_limit,
    }
    with connection.cursor() as cursor:
        cursor.execute(_CONSUME, params)
        row = cursor.fetchone()
        if row is None:
            # The month's row may not exist yet (or another request has just made it):
            # make sure it exists and count once more. Only a used-up quota fails twice.
            MonthlyUsage.objects.bulk_create([MonthlyUsage(month=month)], ignore_conflicts=True)
            cursor.execute(_CONSUME, params)
            row = cursor.fetchone()
    if row is None:
        standing = Standing(request_limit, request_limit, object_limit, object_limit, reset_at)
        raise MonthlyLimitExceeded(headers={**standing.headers(), "Retry-After": str(standing.seconds_to_reset())})
    return Standing(request_limit, row[0], object_limit, row[1], reset_at)


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
