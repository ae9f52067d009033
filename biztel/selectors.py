"""Reads for the administrator's pages."""

from dataclasses import dataclass

from biztel import config
from biztel.limits import month_bounds
from biztel.models import MonthlyUsage


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


# Meters the features add to the settings page, in ready() (recordings: the recording
# time), so the platform imports no feature: label -> (unit, function(year, month) -> used).
_meters = {}


def usage_meter_add(label, *, unit, used_in_month):
    _meters[label] = (unit, used_in_month)


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
            *(
                Meter(label, used_in_month(year=first.year, month=first.month), None, unit)
                for label, (unit, used_in_month) in _meters.items()
            ),
        ],
    }
