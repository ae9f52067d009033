"""Plain SQL for the request hot path, where the ORM's query building costs more than
the query. On PostgreSQL psycopg prepares such a statement after a few runs
(settings: server_side_binding)."""

from datetime import UTC, datetime

from django.db import connection
from django.utils import timezone


def fetch_one(sql, params):
    """The first row, or None; datetimes come back aware, as the ORM gives them
    (SQLite, the embedded database, returns them naive in UTC)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None or connection.vendor == "postgresql":
        return row
    return tuple(timezone.make_aware(v, UTC) if isinstance(v, datetime) and timezone.is_naive(v) else v for v in row)


def db_datetime(value):
    """A datetime as a query parameter, stored the way the ORM stores it."""
    return connection.ops.adapt_datetimefield_value(value)
