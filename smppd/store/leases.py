"""Leasing queued messages to one instance of several (issue 14, PostgreSQL only).

A queued message belongs to the dispatcher whose instance id is in
`messages.lease_owner`, as long as that instance is alive (smppd.store.instances).
An instance takes work with one statement: the oldest queued messages that nobody
live holds, locked with FOR UPDATE SKIP LOCKED so that two instances asking at the
same moment get different rows instead of waiting for each other, and marked as
its own in the same transaction. A message accepted through an instance's API is
leased to it in the accept's own insert (it goes straight to that dispatcher's
memory); a job's messages are leased a page at a time.

`lease_owner = me` therefore means "in my memory or in flight": a lease read never
returns what this instance already holds, so no cursor is needed, and what a dead
instance held comes back to whoever reads next. Exactly as after a kill -9 of a
single instance, the parts it had sent without a recorded outcome (at most its
window) are sent again; they were charged at accept and are not charged again.

SQLite has one instance per database file and keeps the cursor reads of
smppd.store.queries.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from ..status import Status
from . import queries
from . import schema as t
from .instances import NOW
from .queries import QueuedMessage

# Free: nobody's, or a dead instance's (its row expired or already removed).
FREE = (f"(m.lease_owner IS NULL OR NOT EXISTS (SELECT 1 FROM instances i "
        f"WHERE i.id = m.lease_owner AND i.lease_until > {NOW}))")
_LEASE = ("UPDATE messages SET lease_owner = :me WHERE id IN ("
          "SELECT m.id FROM messages m WHERE m.status = :queued AND {where} AND " + FREE
          + " ORDER BY m.id LIMIT :limit FOR UPDATE OF m SKIP LOCKED) RETURNING id")
LEASE_SINGLES = text(_LEASE.format(where="m.job_id IS NULL"))
LEASE_JOB = text(_LEASE.format(where="m.job_id = :job"))


def _leased(conn: Connection, statement: Any, params: dict[str, Any],
            limit: int) -> tuple[list[QueuedMessage], str | None]:
    ids = sorted(conn.execute(statement, {**params, "queued": Status.QUEUED.value,
                                          "limit": limit}).scalars())
    if not ids:
        return [], None
    found, last = queries._queued(conn, t.messages.c.id.in_(ids), len(ids))
    # Fewer than asked: nothing free is left now (the caller reads again later, when
    # an instance may have died or released its share).
    return found, (last if len(ids) >= limit else None)


def lease_singles(conn: Connection, me: str,
                  limit: int) -> tuple[list[QueuedMessage], str | None]:
    """Queued API messages nobody live holds, oldest first, now leased to `me`."""
    return _leased(conn, LEASE_SINGLES, {"me": me}, limit)


def lease_job_page(conn: Connection, me: str, job_id: str,
                   limit: int) -> tuple[list[QueuedMessage], str | None]:
    """The next page of a job's queued messages that nobody live holds."""
    return _leased(conn, LEASE_JOB, {"me": me, "job": job_id}, limit)


def release(conn: Connection, me: str, message_ids: list[str]) -> int:
    """Give back messages this instance will not hold in memory (its queue is full):
    any instance, this one included, leases them when it has room."""
    released = 0
    for start in range(0, len(message_ids), 1000):
        released += conn.execute(text(
            "UPDATE messages SET lease_owner = NULL WHERE lease_owner = :me "
            "AND id = ANY(:ids)"), {"me": me, "ids": message_ids[start:start + 1000]}
        ).rowcount or 0
    return released


def not_held_elsewhere(me: str) -> Any:
    """A condition (on `messages`) false for messages another live instance holds: a
    job stopped here must not cancel what is being sent there."""
    return text(f"NOT (messages.lease_owner IS NOT NULL AND messages.lease_owner <> "
                f":lease_me AND EXISTS (SELECT 1 FROM instances i WHERE "
                f"i.id = messages.lease_owner AND i.lease_until > {NOW}))").bindparams(
        lease_me=me)
