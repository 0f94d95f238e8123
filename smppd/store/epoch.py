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
the ids of the messages whose state it changed, and the SMSC ids it stored (another
writer may index the same id for another part). A writer that finds other turns
since its own reads theirs and forgets those messages and ids only. It used to
forget everything, so that with two instances taking turns in alternation every
batch read all its messages again under the turn's lock (a running job's warmed
pages included). Where the record is incomplete (a turn could not list what it
changed, a row was pruned, an older smppd took a turn without recording), or too
many turns went by to read them under the lock, everything is forgotten, as before.

The turn is taken before any other lock of the batch (balances, messages), so two
batches never wait for each other in opposite orders. A lone instance on
PostgreSQL finds its own previous turn every time and keeps its cache.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from .context import BatchContext

log = logging.getLogger("smppd.store")
_TAKE = text("UPDATE writer_epoch SET epoch = epoch + 1, writer = :me WHERE id = 1 "
             "RETURNING epoch")
_SINCE = text("SELECT epoch, changes FROM writer_touches WHERE epoch > :after "
              "AND epoch < :before")
_RECORD = text("INSERT INTO writer_touches (epoch, writer, changes) "
               "VALUES (:epoch, :me, :changes)")
_PRUNE = text("DELETE FROM writer_touches WHERE epoch <= :upto")
# A turn that changed more messages than this records "everything" (NULL): a job
# stopped with a million queued messages would otherwise write a million ids. An
# outcomes batch (at most the writer's max_batch, 1,000) always fits.
MAX_LISTED = 2_000
# Reading more foreign turns than this, under the lock every turn waits for, would
# cost the other instances more than reading the cache again costs this one.
MAX_READ = 64
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
    if mine is None or current - mine - 1 > MAX_READ:
        cache.clear()
        return
    rows = ctx.conn.execute(_SINCE, {"after": mine, "before": current}).all()
    if len(rows) != current - mine - 1 or any(changes is None for _, changes in rows):
        log.debug("writer turn %s after %s: not all turns between listed what they "
                  "changed; cache forgotten", current, mine)
        cache.clear()
        return
    for _, changes in rows:
        listed = json.loads(changes)
        for message_id in listed["m"]:
            cache.forget(message_id)
        for smsc, key in listed["k"]:
            cache.forget_key((smsc, key))


def record(ctx: BatchContext) -> None:
    """At the end of a batch that took the turn: the messages it changed and the SMSC
    ids it stored, for the next writer to take one (in this transaction, so it is seen
    with the turn); NULL when that is too much to list or not known (an abort)."""
    touched, keys = ctx.touched, ctx.keys_stored
    changes = None if touched is None or len(touched) + len(keys) > MAX_LISTED else \
        json.dumps({"m": sorted(touched), "k": sorted(keys)}, separators=(",", ":"))
    ctx.conn.execute(_RECORD, {"epoch": ctx.turn, "me": ctx.memory.owner,
                               "changes": changes})
