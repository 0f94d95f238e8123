"""PostgreSQL connections on which no wait lasts longer than the limits say.

Written by hand because nothing below us bounds a wait on an open connection:
psycopg waits on its socket for as long as it takes, `statement_timeout` is the
server's own limit (useless when the server, or the path to it, is what stopped
answering), and TCP keepalive and tcp_user_timeout end a connection only when the
kernel sees the network die, not when a proxy in the middle acknowledges every
byte and forwards none. psycopg's own wait loop takes a deadline; this connection
class gives it one on every call, and closes the connection when it passes, since
a protocol exchange cut in the middle cannot be resumed. SQLAlchemy then sees a
closed connection and drops it from its pool.
"""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import Engine, event

from .limits import StoreLimits


class BoundedConnection(psycopg.Connection):  # type: ignore[type-arg]
    answer_timeout: float | None = None

    def wait(self, gen: Any, interval: float | None = None,
             timeout: float | None = None) -> Any:
        bound = self.answer_timeout if timeout is None else timeout
        extra = {} if interval is None else {"interval": interval}
        try:
            return super().wait(gen, timeout=bound, **extra)
        except psycopg.OperationalError as exc:
            if bound is None or not _is_wait_timeout(exc):
                raise
            self.close()
            raise psycopg.OperationalError(
                f"the database server did not answer within {bound:g} s; the connection "
                "is closed") from None


def _is_wait_timeout(exc: BaseException) -> bool:
    # psycopg raises a private subclass of OperationalError when its deadline passes.
    timeout_class = getattr(psycopg.errors, "_WaitTimeout", None)
    return timeout_class is not None and isinstance(exc, timeout_class)


def bound_waits(engine: Engine, limits: StoreLimits) -> None:
    """Every connection of `engine`: bounded waits, and the server's statement_timeout
    (set per session with set_config, which works behind pgbouncer too, unlike a
    startup `options` parameter)."""
    answer = limits.answer_timeout
    statement_ms = str(round(limits.statement_timeout * 1000))

    @event.listens_for(engine, "do_connect")
    def connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        connection = BoundedConnection.connect(*cargs, **cparams)
        connection.answer_timeout = answer
        return connection

    @event.listens_for(engine, "connect")
    def session_limits(dbapi_connection: Any, _record: Any) -> None:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        dbapi_connection.execute("SELECT set_config('statement_timeout', %s, false)",
                                 (statement_ms,))
        dbapi_connection.autocommit = autocommit
