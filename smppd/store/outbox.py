"""The callback outbox in the store (issue 12): events are written in the transaction
of the change that causes them, so a committed status change always has its event
and a rolled-back one never does; the drainer (smppd.callbacks.drainer) reads them
and records each attempt through the writer.

A batch's status changes become one INSERT ... SELECT: the VALUES list of changes is
joined with the messages and the accounts' endpoints, so the database decides which
change goes where (the endpoint the message named, else the account's default; every
change or only final ones) without a read per message.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, bindparam, select, update
from sqlalchemy.dialects import postgresql

from .. import status as vocabulary
from ..ids import new_id
from . import schema as t
from .callback_operations import (
    CreateEndpoint,
    DeleteEndpoint,
    DeliveryResults,
    ExpireTarget,
    PurgeEvents,
    ResendEvent,
    RotateSecret,
    TooManyEndpoints,
)
from .sql import MAX_PARAMETERS, BulkInsert, BulkUpdate, chunks, utc

if TYPE_CHECKING:
    from .context import BatchContext

EVENT_STATUS = "message.status"
EVENT_FINAL = "message.final"
EVENT_INBOUND = "inbound.received"
PENDING, DELIVERED, FAILED, CANCELLED = "pending", "delivered", "failed", "cancelled"
Items = dict[type, list[tuple[int, Any]]]


@dataclass(frozen=True)
class ValuesSelect:
    """INSERT ... SELECT over a VALUES list of parameters (named column1..N, as
    SQLite names them), with a cast per value on PostgreSQL where a VALUES list has
    no types of its own (sql.py explains the same for updates)."""

    template: str  # {values} and {alias} are filled in
    types: tuple[Any, ...]  # SQLAlchemy types of the VALUES columns, for the casts

    def render(self, rows: int, marker: str, postgres: bool) -> str:
        if postgres:
            kinds = [kind.compile(dialect=postgresql.dialect()) for kind in self.types]
            group = "(" + ", ".join(f"CAST({marker} AS {kind})" for kind in kinds) + ")"
            alias = "v(" + ", ".join(f"column{i}" for i in range(1, len(kinds) + 1)) + ")"
        else:
            group = "(" + ", ".join([marker] * len(self.types)) + ")"
            alias = "v"
        return self.template.format(values=", ".join([group] * rows), alias=alias)

    def run(self, ctx: BatchContext, rows: Sequence[tuple[Any, ...]]) -> None:
        width = len(self.types)
        per_statement = max(1, MAX_PARAMETERS // width)
        for start in range(0, len(rows), per_statement):
            chunk = rows[start:start + per_statement]
            ctx.conn.exec_driver_sql(self.render(len(chunk), ctx.sql.marker, ctx.sql.postgres),
                                     tuple(value for row in chunk for value in row))


_E, _M = t.callback_events.c, t.messages.c
# The event id is "<message id>-<status>": a message reaches each status at most once
# (states never go backwards) and goes to one endpoint, so the id is unique, and the
# same change can never make two events (ON CONFLICT ... DO NOTHING is a guard only;
# SQLite needs the WHERE to tell the upsert's ON from a join's). The last column is
# the order of the changes, so that `submitted` is queued before `delivered`.
MESSAGE_EVENTS = ValuesSelect(
    "INSERT INTO callback_events (id, account_id, target, type, message_id, status, "
    "error_code, at, state, attempts, next_at) "
    "SELECT v.column1, m.account_id, e.id, v.column5, v.column2, v.column3, v.column4, "
    f"v.column6, '{PENDING}', 0, v.column6 "
    "FROM (VALUES {values}) AS {alias} "
    "JOIN messages m ON m.id = v.column2 "
    "JOIN callback_endpoints e ON e.account_id = m.account_id AND e.deleted_at IS NULL "
    "AND (e.id = m.callback_id OR (m.callback_id IS NULL AND e.is_default)) "
    f"AND (e.on_status OR (v.column5 = '{EVENT_FINAL}' AND e.on_final)) "
    "WHERE 1 = 1 ORDER BY v.column7 ON CONFLICT (id) DO NOTHING",
    (_E.id.type, _E.message_id.type, _E.status.type, _E.error_code.type, _E.type.type,
     _E.at.type, _E.attempts.type))
INSERT_EVENT = BulkInsert(t.callback_events, (
    "id", "account_id", "target", "url", "type", "data", "at", "next_at"),
    {"state": f"'{PENDING}'", "attempts": "0"})
# An attempt's result never brings back an event cancelled (its endpoint deleted) or
# failed (expired) while the attempt was under way.
EVENT_RESULT = BulkUpdate(t.callback_events, ("seq",), {
    "state": f"CASE WHEN callback_events.state = '{PENDING}' THEN {{}} "
             "ELSE callback_events.state END",
    "attempts": "", "next_at": "", "last_error": "", "last_status": "", "finished_at": ""})


def event_type(status: str) -> str:
    return EVENT_FINAL if status in vocabulary.FINAL else EVENT_STATUS


def message_events(ctx: BatchContext,
                   changes: Iterable[tuple[str, int, str, str | None]]) -> None:
    """Events for message status changes made in this transaction: (message id,
    account id, status, error). One statement for the whole batch, and none when no
    account among them has an endpoint for message events."""
    wanted = ctx.memory.outbox.message_accounts(ctx.conn)
    if not wanted:
        return
    stamp = ctx.stamp
    rows = [(f"{message_id}-{status}", message_id, str(status), error, event_type(status),
             stamp, order)
            for order, (message_id, account_id, status, error) in enumerate(changes)
            if account_id in wanted]
    if rows:
        MESSAGE_EVENTS.run(ctx, rows)


def url_target(url: str) -> str:
    """The target key of a URL that is not a registered endpoint."""
    return "u" + hashlib.sha256(url.encode()).hexdigest()[:31]


def enqueue(ctx: BatchContext, account_id: int, event_type: str, data: dict[str, Any],
            endpoint_id: str | None = None, url: str | None = None) -> list[str]:
    """Queue an event from any phase, in its transaction: to one endpoint of the
    account (`endpoint_id`), to any URL signed with the account's key (`url`, e.g.
    an MO forward), or else to every endpoint of the account subscribed to this kind
    of event. Returns the event ids (none when nothing wants it)."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    if url is not None:
        targets = [(url_target(url), url)]
    else:
        e = t.callback_endpoints.c
        query = select(e.id).where(e.account_id == account_id, e.deleted_at.is_(None))
        if endpoint_id is not None:
            query = query.where(e.id == endpoint_id)
        elif event_type == EVENT_INBOUND:
            query = query.where(e.on_inbound)
        elif event_type == EVENT_FINAL:
            query = query.where(e.on_status | e.on_final)
        elif event_type == EVENT_STATUS:
            query = query.where(e.on_status)
        else:
            return []  # a custom event goes only where it is sent explicitly
        targets = [(target, None) for target in ctx.conn.execute(query).scalars()]
    rows = [(new_id(), account_id, target, target_url, event_type, body, ctx.stamp, ctx.stamp)
            for target, target_url in targets]
    ctx.sql.run(ctx.conn, INSERT_EVENT, rows)
    return [row[0] for row in rows]


_INBOUND_ENDPOINTS = select(t.callback_endpoints.c.account_id, t.callback_endpoints.c.id).where(
    t.callback_endpoints.c.account_id.in_(bindparam("accounts", expanding=True)),
    t.callback_endpoints.c.deleted_at.is_(None), t.callback_endpoints.c.on_inbound).order_by(
    t.callback_endpoints.c.account_id, t.callback_endpoints.c.id)  # built once, not per batch


def inbound_endpoints(ctx: BatchContext, account_ids: Iterable[int]) -> dict[int, list[str]]:
    """The endpoints wanting MO messages of each of these accounts, read once for a
    whole batch of MO (a query per MO was half of the writer's time in a vote flood).
    Read in the batch's own transaction, so an endpoint made or deleted in an earlier
    batch is seen exactly: no cache to go stale."""
    wanted = sorted(set(account_ids))
    found: dict[int, list[str]] = {}
    if not wanted:
        return found
    for chunk in chunks(wanted):
        for account_id, endpoint_id in ctx.conn.execute(_INBOUND_ENDPOINTS,
                                                        {"accounts": list(chunk)}):
            found.setdefault(account_id, []).append(endpoint_id)
    return found


def enqueue_many(ctx: BatchContext, events: Iterable[tuple[int, str, dict[str, Any],
                                                            Sequence[str], str | None]]
                 ) -> None:
    """Queue many events at once, in one multi-row INSERT: (account id, type, data,
    endpoint ids, URL or None). Each event goes to each of its endpoints, and to its
    URL signed with the account's key, as `enqueue` would send it."""
    rows = []
    stamp = ctx.stamp
    for account_id, kind, data, endpoint_ids, url in events:
        if not endpoint_ids and url is None:
            continue
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
        rows.extend((new_id(), account_id, target, None, kind, body, stamp, stamp)
                    for target in endpoint_ids)
        if url is not None:
            rows.append((new_id(), account_id, url_target(url), url, kind, body, stamp, stamp))
    ctx.sql.run(ctx.conn, INSERT_EVENT, rows)


# Endpoints ---------------------------------------------------------------------------

def create_endpoints(ctx: BatchContext, by_kind: Items) -> None:
    for index, op in by_kind[CreateEndpoint]:
        ctx.results[index] = _create(ctx, op)
    ctx.memory.outbox.invalidate()


def _create(ctx: BatchContext, op: CreateEndpoint) -> Any:
    e = t.callback_endpoints.c
    conn = ctx.conn
    live = conn.execute(select(e.id, e.is_default).where(
        e.account_id == op.account_id, e.deleted_at.is_(None))).all()
    if len(live) >= op.max_endpoints:
        return TooManyEndpoints(op.max_endpoints)
    wants_messages = op.on_status or op.on_final
    default = op.default
    if default is None:
        default = wants_messages and not any(is_default for _, is_default in live)
    if default:
        conn.execute(update(t.callback_endpoints).where(
            e.account_id == op.account_id, e.is_default).values(is_default=False))
    created = utc(op.created_at)
    conn.execute(t.callback_endpoints.insert().values(
        id=op.endpoint_id, account_id=op.account_id, url=op.url, on_status=op.on_status,
        on_final=op.on_final, on_inbound=op.on_inbound, is_default=bool(default),
        secret=op.secret, created_at=created))
    return {"id": op.endpoint_id, "url": op.url,
            "events": events_of(op.on_status, op.on_final, op.on_inbound),
            "default": bool(default), "created_at": created}


def events_of(on_status: bool, on_final: bool, on_inbound: bool) -> list[str]:
    return [name for name, wanted in (("status", on_status), ("final", on_final),
                                      ("inbound", on_inbound)) if wanted]


def delete_endpoints(ctx: BatchContext, by_kind: Items) -> None:
    e, ev = t.callback_endpoints.c, t.callback_events.c
    for index, op in by_kind[DeleteEndpoint]:
        result = ctx.conn.execute(update(t.callback_endpoints).where(
            e.id == op.endpoint_id, e.account_id == op.account_id,
            e.deleted_at.is_(None)).values(deleted_at=ctx.now, is_default=False))
        found = bool(result.rowcount)
        if found:
            ctx.conn.execute(update(t.callback_events).where(
                ev.target == op.endpoint_id, ev.state == PENDING).values(
                state=CANCELLED, last_error="the endpoint was deleted", finished_at=ctx.now))
        ctx.results[index] = found
    ctx.memory.outbox.invalidate()


def rotate_secrets(ctx: BatchContext, by_kind: Items) -> None:
    s = t.webhook_secrets.c
    for index, op in by_kind[RotateSecret]:
        changed = ctx.conn.execute(update(t.webhook_secrets).where(
            s.account_id == op.account_id).values(secret=op.secret, created_at=ctx.now))
        if not changed.rowcount:
            ctx.conn.execute(t.webhook_secrets.insert().values(
                account_id=op.account_id, secret=op.secret, created_at=ctx.now))
        ctx.results[index] = op.secret


def ensure_secrets(conn: Connection, account_ids: Iterable[int], make: Any) -> None:
    """Give every account a signing key for URL forwards (at start, for new accounts);
    `make()` makes one. Existing keys are kept."""
    s = t.webhook_secrets.c
    have = set(conn.execute(select(s.account_id)).scalars())
    for account_id in sorted(set(account_ids) - have):
        conn.execute(t.webhook_secrets.insert().values(account_id=account_id, secret=make(),
                                                       created_at=utc()))


# Attempts ----------------------------------------------------------------------------

def delivery_results(ctx: BatchContext, by_kind: Items) -> None:
    ts = ctx.sql.ts
    rows = []
    for index, op in by_kind[DeliveryResults]:
        rows.extend((seq, state, attempts, ts(utc(next_at)), error, status,
                     None if finished is None else ts(utc(finished)))
                    for seq, state, attempts, next_at, error, status, finished in op.rows)
        ctx.results[index] = len(op.rows) + sum(len(group[3]) for group in op.delivered)
    ctx.sql.run(ctx.conn, EVENT_RESULT, rows)
    # After the rows: should a batch hold a retry and then the success of one event,
    # the success is what stays.
    for _, op in by_kind[DeliveryResults]:
        for finished, attempts, status, seqs in op.delivered:
            at = ts(utc(finished))
            for chunk in chunks(list(seqs), DELIVERED_CHUNK):
                ctx.conn.exec_driver_sql(_delivered_sql(len(chunk), ctx.sql.marker),
                                         (attempts, at, status, at, *chunk))


DELIVERED_CHUNK = 1000  # seqs per UPDATE: a few statement shapes, each cached once
# An attempt's success never brings back an event cancelled or failed meanwhile (as
# EVENT_RESULT). seq is the primary key: each seq of the list is one index lookup.
_DELIVERED = (f"UPDATE callback_events SET state = CASE WHEN state = '{PENDING}' THEN "
              f"'{DELIVERED}' ELSE state END, attempts = {{m}}, next_at = {{m}}, "
              "last_error = NULL, last_status = {m}, finished_at = {m} WHERE seq IN ({seqs})")


@functools.lru_cache(maxsize=64)
def _delivered_sql(count: int, marker: str) -> str:
    return _DELIVERED.format(m=marker, seqs=", ".join([marker] * count))


def expire_targets(ctx: BatchContext, by_kind: Items) -> None:
    ev = t.callback_events.c
    for index, op in by_kind[ExpireTarget]:
        result = ctx.conn.execute(update(t.callback_events).where(and_(
            ev.target == op.target, ev.state == PENDING, ev.at < utc(op.before))).values(
            state=FAILED, last_error=op.error[:256], finished_at=ctx.now))
        ctx.results[index] = result.rowcount or 0


def resend_events(ctx: BatchContext, by_kind: Items) -> None:
    ev = t.callback_events.c
    for index, op in by_kind[ResendEvent]:
        conditions = [ev.id == op.event_id, ev.state == FAILED]
        if op.account_id is not None:
            conditions.append(ev.account_id == op.account_id)
        result = ctx.conn.execute(update(t.callback_events).where(and_(*conditions)).values(
            state=PENDING, next_at=utc(op.at), finished_at=None))
        ctx.results[index] = bool(result.rowcount)


def purge_events(ctx: BatchContext, by_kind: Items) -> None:
    ev = t.callback_events.c
    for index, op in by_kind[PurgeEvents]:
        before = utc(time.time() - op.max_age)
        result = ctx.conn.execute(t.callback_events.delete().where(
            ev.state != PENDING, ev.finished_at < before))
        ctx.results[index] = result.rowcount or 0


PHASES = (
    ((CreateEndpoint,), create_endpoints),
    ((DeleteEndpoint,), delete_endpoints),
    ((RotateSecret,), rotate_secrets),
    ((DeliveryResults,), delivery_results),
    ((ExpireTarget,), expire_targets),
    ((ResendEvent,), resend_events),
    ((PurgeEvents,), purge_events),
)
