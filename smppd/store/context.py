"""What one batch's handlers share: the transaction they run in and what the writer
remembers between batches. Its own room so that the domain modules (messages, jobs,
outcomes, inbound...) can name it without importing the batch runner that imports them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from ..inbound.pool import InboundRuntime
from . import schema as t
from .cache import InProgress
from .rollups import RollupDeltas
from .sql import Runner

RELOAD_SECONDS = 5.0  # endpoints another instance added are seen within this


class OutboxMemory:
    """The accounts that have an endpoint wanting message events, so that a batch of
    status changes for accounts without callbacks costs no statement at all.

    Only a filter: the INSERT's join decides which events exist. A stale superset
    costs a statement that inserts nothing; a missing account would lose events, so
    the set is re-read after every endpoint change made here and every few seconds
    (for changes made by another instance on a shared database)."""

    def __init__(self) -> None:
        self.accounts: frozenset[int] = frozenset()
        self._loaded_at = float("-inf")

    def invalidate(self) -> None:
        self._loaded_at = float("-inf")

    def message_accounts(self, conn: Connection) -> frozenset[int]:
        now = time.monotonic()
        if now - self._loaded_at > RELOAD_SECONDS:
            e = t.callback_endpoints.c
            self.accounts = frozenset(conn.execute(select(e.account_id).distinct().where(
                e.deleted_at.is_(None), e.on_status | e.on_final)).scalars())
            self._loaded_at = now
        return self.accounts


@dataclass
class WriterMemory:
    """What the writer knows between batches. Only `cache` is dropped after a failed
    transaction; `pending_receipts` is restored by the writer."""

    receipt_policy: dict[str, str] = field(default_factory=dict)
    pending_receipts: int = 0  # a hint that saves a query per batch
    cache: InProgress = field(default_factory=InProgress)
    inbound: InboundRuntime = field(default_factory=InboundRuntime)  # issue 11
    outbox: OutboxMemory = field(default_factory=OutboxMemory)  # issue 12
    # Issue 14, several instances on PostgreSQL: this instance's id (None: the only
    # instance), which leases the messages its API accepts, and the writers' epoch it
    # last took (smppd.store.epoch).
    owner: str | None = None
    epoch: int | None = None


@dataclass(slots=True)
class BatchContext:
    """One transaction: its connection, its clock, and where results go."""

    conn: Connection
    sql: Runner
    now: datetime
    stamp: Any  # `now` as the dialect takes a timestamp parameter
    results: list[Any]
    memory: WriterMemory
    # The reports' rollups this batch changes, written as one upsert at its end; a
    # failed batch drops them with everything else.
    rollups: RollupDeltas = field(default_factory=RollupDeltas)
    # Several instances (issue 14): balance changes written at the end (ledger.flush).
    account_deltas: dict[int, int] = field(default_factory=dict)
    # Several instances (issue 14): the writers' turn this batch took, if any, the
    # messages whose state it changed (None: too many or unknown) and the SMSC ids it
    # stored, which the turn records for the other writers (smppd.store.epoch).
    turn: int | None = None
    touched: set[str] | None = field(default_factory=set)
    keys_stored: set[tuple[str, str]] = field(default_factory=set)

    def touch(self, message_ids: Any, keys: Any = ()) -> None:
        if self.memory.owner is not None and self.touched is not None:
            self.touched.update(message_ids)
            self.keys_stored.update(keys)

    def touch_everything(self) -> None:
        self.touched = None

    @property
    def cache(self) -> InProgress:
        return self.memory.cache
