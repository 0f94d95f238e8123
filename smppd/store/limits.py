"""How long the daemon waits on its database, at every step (config `store:`).

A database that refuses a connection answers at once; one behind dropped packets,
a hung proxy or a stuck server answers never. Without a bound on each wait the
writer thread would hang on it, the API would keep clients waiting and deliver_sm
would go unanswered for as long as the network stays dark. Each field bounds one
wait, so that smppd can say "unavailable" (503, ESME_RX_T_APPN, /readyz) within a
few seconds and try again.
"""

from __future__ import annotations

from dataclasses import dataclass

# A server that cancels a statement at statement_timeout says so at once; this much
# more covers the round trip before the client decides nobody is there.
ANSWER_MARGIN = 1.0


@dataclass(frozen=True)
class StoreLimits:
    connect_timeout: float = 3.0  # open a connection: TCP and log-in (PostgreSQL)
    statement_timeout: float = 5.0  # the server's limit on one statement; SQLite: lock wait
    pool_timeout: float = 3.0  # wait for a free pooled connection
    keepalives_idle: int = 5  # TCP keepalive: first probe after this idle time (s)
    keepalives_interval: int = 2  # then one probe every this many seconds
    keepalives_count: int = 3  # this many unanswered probes end the connection
    tcp_user_timeout: float = 5.0  # sent data unacknowledged this long ends it (Linux)
    stall_timeout: float = 3.0  # no commit this long while work waits: unavailable
    # Where the writer's transactions run (issue 14, smppd.store.child): "process", its
    # own process on another core; "thread", the daemon's writer thread; "auto", a
    # process on SQLite (one instance per database: its way to a second core) and the
    # thread on PostgreSQL (instances scale out instead; bench/cluster.py, two instances
    # and the server on two cores: 841 msg/s with threads, 469-501 with processes).
    writer: str = "auto"

    def writer_process(self, dialect: str) -> bool:
        return self.writer == "process" or (self.writer == "auto" and dialect == "sqlite")

    @property
    def answer_timeout(self) -> float:
        """The longest the client waits for any answer on an open connection."""
        return self.statement_timeout + ANSWER_MARGIN

    def postgres_connect_args(self, given: dict[str, object]) -> dict[str, object]:
        """libpq connection parameters for these limits; those already in the URL
        (`given`) win, since the operator wrote them there on purpose."""
        wanted: dict[str, object] = {
            # libpq counts whole seconds and takes at least 2.
            "connect_timeout": max(2, round(self.connect_timeout)),
            "keepalives": 1,
            "keepalives_idle": self.keepalives_idle,
            "keepalives_interval": self.keepalives_interval,
            "keepalives_count": self.keepalives_count,
            "tcp_user_timeout": round(self.tcp_user_timeout * 1000),
        }
        return {key: value for key, value in wanted.items() if key not in given}
