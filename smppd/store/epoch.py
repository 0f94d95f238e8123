"""The writers' turn at messages in progress, with several instances (issue 14).

Each writer keeps the state of the messages it tracks in memory
(smppd.store.cache), which is exact only while no other writer changes them. With
several instances on one PostgreSQL database another one may: its bind got the
receipt, its dispatcher sent the part, it stopped the job. So a batch that changes
messages in progress first takes the turn: it increments the one row of
`writer_epoch`. The row lock orders such batches across instances (each sees what
the one before committed), and the number says whether anyone else took a turn
since this writer's last: if so its cached states may be old and are forgotten
(read again from the database, which is the truth), and receipts may be waiting
for ids this writer is about to store.

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


def take_turn(ctx: BatchContext) -> None:
    memory = ctx.memory
    current = ctx.conn.execute(_TAKE, {"me": memory.owner}).scalar()
    if current is None:  # the row is missing (a hand-made schema): make it
        ctx.conn.execute(text("INSERT INTO writer_epoch (id, epoch, writer) "
                              "VALUES (1, 1, :me)"), {"me": memory.owner})
        current = 1
    if memory.epoch is None or current != memory.epoch + 1:
        log.debug("writer turn %s after %s: cache forgotten", current, memory.epoch)
        ctx.cache.clear()
        memory.pending_receipts = max(memory.pending_receipts, 1)
    memory.epoch = current
