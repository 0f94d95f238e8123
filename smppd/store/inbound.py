"""Inbound (MO) messages: each fragment kept before its deliver_sm is answered,
redeliveries recognised, and the whole message stored, routed, once its parts are in
(the routing and what follows from it: smppd.store.inbound_routing)."""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, Any

from sqlalchemy import DateTime, bindparam, select, update

from . import inbound_routing
from . import schema as t
from .operations import FragmentSeen, InboundComplete
from .sql import BulkInsert, chunks, utc

if TYPE_CHECKING:
    from .context import BatchContext

DEDUPE_WINDOW_SECONDS = 3600.0


REDELIVERED = object()  # an InboundComplete whose completing part was kept before
# Built once, not per batch: SQLAlchemy's building of a select() cost more than the
# lookup itself (smppd.store.inbound_routing says more).
_SEEN = select(t.inbound_fragments.c.dedupe_key).where(
    t.inbound_fragments.c.dedupe_key.in_(bindparam("keys", expanding=True)),
    t.inbound_fragments.c.received_at >= bindparam("since", type_=DateTime))


def fragments(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    """Result per FragmentSeen: True when kept, None for a redelivery already kept
    (the same dedupe key within the window). The parts that complete a message
    (InboundComplete.fragment) are checked here too, in arrival order with the
    others, and written with their message in `complete`."""
    items = sorted([(index, op, False) for index, op in by_kind.get(FragmentSeen, [])]
                   + [(index, op.fragment, True) for index, op in by_kind.get(InboundComplete, [])
                      if op.fragment is not None], key=lambda item: item[0])
    since = utc(ctx.now.replace(tzinfo=UTC).timestamp() - DEDUPE_WINDOW_SECONDS)
    seen: set[str] = set()
    for chunk in chunks(list({op.dedupe_key for _, op, _ in items})):
        seen.update(ctx.conn.execute(_SEEN, {"keys": list(chunk), "since": since}).scalars())
    rows = []
    for index, op, completing in items:
        if op.dedupe_key in seen:
            ctx.results[index] = REDELIVERED if completing else None
            continue
        seen.add(op.dedupe_key)
        if not completing:
            rows.append(_row(ctx, op, None))
            ctx.results[index] = True
    ctx.sql.run(ctx.conn, _INSERT_FRAGMENT, rows)


_INSERT_FRAGMENT = BulkInsert(t.inbound_fragments, (
    "smsc", "source", "destination", "data_coding", "reference", "total", "number", "payload",
    "tlvs", "dedupe_key", "inbound_id", "received_at"))


def _row(ctx: BatchContext, op: FragmentSeen, inbound_id: int | None) -> tuple[Any, ...]:
    return (op.smsc, op.source, op.destination, op.data_coding, op.reference, op.total,
            op.number, op.payload, op.tlvs, op.dedupe_key, inbound_id, ctx.stamp)


def complete(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    todo = []
    for index, op in by_kind[InboundComplete]:
        if ctx.results[index] is REDELIVERED:
            ctx.results[index] = None  # the completing part was a redelivery
        elif op.fragment is None and _already_stored(ctx, op):
            ctx.results[index] = None  # reassembled again after a restart: stored before
        else:
            todo.append((index, op))
    if not todo:
        return
    stored = inbound_routing.store(ctx, todo)
    f = t.inbound_fragments.c
    since = utc(ctx.now.replace(tzinfo=UTC).timestamp() - DEDUPE_WINDOW_SECONDS)
    # The completing part is written already linked; the parts kept before are
    # linked by id (after a restart) or by dedupe key (written in this very batch
    # or an earlier one, ids unknown to the listener). A single-part MO, the usual
    # case, costs no update at all.
    ctx.sql.run(ctx.conn, _INSERT_FRAGMENT, [
        _row(ctx, op.fragment, stored[index].inbound_id) for index, op in todo
        if op.fragment is not None])
    for index, op in todo:
        inbound_id = stored[index].inbound_id
        for chunk in chunks(list(op.fragment_ids)):
            ctx.conn.execute(update(t.inbound_fragments).where(f.id.in_(chunk)).values(
                inbound_id=inbound_id))
        earlier = [key for key in op.fragment_keys
                   if op.fragment is None or key != op.fragment.dedupe_key]
        for chunk in chunks(earlier):
            ctx.conn.execute(update(t.inbound_fragments).where(
                f.dedupe_key.in_(chunk), f.inbound_id.is_(None), f.received_at >= since)
                .values(inbound_id=inbound_id))
        ctx.results[index] = stored[index]


def _already_stored(ctx: BatchContext, op: InboundComplete) -> bool:
    if not op.fragment_ids:
        return False
    f = t.inbound_fragments.c
    linked = ctx.conn.execute(select(f.inbound_id).where(
        f.id.in_(list(op.fragment_ids)))).scalars().all()
    return bool(linked) and all(value is not None for value in linked)
