"""The writers' turn at messages in progress, with several instances (issue 14).

Each writer keeps the state of the messages it tracks in memory
(smppd.store.cache), which is exact only while no other writer changes them. With
several instances on one PostgreSQL database another one may: its bind got the
receipt, its dispatcher sent the part, it stopped the job. So a batch that changes
messages in progress first takes the turn: it increments the one row of
`writer_epoch`. The row lock orders such batches across instances (each sees what
the one before committed), and the number says whether anyone else took a turn
since this writer's last: if so, its cached states of what those turns changed are
old and are forgotten (read again from the database, which is the truth), and
receipts may be waiting for ids this writer is about to store.

What a turn changed is recorded in `writer_touches`, in the turn's own transaction:
the ids of the messages whose state it changed. A writer that finds other turns
since its own reads theirs and forgets those messages only. It used to forget
everything: with two instances taking turns in alternation, every batch then read
all its messages again, under the turn's lock, and two instances were slower than
one (bench/cluster.py, 10,000 messages: one instance 1,164-1,260 msg/s, two
1,044-1,122). Where the record is incomplete (a turn listed no ids, a row was
pruned, an older smppd took a turn without recording), everything is forgotten,
as before.

The turn is taken before any other lock of the batch (balances, messages), so two
batches never wait for each other in opposite orders. A lone instance on
PostgreSQL finds its own previous turn every time and keeps its cache.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from .context import BatchContext

log = logging.getLogger("smppd.store")
_TAKE = text("UPDATE writer_epoch SET epoch = epoch + 1, writer = :me WHERE id = 1 "
             "RETURNING epoch")
_SINCE = text("SELECT epoch, message_ids FROM writer_touches WHERE epoch > :after "
              "AND epoch < :before")
_RECORD = text("INSERT INTO writer_touches (epoch, writer, message_ids) "
               "VALUES (:epoch, :me, :ids)")
_PRUNE = text("DELETE FROM writer_touches WHERE epoch <= :upto")
# A turn that changed more messages than this records "everything" (NULL): a job
# stopped with a million queued messages would otherwise write a million ids.
MAX_LISTED = 10_000
# Records are kept for this many turns; a writer idle for longer forgets everything
# at its next turn. Pruned every PRUNE_EVERY turns, by whoever takes that one.
KEEP_TURNS = 8192
PRUNE_EVERY = 512


def take_turn(ctx: BatchContext) -> None:
    memory = ctx.memory
    current = ctx.conn.execute(_TAKE, {"me": memory.owner}).scalar()
    if current is None:  # the row is missing (a hand-made schema): make it
        ctx.conn.execute(text("INSERT INTO writer_epoch (id, epoch, writer) "
                              "VALUES (1, 1, :me)"), {"me": memory.owner})
        current = 1
    if memory.epoch is None or current != memory.epoch + 1:
        _forget_others(ctx, memory.epoch, current)
        memory.pending_receipts = max(memory.pending_receipts, 1)
    if current % PRUNE_EVERY == 0:
        ctx.conn.execute(_PRUNE, {"upto": current - KEEP_TURNS})
    memory.epoch = current
    ctx.turn = current


def _forget_others(ctx: BatchContext, mine: int | None, current: int) -> None:
    """Forget what the turns between this writer's last and `current` changed; all of
    it when they cannot be listed."""
    cache = ctx.cache
    if mine is None:
        cache.clear()
        return
    rows = ctx.conn.execute(_SINCE, {"after": mine, "before": current}).all()
    if len(rows) != current - mine - 1 or any(ids is None for _, ids in rows):
        log.debug("writer turn %s after %s: not all turns between listed their "
                  "messages; cache forgotten", current, mine)
        cache.clear()
        return
    for _, ids in rows:
        for message_id in ids.split(",") if ids else ():
            cache.forget(message_id)


def record(ctx: BatchContext) -> None:
    """At the end of a batch that took the turn: the messages it changed, for the next
    writer to take one (in this transaction, so it is seen with the turn)."""
    touched = ctx.touched
    ids = None if touched is None or len(touched) > MAX_LISTED else ",".join(sorted(touched))
    ctx.conn.execute(_RECORD, {"epoch": ctx.turn, "me": ctx.memory.owner, "ids": ids})
