"""Receipt matching: which parts a receipt's SMSC id names, and the receipts that
came before the id they name was stored (checklist 1), kept until it is."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, tuple_

from . import schema as t
from .operations import PurgePending, ReceiptSeen
from .sql import BulkInsert, chunks, utc

if TYPE_CHECKING:
    from .batch import BatchContext

INSERT_PENDING = BulkInsert(t.pending_receipts, (
    "smsc", "smsc_key", "status", "error_code", "received_at"))
Target = tuple[str, int, str, str | None]  # message id, part, status, error


def match(ctx: BatchContext, seen: list[ReceiptSeen]) -> list[Target]:
    """The parts these receipts settle; receipts naming no known part wait in
    pending_receipts."""
    cache = ctx.cache
    unknown = list({(op.smsc, op.smsc_key) for op in seen} - cache.keys.keys())
    if unknown:
        cache.load_keys(ctx.conn, unknown)
    targets: list[Target] = []
    waiting = []
    for op in seen:
        parts = cache.parts_for((op.smsc, op.smsc_key))
        if not parts:
            waiting.append((op.smsc, op.smsc_key, op.status, op.error_code, ctx.stamp))
            continue
        targets.extend((message_id, part_no, op.status, op.error_code)
                       for message_id, part_no in parts)
    if waiting:
        ctx.sql.run(ctx.conn, INSERT_PENDING, waiting)
        ctx.memory.pending_receipts += len(waiting)
    return targets


def take_pending(ctx: BatchContext, keys: set[tuple[str, str]]) -> list[ReceiptSeen]:
    """Receipts that waited for one of these ids, removed from the waiting room."""
    p = t.pending_receipts.c
    waiting: list[ReceiptSeen] = []
    ids: list[int] = []
    for chunk in chunks(list(keys)):
        for row_id, smsc, key, status, error in ctx.conn.execute(select(
                p.id, p.smsc, p.smsc_key, p.status, p.error_code).where(
                tuple_(p.smsc, p.smsc_key).in_(chunk)).order_by(p.id)):
            ids.append(row_id)
            waiting.append(ReceiptSeen(smsc, key, status, error))
    for chunk in chunks(ids):
        ctx.conn.execute(t.pending_receipts.delete().where(p.id.in_(chunk)))
    ctx.memory.pending_receipts = max(0, ctx.memory.pending_receipts - len(ids))
    return waiting


def purge(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    for index, op in by_kind[PurgePending]:
        since = utc(datetime.now(UTC).timestamp() - op.max_age)
        result = ctx.conn.execute(t.pending_receipts.delete().where(
            t.pending_receipts.c.received_at < since))
        purged = result.rowcount or 0
        ctx.memory.pending_receipts = max(0, ctx.memory.pending_receipts - purged)
        ctx.results[index] = purged
