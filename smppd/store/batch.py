"""Applying one batch of operations in one transaction.

The writer hands over whatever queued up while the previous batch committed; this
module sorts it by kind and runs each kind's handler in a fixed order (the phase
table below), so that a batch is a few set-based statements, not a statement per
operation. Each domain keeps its own SQL: ledger (balances), messages (accepts),
jobs, outcomes (responses, receipts, settlement) and inbound.

The order matters: accepts and jobs come before outcomes (a job stopped in this
batch is not settled as sent), responses before receipts (a receipt in the same
batch as its response finds its part instead of waiting in pending_receipts).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection

from . import (
    epoch,
    forwards,
    idempotency,
    inbound,
    jobs,
    ledger,
    links,
    messages,
    numbers,
    outbox,
    outcomes,
    phonebook,
    polls,
    portal,
    receipts,
)
from . import inbound_ops as iops
from . import operations as ops
from .cache import CACHE_LIMIT, InProgress
from .callback_operations import ClickSeen, ClicksSeen
from .context import BatchContext, WriterMemory
from .sql import Runner, utc

Items = list[tuple[int, Any]]  # (index in the batch, operation)
Phase = Callable[[BatchContext, dict[type, Items]], None]

# Kind -> handler of all operations of that kind in the batch, in this order. The
# outcomes phase takes several kinds together (see outcomes.apply).
PHASES: tuple[tuple[tuple[type, ...], Phase], ...] = (
    *outbox.PHASES[:3],  # callback endpoints (issue 12), before the events they decide
    ((ops.Accept,), messages.accept),
    ((ops.LedgerEntry,), ledger.entries),
    ((ops.CreateJob,), jobs.create),
    ((ops.Warm,), messages.warm),
    ((ops.PurgePending,), receipts.purge),
    ((idempotency.PurgeKeys,), idempotency.purge_phase),
    ((ops.FinishJob,), jobs.finish),
    ((ops.AbortJob,), jobs.abort),
    ((ops.SetJobState,), jobs.set_state),
    ((ops.StopJob,), jobs.stop),
    ((ops.LearnIdMode,), receipts.learnt),
    (outcomes.KINDS, outcomes.apply),
    # Inbound (issue 11): numbers, contacts and polls before the MO that use them.
    ((iops.Reserve,), numbers.reserve),
    ((iops.Release,), numbers.release),
    ((iops.ChargeMonthly,), numbers.charge_monthly),
    ((iops.SaveSettings,), numbers.save_settings),
    ((iops.SaveContacts,), phonebook.save),
    ((iops.DeleteContact,), phonebook.remove),
    ((iops.AddCodes,), polls.add_codes),
    ((iops.CreatePoll,), polls.create),
    ((iops.UpdatePoll,), polls.update_poll),  # issue 15
    ((ops.FragmentSeen, ops.InboundComplete), inbound.fragments),  # parts: both kinds
    ((ops.InboundComplete,), inbound.complete),
    ((iops.ForwardDone,), forwards.done),
    *outbox.PHASES[3:],  # callback attempts (issue 12)
    ((ClickSeen, ClicksSeen), links.clicks),  # issue 12
    (portal.KINDS, portal.apply),  # users and sessions (issue 15), in their own order
)
_KNOWN = frozenset(kind for kinds, _ in PHASES for kind in kinds)
# The same, each phase's kinds as a set: which phases have work is one C-level test
# each, 3 us a batch instead of 7 with a generator per phase.
_PHASE_SETS = tuple((frozenset(kinds), phase) for kinds, phase in PHASES)
# Kinds that change messages already in progress: with several instances, a batch
# holding one takes the writers' turn first (smppd.store.epoch).
_SHARED = frozenset((*outcomes.KINDS, ops.StopJob, ops.AbortJob, ops.LearnIdMode))
# Kinds that lock rows a turn's holder may want (an account, a job) before the phase
# that needs the turn: a batch holding one takes the turn at its very start.
_EARLY = frozenset((ops.LedgerEntry, ops.CreateJob, ops.AbortJob, ops.StopJob,
                    ops.FinishJob, ops.SetJobState, iops.Reserve, iops.Release,
                    iops.ChargeMonthly))
# A phase may hand work to a later one (a learnt reading hands its waiting receipts to
# the outcomes phase): a phase runs if any of its kinds is in the batch by then.


class BatchApplier:
    def __init__(self, receipt_policy: dict[str, str] | None = None,
                 pending_receipts: int = 0, cache_limit: int = CACHE_LIMIT) -> None:
        self.memory = WriterMemory(receipt_policy or {}, pending_receipts,
                                   InProgress(cache_limit))
        self._sql: Runner | None = None

    @property
    def receipt_policy(self) -> dict[str, str]:
        return self.memory.receipt_policy

    @property
    def pending_receipts(self) -> int:
        return self.memory.pending_receipts

    @pending_receipts.setter
    def pending_receipts(self, value: int) -> None:
        self.memory.pending_receipts = value

    def reset(self) -> None:
        """Forget the cache: after a failed transaction it may be ahead of the
        database; the database is the truth and is read again on demand."""
        self.memory.cache.clear()
        self.memory.epoch = None  # a turn taken in a rolled-back transaction was not taken

    def apply(self, conn: Connection, batch: Sequence[Any]) -> list[Any]:
        if self._sql is None:
            self._sql = Runner(conn.dialect.name, conn.dialect.paramstyle)
        now = utc()
        ctx = BatchContext(conn, self._sql, now, self._sql.ts(now), [None] * len(batch),
                           self.memory)
        by_kind: dict[type, Items] = defaultdict(list)
        for index, op in enumerate(batch):
            if type(op) in _KNOWN:
                by_kind[type(op)].append((index, op))
            else:  # our own bug: fail that operation, not the batch
                ctx.results[index] = TypeError(f"the store has no handler for "
                                               f"{type(op).__name__}")
        turn = self.memory.owner is not None and not _SHARED.isdisjoint(by_kind)
        if turn and not _EARLY.isdisjoint(by_kind):
            epoch.take_turn(ctx)  # first, before any other row lock of the batch
            turn = False
        for kinds, phase in _PHASE_SETS:
            if not by_kind.keys().isdisjoint(kinds):
                if turn and not _SHARED.isdisjoint(kinds):
                    # Late, so that accepts in the same batch do not hold the turn: no
                    # lock before it that a turn's holder could want (balances are
                    # written at the end, ledger.flush).
                    epoch.take_turn(ctx)
                    turn = False
                phase(ctx, by_kind)
        if ctx.account_deltas:
            ledger.flush(ctx)
        ctx.rollups.write(conn)
        if ctx.turn is not None:
            epoch.record(ctx)
        return ctx.results
