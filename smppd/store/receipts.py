"""Receipt matching: which parts a receipt's SMSC id names, and the receipts that
came before the id they name was stored (checklist 1), kept until it is.

While an SMSC's id reading is still being learnt (id_format: auto), a receipt comes
with the candidate keys of its id. It settles a part only when exactly one candidate
names a part in progress (then that reading is also an observation for the learner);
when two do (`12345` is both itself and the decimal of hex `3039`) it waits, read
again once the reading is learnt. One that names nothing yet waits too, and is taken
when a response arrives whose id exactly one of its readings gives."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, tuple_

from ..protocol.message_id import Reading, canonical, read, readings
from . import schema as t
from .operations import LearnIdMode, PurgePending, ReceiptSeen
from .sql import BulkInsert, chunks, utc

if TYPE_CHECKING:
    from .context import BatchContext

INSERT_PENDING = BulkInsert(t.pending_receipts, (
    "smsc", "smsc_key", "status", "error_code", "received_at", "needs_reading", "source"))
Target = tuple[str, int, str, str | None]  # message id, part, status, error
LEARNT = -1  # the batch index of a receipt that waited for its SMSC's reading


def match(ctx: BatchContext, seen: list[tuple[int, ReceiptSeen]]) -> list[Target]:
    """The parts these receipts settle. Receipts naming no known part wait in
    pending_receipts; so do those whose reading is not learnt yet, after reporting
    (as their result) the one reading that names a part in progress, if only one does."""
    cache = ctx.cache
    wanted = {(op.smsc, op.smsc_key) for _, op in seen if op.smsc_key is not None}
    wanted.update((op.smsc, key) for _, op in seen for _, key in op.candidates)
    unknown = list(wanted - cache.keys.keys())
    if unknown:
        cache.load_keys(ctx.conn, unknown)
    targets: list[Target] = []
    waiting = []
    for index, op in seen:
        key = op.smsc_key
        if key is None:
            hits = {key for _, key in op.candidates if cache.parts_for((op.smsc, key))}
            if len(hits) != 1:
                waiting.append((op.smsc, op.raw or "", op.status, op.error_code, ctx.stamp,
                                True, op.source))
                continue
            key = hits.pop()
            readings = [reading for reading, candidate in op.candidates if candidate == key]
            if index != LEARNT and len(readings) == 1:
                ctx.results[index] = readings[0]  # an unambiguous observation
        parts = cache.parts_for((op.smsc, key))
        if not parts:
            waiting.append((op.smsc, key, op.status, op.error_code, ctx.stamp, False,
                            op.source))
            continue
        targets.extend((message_id, part_no, op.status, op.error_code)
                       for message_id, part_no in parts)
    if waiting:
        ctx.sql.run(ctx.conn, INSERT_PENDING, waiting)
        ctx.memory.pending_receipts += len(waiting)
    return targets


def take_pending(ctx: BatchContext, keys: set[tuple[str, str]]) -> list[ReceiptSeen]:
    """Receipts that waited for one of these ids, removed from the waiting room: those
    keyed by it, and those not yet read whose id one reading turns into it."""
    p = t.pending_receipts.c
    waiting: list[ReceiptSeen] = []
    ids: list[int] = []
    raw = {(smsc, written) for smsc, key in keys for written in _written_as(key)}
    for chunk in chunks(list(keys | raw)):
        for row in ctx.conn.execute(select(
                p.id, p.smsc, p.smsc_key, p.status, p.error_code, p.needs_reading,
                p.source).where(tuple_(p.smsc, p.smsc_key).in_(chunk)).order_by(p.id)):
            if row.needs_reading:
                if (row.smsc, row.smsc_key) not in raw:
                    continue
                waiting.append(ReceiptSeen(row.smsc, None, row.status, row.error_code,
                                           row.source or "text", row.smsc_key,
                                           tuple(readings(row.smsc_key).items())))
            elif (row.smsc, row.smsc_key) in keys:
                waiting.append(ReceiptSeen(row.smsc, row.smsc_key, row.status,
                                           row.error_code))
            else:
                continue
            ids.append(row.id)
    _remove(ctx, ids)
    return waiting


def _written_as(key: str) -> set[str]:
    """The receipt ids (canonical) that some reading turns into response key `key`."""
    written = {key}
    if key.isdigit():
        written.add(f"{int(key):X}")  # hex-to-dec gives `key` from its hex
    if all(ch in "0123456789ABCDEF" for ch in key):
        written.add(str(int(key, 16)))  # dec-to-hex gives `key` from its decimal
    return {canonical(value) for value in written}


def _remove(ctx: BatchContext, ids: list[int]) -> None:
    for chunk in chunks(ids):
        ctx.conn.execute(t.pending_receipts.delete().where(t.pending_receipts.c.id.in_(chunk)))
    ctx.memory.pending_receipts = max(0, ctx.memory.pending_receipts - len(ids))


def learnt(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    """Keep each learnt reading, and hand the receipts that waited for it to the
    outcomes phase of this same batch, read that way."""
    p, m = t.pending_receipts.c, t.smsc_id_modes.c
    for _, op in by_kind[LearnIdMode]:
        reading = Reading(op.reading)
        ctx.conn.execute(t.smsc_id_modes.delete().where(m.smsc == op.smsc,
                                                         m.source == op.source))
        ctx.conn.execute(t.smsc_id_modes.insert().values(
            smsc=op.smsc, source=op.source, reading=reading.value, learned_at=ctx.now))
        rows = ctx.conn.execute(select(p.id, p.smsc_key, p.status, p.error_code).where(
            p.smsc == op.smsc, p.source == op.source, p.needs_reading.is_(True))
            .order_by(p.id)).all()
        _remove(ctx, [row.id for row in rows])
        receipts = by_kind.setdefault(ReceiptSeen, [])
        for row in rows:
            key = read(row.smsc_key, reading)
            if key is not None:
                receipts.append((LEARNT, ReceiptSeen(op.smsc, key, row.status,
                                                     row.error_code, op.source)))


def purge(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    for index, op in by_kind[PurgePending]:
        since = utc(datetime.now(UTC).timestamp() - op.max_age)
        result = ctx.conn.execute(t.pending_receipts.delete().where(
            t.pending_receipts.c.received_at < since))
        purged = result.rowcount or 0
        ctx.memory.pending_receipts = max(0, ctx.memory.pending_receipts - purged)
        ctx.results[index] = purged
