"""Instances sharing one PostgreSQL database (issue 14): who is alive, by heartbeat.

Each daemon registers a row with a fresh id at start and keeps its `lease_until`
ahead with a heartbeat. Everything an instance holds (queued messages it leased,
duties it runs) is its own only while that row's lease lies in the future, so a
kill -9 needs no clean-up: the row expires and the work goes back to the queue.

Lease times are the database's clock (`timezone('utc', now())`), never an
instance's: machines whose clocks disagree still agree on who is alive. An instance
whose heartbeat finds its own lease already expired has been presumed dead (a long
pause, a database outage longer than the lease): what it held may be another's by
now, so the caller drops its queues and registers again under a new id (fencing).

Heartbeats are numbered (`beat`) in one order for all instances: each takes a
transaction-scoped advisory lock, so one runs at a time and sees every earlier
one committed. A heartbeat numbered after another instance's therefore read that
instance's row as it was then: the basis of smppd.daemon.cluster's join rule.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass

from sqlalchemy import Connection, text

from ..ids import new_id

NOW = "timezone('utc', now())"
# PostgreSQL advisory lock keys ("smppd" and a number), in one place so none is reused.
MIGRATION_LOCK = 0x736D7070640001  # pg_advisory_lock's: migrations (migrations/env.py)
BEATS_LOCK = 0x736D7070640002  # pg_advisory_xact_lock's: heartbeats, one at a time
# Dead instances' rows are kept a day for the operator to see, then removed.
FORGET_AFTER = "interval '1 day'"


def new_instance_id() -> str:
    """Readable in `SELECT * FROM instances` and in logs: host, pid, a unique tail."""
    host = socket.gethostname().split(".")[0][:24]
    return f"{host}-{os.getpid()}-{new_id()[-8:]}"


@dataclass(frozen=True, slots=True)
class Live:
    """One live instance as the others see it."""

    id: str
    smscs: tuple[str, ...]
    beat: int = 0  # its last heartbeat's number (0: none since it registered)


def register(conn: Connection, instance_id: str, lease: float) -> None:
    conn.execute(text(
        f"INSERT INTO instances (id, host, pid, started_at, heartbeat_at, lease_until, smscs) "
        f"VALUES (:id, :host, :pid, {NOW}, {NOW}, {NOW} + make_interval(secs => :lease), "
        f"'[]')"), {"id": instance_id, "host": socket.gethostname()[:255],
                    "pid": os.getpid(), "lease": lease})
    conn.execute(text(f"DELETE FROM instances WHERE lease_until < {NOW} - {FORGET_AFTER}"))


def heartbeat(conn: Connection, instance_id: str, lease: float,
              smscs: list[str], wait: float = 1.0) -> int | None:
    """Extend this instance's lease and say which SMSCs it is bound to; the
    heartbeat's number, or None when the lease had expired already (fenced). The
    lock is held to the end of the caller's transaction: read `live` after this, in
    the same transaction, and keep what follows short.

    One instance must not stop the others' heartbeats: its wait for the lock ends
    after `wait` seconds (that heartbeat fails, the next one tries again), and should
    it stall while holding the lock (SIGSTOP, a paused VM, a network gone quiet), the
    server ends its transaction after `wait` seconds idle, which lets the lock go."""
    milliseconds = max(100, int(wait * 1000))
    conn.execute(text(f"SET LOCAL lock_timeout = {milliseconds}"))
    conn.execute(text(f"SET LOCAL idle_in_transaction_session_timeout = {milliseconds}"))
    conn.execute(text(f"SELECT pg_advisory_xact_lock({BEATS_LOCK})"))
    return conn.execute(text(
        f"UPDATE instances SET heartbeat_at = {NOW}, "
        f"lease_until = {NOW} + make_interval(secs => :lease), smscs = :smscs, "
        "beat = (SELECT coalesce(max(beat), 0) + 1 FROM instances) "
        f"WHERE id = :id AND lease_until > {NOW} RETURNING beat"),
        {"id": instance_id, "lease": lease, "smscs": json.dumps(sorted(smscs))}).scalar()


def live(conn: Connection) -> list[Live]:
    rows = conn.execute(text(f"SELECT id, smscs, beat FROM instances "
                             f"WHERE lease_until > {NOW} ORDER BY id")).all()
    return [Live(row.id, tuple(json.loads(row.smscs or "[]")), row.beat or 0)
            for row in rows]


def retire(conn: Connection, instance_id: str) -> int:
    """A clean stop: its queued messages go back to the queue at once (not after the
    lease) and its row goes. Returns the messages released."""
    released = conn.execute(text(
        "UPDATE messages SET lease_owner = NULL WHERE lease_owner = :id "
        "AND status = 'queued'"), {"id": instance_id}).rowcount or 0
    conn.execute(text("UPDATE cluster_duties SET owner = NULL, lease_until = NULL "
                      "WHERE owner = :id"), {"id": instance_id})
    conn.execute(text("DELETE FROM instances WHERE id = :id"), {"id": instance_id})
    return released


def leased_count(conn: Connection, instance_id: str) -> int:
    """Queued messages this instance holds (a gauge for /metrics)."""
    return conn.execute(text(
        "SELECT count(*) FROM messages WHERE status = 'queued' AND lease_owner = :id"),
        {"id": instance_id}).scalar() or 0


def claim_duty(conn: Connection, name: str, instance_id: str, lease: float) -> bool:
    """Take or keep duty `name` for `lease` seconds; False while another live
    instance holds it."""
    conn.execute(text("INSERT INTO cluster_duties (name) VALUES (:name) "
                      "ON CONFLICT (name) DO NOTHING"), {"name": name})
    result = conn.execute(text(
        f"UPDATE cluster_duties SET owner = :id, "
        f"lease_until = {NOW} + make_interval(secs => :lease) WHERE name = :name AND "
        f"(owner = :id OR owner IS NULL OR lease_until IS NULL OR lease_until < {NOW})"),
        {"name": name, "id": instance_id, "lease": lease})
    return result.rowcount == 1
