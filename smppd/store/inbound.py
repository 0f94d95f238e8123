"""Inbound (MO) messages: each fragment kept before its deliver_sm is answered,
redeliveries recognised, and the whole message stored once its parts are in."""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from . import outbox
from . import schema as t
from .operations import FragmentSeen, InboundComplete
from .sql import chunks, utc

if TYPE_CHECKING:
    from .batch import BatchContext

DEDUPE_WINDOW_SECONDS = 3600.0


def fragments(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    """Result per fragment: its row id, or None for a redelivery already kept (the
    same dedupe key within the window)."""
    items = by_kind[FragmentSeen]
    f = t.inbound_fragments.c
    since = utc(ctx.now.replace(tzinfo=UTC).timestamp() - DEDUPE_WINDOW_SECONDS)
    seen: set[str] = set()
    for chunk in chunks(list({op.dedupe_key for _, op in items})):
        seen.update(ctx.conn.execute(select(f.dedupe_key).where(
            f.dedupe_key.in_(chunk), f.received_at >= since)).scalars())
    for index, op in items:
        if op.dedupe_key in seen:
            ctx.results[index] = None
            continue
        seen.add(op.dedupe_key)
        ctx.results[index] = ctx.conn.execute(t.inbound_fragments.insert().values(
            smsc=op.smsc, source=op.source, destination=op.destination,
            data_coding=op.data_coding, reference=op.reference, total=op.total,
            number=op.number, payload=op.payload, tlvs=op.tlvs, dedupe_key=op.dedupe_key,
            received_at=ctx.now)).inserted_primary_key[0]


def complete(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    for index, op in by_kind[InboundComplete]:
        inbound_id = ctx.conn.execute(t.inbound_messages.insert().values(
            smsc=op.smsc, source=op.source, destination=op.destination,
            data_coding=op.data_coding, text=op.text, payload=op.payload, parts=op.parts,
            tlvs=op.tlvs, received_at=ctx.now)).inserted_primary_key[0]
        for chunk in chunks(list(op.fragment_ids)):
            ctx.conn.execute(update(t.inbound_fragments).where(
                t.inbound_fragments.c.id.in_(chunk)).values(inbound_id=inbound_id))
        if op.account_id is not None:  # issue 12: the account's MO callbacks
            outbox.inbound_received(ctx, op.account_id, inbound_id, {
                "from": op.source, "to": op.destination, "text": op.text,
                "parts": op.parts, "received_at": ctx.now.isoformat() + "Z"})
        ctx.results[index] = inbound_id
