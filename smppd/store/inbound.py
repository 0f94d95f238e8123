"""Inbound (MO) messages: each fragment kept before its deliver_sm is answered,
redeliveries recognised, and the whole message stored, routed, once its parts are in
(the routing and what follows from it: smppd.store.inbound_routing)."""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from . import inbound_routing
from . import schema as t
from .operations import FragmentSeen, InboundComplete
from .sql import chunks, utc

if TYPE_CHECKING:
    from .batch import BatchContext

DEDUPE_WINDOW_SECONDS = 3600.0


def fragments(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    """Result per fragment: its row id, or None for a redelivery already kept (the
    same dedupe key within the window)."""
    for index, row_id in keep(ctx, by_kind[FragmentSeen]).items():
        ctx.results[index] = row_id


def keep(ctx: BatchContext, items: list[tuple[int, FragmentSeen]]) -> dict[int, int | None]:
    f = t.inbound_fragments.c
    since = utc(ctx.now.replace(tzinfo=UTC).timestamp() - DEDUPE_WINDOW_SECONDS)
    seen: set[str] = set()
    kept: dict[int, int | None] = {}
    for chunk in chunks(list({op.dedupe_key for _, op in items})):
        seen.update(ctx.conn.execute(select(f.dedupe_key).where(
            f.dedupe_key.in_(chunk), f.received_at >= since)).scalars())
    for index, op in items:
        if op.dedupe_key in seen:
            kept[index] = None
            continue
        seen.add(op.dedupe_key)
        kept[index] = ctx.conn.execute(t.inbound_fragments.insert().values(
            smsc=op.smsc, source=op.source, destination=op.destination,
            data_coding=op.data_coding, reference=op.reference, total=op.total,
            number=op.number, payload=op.payload, tlvs=op.tlvs, dedupe_key=op.dedupe_key,
            received_at=ctx.now)).inserted_primary_key[0]
    return kept


def complete(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    items = by_kind[InboundComplete]
    carried = keep(ctx, [(index, op.fragment) for index, op in items
                         if op.fragment is not None])
    todo = []
    for index, op in items:
        if op.fragment is not None and carried[index] is None:
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
    for index, op in todo:
        inbound_id = stored[index].inbound_id
        for chunk in chunks(list(op.fragment_ids)):
            ctx.conn.execute(update(t.inbound_fragments).where(f.id.in_(chunk)).values(
                inbound_id=inbound_id))
        for chunk in chunks(list(op.fragment_keys)):
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
