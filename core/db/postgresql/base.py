"""Django's PostgreSQL backend with a health check that costs no round trip.

With persistent connections (CONN_MAX_AGE) and CONN_HEALTH_CHECKS, Django checks each request's
connection before its first use with `SELECT 1`: a round trip on every request, about as much as
one of the request's own statements (bench/README.md, single event). A connection the server
closed (a restart, an idle timeout, pg_terminate_backend) has something to read while it sits
idle: the server's termination notice or the end of the stream. So the check looks at the socket
first and sends `SELECT 1` only when there is something there; a quiet socket on a connection
libpq still reports healthy is used as it is. A connection cut without a word from the server
(a dead network path) is found by neither check until TCP gives up, as before."""

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        conn = self.connection
        if conn is None or conn.closed or conn.broken or conn.pgconn.status != pq.ConnStatus.OK:
            return False
        if conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
            return super().is_usable()
        try:
            poller = select.poll()
            poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
            waiting = poller.poll(0)
        except (OSError, ValueError):
            return False
        return super().is_usable() if waiting else True
