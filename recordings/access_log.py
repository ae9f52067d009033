"""The access log: one row per request to the public API, written as plain SQL
(biztel/sql.py) because every request writes one. Two statements, one per case:

- _LOGGED: an answer that is not counted with its entry (no valid token, the burst 429,
  the month's 429 itself) or was counted before it was made (the day list);
- _COUNTED_AND_LOGGED: the request counted against the month and its entry written in
  one statement, so one commit per download; the entry is written only if the month had
  room (PostgreSQL; SQLite, the embedded database, cannot write inside WITH and runs the
  count and the entry as two statements of one transaction).
"""

from django.db import connection, transaction

from biztel import metrics
from biztel.limits import COUNT_REQUEST, QuotaCount
from biztel.sql import fetch_one
from recordings.models import AccessLogEntry, Recording

COLUMNS = (
    "at", "token_id", "account_id", "method", "path", "recording_id", "recording_request_id", "content_type", "status",
    "bytes_sent", "response_objects", "client_ip",
)
# The token, account and recording as this process last saw them (biztel/tokens.py and
# recordings/selectors.py keep them up to a second): one removed meanwhile is logged as
# none, rather than failing the commit on its foreign key. The request ID stays as text.
_REFERENCED = {
    "token_id": "biztel_apitoken", "account_id": "biztel_account", "recording_id": Recording._meta.db_table,
}
_VALUES = ", ".join(
    f"(SELECT id FROM {_REFERENCED[column]} WHERE id = %({column})s)" if column in _REFERENCED else f"%({column})s"
    for column in COLUMNS
)
_INSERT = f"INSERT INTO {AccessLogEntry._meta.db_table} ({', '.join(COLUMNS)})"

_LOGGED = f"{_INSERT} VALUES ({_VALUES})"

_COUNTED_AND_LOGGED = f"""
WITH counted AS ({COUNT_REQUEST}),
     logged AS ({_INSERT} SELECT {_VALUES} FROM counted)
SELECT requests, response_objects FROM counted
"""


def entry_log(entry):
    """Write the entry of an answer not counted with it. entry: a value for each of
    COLUMNS (datetimes through biztel.sql.db_datetime)."""
    with connection.cursor() as cursor:
        cursor.execute(_LOGGED, entry)
    metrics.download_observed(entry)


def entry_log_counted(entry, *, request_limit, object_limit):
    """Count the request and entry["response_objects"] objects against the month and
    write the entry; the month's Standing, or MonthlyLimitExceeded with nothing written."""
    count = QuotaCount(objects=entry["response_objects"], request_limit=request_limit, object_limit=object_limit)
    if connection.vendor == "sqlite":
        with transaction.atomic():
            standing = count.standing(fetch_one(COUNT_REQUEST, count.params()))
            with connection.cursor() as cursor:
                cursor.execute(_LOGGED, entry)
    else:
        standing = count.standing(fetch_one(_COUNTED_AND_LOGGED, {**count.params(), **entry}))
    metrics.download_observed(entry)
    return standing
