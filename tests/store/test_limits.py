"""Bounded waits on the database (config `store:`): what reaches libpq, the
server's statement_timeout, and the client-side deadline on an open connection
to a server that stopped answering."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from smppd.store import database
from smppd.store.limits import StoreLimits
from tests.support.faults import postgres_behind_proxy


def test_libpq_parameters_follow_the_limits_unless_the_url_sets_them() -> None:
    limits = StoreLimits(connect_timeout=0.5, keepalives_idle=9, tcp_user_timeout=2.5)
    args = limits.postgres_connect_args({"keepalives_idle": "30"})
    assert args == {"connect_timeout": 2, "keepalives": 1, "keepalives_interval": 2,
                    "keepalives_count": 3, "tcp_user_timeout": 2500}


def test_sqlite_waits_for_a_lock_as_long_as_the_statement_timeout(tmp_path: Path) -> None:
    engine = database.make_engine(f"sqlite:///{tmp_path}/x.db",
                                  limits=StoreLimits(statement_timeout=1.5, pool_timeout=2))
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1500
        assert engine.pool.timeout() == 2
    finally:
        engine.dispose()


def test_a_silent_server_ends_the_wait_and_the_engine_reconnects_after() -> None:
    limits = StoreLimits(statement_timeout=1.0, connect_timeout=2)
    with postgres_behind_proxy() as (proxy, url):
        engine = database.make_engine(url, limits=limits)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SHOW statement_timeout")).scalar() == "1s"
                parameters = conn.connection.dbapi_connection.info.get_parameters()
                assert {key: parameters.get(key) for key in (
                    "connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
                    "keepalives_count", "tcp_user_timeout")} == {
                    "connect_timeout": "2", "keepalives": "1", "keepalives_idle": "5",
                    "keepalives_interval": "2", "keepalives_count": "3",
                    "tcp_user_timeout": "5000"}
                proxy.silent()
                started = time.monotonic()
                with pytest.raises(OperationalError, match="did not answer within 2 s"):
                    conn.execute(text("SELECT 1"))
                waited = time.monotonic() - started
            assert limits.answer_timeout <= waited < limits.answer_timeout + 5
            proxy.resume()
            with engine.connect() as conn:
                assert conn.execute(text("SELECT 2")).scalar() == 2
        finally:
            engine.dispose()


def test_the_writing_engine_keeps_sqlite_temporary_files_in_memory(tmp_path: Path) -> None:
    """Statement journals and materialized VALUES lists of the writer's batches were a
    temporary file each, created and unlinked in /var/tmp per statement; the writing
    engine keeps them in memory. The report engine (deferred) keeps SQLite's default:
    a large GROUP BY spills to disk, not to the daemon's RSS."""
    url = f"sqlite:///{tmp_path}/x.db"
    writing, reading = database.make_engine(url), database.make_engine(url, immediate=False)
    try:
        with writing.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == 2  # MEMORY
        with reading.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == 0  # default
    finally:
        writing.dispose()
        reading.dispose()
