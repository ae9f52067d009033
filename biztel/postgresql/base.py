"""Django's PostgreSQL backend with a health check that costs no round trip while the
connection is fine (settings: ENGINE "biztel.postgresql" for a postgres:// DATABASE_URL).

CONN_HEALTH_CHECKS makes Django check a kept connection once per request before its first
query, with `SELECT 1`: on the download path that was a round trip per request for nothing.
A connection the server ended (a restart, a failover, pg_terminate_backend) has the
server's goodbye or the end of the stream waiting on its idle socket, so a poll of the
socket tells a live idle connection apart at the cost of one system call; only when
something is waiting is it asked with `SELECT 1` as before. A connection that saw an
error is still checked with the real query (close_if_unusable_or_obsolete, is_usable).
"""

import select

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def close_if_health_check_failed(self):
        if self.connection is None or not self.health_check_enabled or self.health_check_done:
            return
        if self._server_said_something() and not self.is_usable():
            self.close()
        self.health_check_done = True

    def _server_said_something(self):
        try:
            waiting, _, _ = select.select([self.connection.fileno()], [], [], 0)
        except (OSError, ValueError):  # a closed socket
            return True
        return bool(waiting)
