"""Idempotency keys in the store: the answer to a POST, kept with what it made.

The point is a kill -9 between the commit and the answer: the client never heard
back and retries, and the retry must find the answer. So the key and its answer
are written by the writer in the very transaction that commits the message
(`Accept`) or the job's last batch (`FinishJob`): both are there, or neither.
batch.py calls `claimed` and `record` from those two places; everything else about
keys is here. A retry is looked up on the read pool (`lookup`), and the same check
runs again inside the writer's transaction (`claimed`), for the retry that raced
the first one on another instance sharing the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import Connection, delete, select, tuple_

from . import schema as t

KEEP_SECONDS = 24 * 3600.0
CHUNK = 500


@dataclass(frozen=True, slots=True)
class Claim:
    """What a request with a key asks the writer to keep with its work: the key,
    a fingerprint of the request, and the answer it is given."""

    account_id: int
    key: str
    fingerprint: str
    status: int = 201
    response: str = ""


@dataclass(frozen=True, slots=True)
class Stored:
    """A key already kept: the request it came with, and the answer it got."""

    fingerprint: str
    status: int
    response: str


@dataclass(frozen=True, slots=True)
class PurgeKeys:
    """Forget keys older than `max_age` seconds (a writer operation). Result: rows."""

    max_age: float = KEEP_SECONDS
    retry: ClassVar[bool] = False


def _utc(moment: float | None = None) -> datetime:
    now = datetime.now(UTC) if moment is None else datetime.fromtimestamp(moment, UTC)
    return now.replace(tzinfo=None)


def _oldest_kept(max_age: float = KEEP_SECONDS) -> datetime:
    return _utc(datetime.now(UTC).timestamp() - max_age)


def lookup(conn: Connection, account_id: int, key: str) -> Stored | None:
    """On the read pool: the answer kept for this account's key, if still fresh."""
    k = t.idempotency_keys.c
    row = conn.execute(select(k.fingerprint, k.status, k.response).where(
        k.account_id == account_id, k.idempotency_key == key,
        k.created_at >= _oldest_kept())).first()
    return Stored(*row) if row is not None else None


def claimed(conn: Connection, items: Sequence[tuple[int, Any]], results: list[Any],
            ) -> list[tuple[int, Any]]:
    """In the writer's transaction, before the work: operations whose key is kept
    already (or taken earlier in this batch) get that answer as their result and
    are left out of the work; the rest are returned. A stale row (past 24 h but
    not purged yet) is removed so that its key can be used again."""
    keyed = [(index, op) for index, op in items if getattr(op, "idempotency", None)]
    if not keyed:
        return list(items)
    k = t.idempotency_keys.c
    wanted = list({(op.idempotency.account_id, op.idempotency.key) for _, op in keyed})
    found: dict[tuple[int, str], tuple[Stored, datetime]] = {}
    for start in range(0, len(wanted), CHUNK):
        for account_id, key, fingerprint, status, response, created in conn.execute(select(
                k.account_id, k.idempotency_key, k.fingerprint, k.status, k.response,
                k.created_at).where(tuple_(k.account_id, k.idempotency_key).in_(
                    wanted[start:start + CHUNK]))):
            found[(account_id, key)] = (Stored(fingerprint, status, response), created)
    oldest = _oldest_kept()
    stale = [slot for slot, (_, created) in found.items() if created < oldest]
    for account_id, key in stale:
        conn.execute(delete(t.idempotency_keys).where(
            k.account_id == account_id, k.idempotency_key == key))
        del found[(account_id, key)]
    replays: dict[int, Stored] = {}
    for index, op in keyed:
        claim = op.idempotency
        slot = (claim.account_id, claim.key)
        if slot in found:
            replays[index] = found[slot][0]
        else:  # the first in this batch takes the key; a second gets its answer
            found[slot] = (Stored(claim.fingerprint, claim.status, claim.response), oldest)
    for index, stored in replays.items():
        results[index] = stored
    return [(index, op) for index, op in items if index not in replays]


def record(conn: Connection, claims: Sequence[Claim]) -> None:
    """In the writer's transaction, with the work: keep each key and its answer."""
    if not claims:
        return
    now = _utc()
    conn.execute(t.idempotency_keys.insert(), [
        {"account_id": c.account_id, "idempotency_key": c.key, "fingerprint": c.fingerprint,
         "status": c.status, "response": c.response, "created_at": now} for c in claims])


def purge(conn: Connection, op: PurgeKeys) -> int:
    result = conn.execute(delete(t.idempotency_keys).where(
        t.idempotency_keys.c.created_at < _oldest_kept(op.max_age)))
    return result.rowcount or 0


def purge_phase(ctx: Any, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    """The batch phase for PurgeKeys (smppd.store.batch)."""
    for index, op in by_kind[PurgeKeys]:
        ctx.results[index] = purge(ctx.conn, op)
