"""Reads for the administrator's pages."""

from dataclasses import dataclass

from biztel import config
from biztel.limits import month_bounds
from biztel.models import MonthlyUsage
from recordings.selectors import recording_minutes_in_month


@dataclass(frozen=True)
class Meter:
    label: str
    used: float
    limit: int | None  # None: nothing contracted to measure it against
    unit: str

    @property
    def percent(self):
        if self.limit is None:
            return None
        if self.limit == 0:
            return 100
        return min(100, round(100 * self.used / self.limit, 1))

    @property
    def exhausted(self):
        return self.limit is not None and self.used >= self.limit


def usage_this_month(now=None):
    """This calendar month's consumption (server time zone) against the quota."""
    first, _ = month_bounds(now)
    row = MonthlyUsage.objects.filter(month=first).first()
    cfg = config.current()
    return {
        "month": first,
        "meters": [
            Meter("API requests", row.requests if row else 0, cfg.monthly_request_limit, "requests"),
            Meter("Response objects", row.response_objects if row else 0, cfg.monthly_response_object_limit, "objects"),
            Meter("Recording time", recording_minutes_in_month(year=first.year, month=first.month), None, "minutes"),
        ],
    }
