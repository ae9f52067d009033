"""The access log: one row per request to the public API, written as plain SQL
(biztel/sql.py) because every request writes one."""

from django.db import connection, transaction

from biztel import metrics
from biztel.limits import COUNT_REQUEST, quota_consume
from recordings.models import AccessLogEntry

COLUMNS = (
    "at", "token_id", "account_id", "method", "path", "recording_id", "recording_request_id", "content_type", "status",
    "bytes_sent", "response_objects", "client_ip",
)
_VALUES = ", ".join(f"%({column})s" for column in COLUMNS)
_INSERT = f"INSERT INTO {AccessLogEntry._meta.db_table} ({', '.join(COLUMNS)})"

_ENTRY = f"{_INSERT} VALUES ({_VALUES})"

# The request counted against the month and its entry written in one statement, so one
# commit per download; the entry is written only if the month had room.
_COUNTED_ENTRY = f"""
WITH counted AS ({COUNT_REQUEST}),
     logged AS ({_INSERT} SELECT {_VALUES} FROM counted)
SELECT requests, response_objects FROM counted
"""


def entry_write(entry):
    """entry: a value for each of COLUMNS (datetimes through biztel.sql.db_datetime)."""
    with connection.cursor() as cursor:
        cursor.execute(_ENTRY, entry)
    metrics.download_observed(entry)


def entry_write_counted(entry, *, request_limit, object_limit):
    """Count the request and entry["response_objects"] objects against the month and
    write the entry; the month's Standing, or MonthlyLimitExceeded with nothing written."""
    limits = {"objects": entry["response_objects"], "request_limit": request_limit, "object_limit": object_limit}
    if connection.vendor == "sqlite":  # it cannot write inside WITH: two statements, one transaction
        with transaction.atomic():
            standing = quota_consume(**limits)
            entry_write(entry)
        return standing
    standing = quota_consume(**limits, statement=_COUNTED_ENTRY, extra_params=entry)
    metrics.download_observed(entry)
    return standing
