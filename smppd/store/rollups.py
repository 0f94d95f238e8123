"""Message rollups: per account, per 15-minute UTC slot, per status and error, the
count, parts, points and refunds of the messages created in that slot.

Why: a daily report over ten million messages must not scan them. The writer is the
only writer of message state, so it can keep these sums exact for the price of one
statement per batch: `RollupDeltas` gathers what the batch changes (a message
accepted, moved from one status to another, refunded, deleted) in memory, and
`write` turns it into one multi-row upsert in the same transaction. A failed batch
rolls the upsert back with everything else, so the rollups never disagree with the
messages they summarise; `recount` computes them from scratch to prove it.

Why 15 minutes and not days: a day depends on the account's time zone, which can be
changed at any time, and some zones sit on half or quarter hours (+5:30, +5:45).
Every zone in use is a whole number of quarter hours from UTC, so summing quarter
hours cuts any account's days exactly; hourly slots would not for India or Nepal.
A month of one account is at most ~3,000 slots per status: still tiny to sum.

A message's time here is the time in its id (smppd.ids): the same time the history
filters `since`/`until` use, so the daily report and the detailed rows agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, text

from .sql import execute

SLOT_SECONDS = 900
_SLOT_MS = SLOT_SECONDS * 1000
_COLUMNS = "account_id, bucket, status, error, messages, parts, points, refunded"
_ROWS_PER_STATEMENT = 2000  # 8 parameters a row: well under SQLite's and psycopg's limits

Key = tuple[int, int, str, str]  # account, slot start (Unix seconds), status, error


def slot_of(message_id: str) -> int:
    """The Unix time of the start of the 15-minute slot the message was created in."""
    return int(message_id[:12], 16) // _SLOT_MS * SLOT_SECONDS


def slot_of_time(moment: float) -> int:
    return int(moment // SLOT_SECONDS) * SLOT_SECONDS


class RollupDeltas:
    """What one batch changes in the rollups, summed per key before it is written."""

    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows: dict[Key, list[int]] = {}

    def __bool__(self) -> bool:
        return bool(self.rows)

    def add(self, account_id: int, message_id: str, status: str, error: str | None,
            parts: int, points: int, refunded: int, sign: int = 1) -> None:
        """One message counted in (sign 1) or out (sign -1) of its slot's row."""
        self.add_sums((account_id, slot_of(message_id), status, error or ""),
                      sign, sign * parts, sign * points, sign * refunded)

    def add_sums(self, key: Key, messages: int, parts: int, points: int,
                 refunded: int) -> None:
        row = self.rows.get(key)
        if row is None:
            self.rows[key] = [messages, parts, points, refunded]
        else:
            row[0] += messages
            row[1] += parts
            row[2] += points
            row[3] += refunded

    def move(self, account_id: int, message_id: str, parts: int, points: int,
             before: tuple[str, str | None, int], after: tuple[str, str | None, int]) -> None:
        """A message went from (status, error, refunded) `before` to `after`."""
        if before == after:
            return
        self.add(account_id, message_id, *before[:2], parts, points, before[2], -1)
        self.add(account_id, message_id, *after[:2], parts, points, after[2])

    def write(self, conn: Connection) -> None:
        """One upsert for the whole batch (rows in key order, so two daemons sharing a
        PostgreSQL database lock the same rows in the same order: no deadlock)."""
        rows = [key + tuple(values) for key, values in sorted(self.rows.items())
                if any(values)]
        self.rows = {}
        if rows:
            upsert(conn, rows)


def upsert(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    marker = "%s" if conn.dialect.paramstyle in ("format", "pyformat") else "?"
    group = "(" + ", ".join([marker] * 8) + ")"
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start:start + _ROWS_PER_STATEMENT]
        execute(
            conn, f"INSERT INTO message_rollups ({_COLUMNS}) VALUES "
            + ", ".join([group] * len(chunk))
            + " ON CONFLICT (account_id, bucket, status, error) DO UPDATE SET "
              "messages = message_rollups.messages + excluded.messages, "
              "parts = message_rollups.parts + excluded.parts, "
              "points = message_rollups.points + excluded.points, "
              "refunded = message_rollups.refunded + excluded.refunded",
            tuple(value for row in chunk for value in row))


# Recount and reconcile -------------------------------------------------------------------

def _slots(conn: Connection) -> Iterator[tuple[str, str]]:
    """(lowest id, highest id) bounds of every 15-minute slot that has messages, found
    by jumping from one used slot to the next along the primary key."""
    low = conn.execute(text("SELECT MIN(id) FROM messages")).scalar()
    while low is not None:
        start = slot_of(low)
        end = f"{(start + SLOT_SECONDS) * 1000:012x}" + "0" * 20
        yield f"{start * 1000:012x}" + "0" * 20, end
        low = conn.execute(text("SELECT MIN(id) FROM messages WHERE id >= :end"),
                           {"end": end}).scalar()


def recount(conn: Connection) -> dict[Key, tuple[int, int, int, int]]:
    """The rollups computed from the messages table alone (SQL counts, one slot at a
    time along the primary key, so memory stays small and each query is a range)."""
    found: dict[Key, tuple[int, int, int, int]] = {}
    query = text("SELECT account_id, status, COALESCE(error_code, ''), COUNT(*), "
                 "SUM(parts), SUM(points), SUM(refunded) FROM messages "
                 "WHERE id >= :low AND id < :high GROUP BY account_id, status, error_code")
    for low, high in _slots(conn):
        bucket = slot_of(low)
        for account, status, error, count, parts, points, refunded in conn.execute(
                query, {"low": low, "high": high}):
            key = (account, bucket, status, error)
            previous = found.get(key, (0, 0, 0, 0))
            found[key] = tuple(a + int(b) for a, b in zip(  # type: ignore[assignment]
                previous, (count, parts, points, refunded), strict=True))
    return found


def stored(conn: Connection) -> dict[Key, tuple[int, int, int, int]]:
    """The rollups as kept (rows summed to zero left out: they count nothing)."""
    return {(row[0], row[1], row[2], row[3]): (row[4], row[5], row[6], row[7])
            for row in conn.execute(text(f"SELECT {_COLUMNS} FROM message_rollups"))
            if any(row[4:])}


def differences(conn: Connection) -> list[tuple[Key, Any, Any]]:
    """Keys where the kept rollups and a recount disagree: (key, kept, recounted)."""
    kept, counted = stored(conn), recount(conn)
    return [(key, kept.get(key), counted.get(key)) for key in sorted(set(kept) | set(counted))
            if kept.get(key) != counted.get(key)]


def rebuild(conn: Connection) -> int:
    """Replace the rollups with a recount (a migration, or an operator's repair).
    Returns the number of rows written."""
    rows = [key + values for key, values in recount(conn).items()]
    conn.execute(text("DELETE FROM message_rollups"))
    upsert(conn, rows)
    return len(rows)
