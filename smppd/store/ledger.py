"""Balances: charging accepts, refunding what was never sent, and the ledger of
every other change (top-ups, fees, corrections).

A message's own charge and refund stay on its row (points, refunded): writing a
ledger row per message would double the writes of the hot path for nothing the
message row does not already say.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import DBAPIError

from . import schema as t
from .operations import InsufficientBalance, LedgerEntry
from .sql import BulkUpdate, utc

if TYPE_CHECKING:
    from .context import BatchContext

_ADD = BulkUpdate(t.accounts, ("id",), {"balance": "accounts.balance + {}"})


# Built once: every batch of accepts (and of MO replies) reads balances, and building
# the select() each time cost SQLAlchemy more than the read.
_BALANCES = select(t.accounts.c.id, t.accounts.c.balance).where(
    t.accounts.c.id.in_(bindparam("accounts", expanding=True)))
_BALANCES_LOCKED = _BALANCES.with_for_update()


def balances(ctx: BatchContext, account_ids: Iterable[int],
             lock: bool = False) -> dict[int, int]:
    """Current balances (with what this batch has already charged or refunded). On
    PostgreSQL the rows stay locked until the commit, since several instances may
    share the database; with several instances (issue 14) an accept reads without
    the lock and the balance is guarded where it changes, at the end of the batch
    (`flush`), so the account's row is locked for the commit only, not for the whole
    batch (`lock`: a ledger entry or a job still locks it at once)."""
    deferred = ctx.memory.owner is not None
    accounts = sorted(set(account_ids))
    if ctx.sql.postgres:
        query = _BALANCES_LOCKED if lock or not deferred else _BALANCES
        found = dict(ctx.conn.execute(query, {"accounts": accounts}).all())
    else:  # SQLite: the batch holds the write lock already; the cheaper driver path
        found = dict(ctx.sql.fetch(ctx.conn, "SELECT id, balance FROM accounts WHERE id IN ("
                                   + ", ".join([ctx.sql.marker] * len(accounts)) + ")",
                                   accounts))
    if deferred:
        for account, delta in ctx.account_deltas.items():
            if account in found:
                found[account] += delta
    return found


def charge(ctx: BatchContext, points: Mapping[int, int]) -> None:
    _change(ctx, {account: -amount for account, amount in points.items() if amount})


def refund(ctx: BatchContext, points: Mapping[int, int]) -> None:
    _change(ctx, {account: amount for account, amount in points.items() if amount})


def _change(ctx: BatchContext, deltas: Mapping[int, int]) -> None:
    if ctx.memory.owner is None:
        ctx.sql.run(ctx.conn, _ADD, list(deltas.items()))
        return
    for account, delta in deltas.items():  # written by `flush`, at the end of the batch
        ctx.account_deltas[account] = ctx.account_deltas.get(account, 0) + delta


class BalanceRace(DBAPIError):
    """Another instance spent the balance this batch read (several instances, issue
    14): the batch is rolled back and its operations written one at a time, each
    reading the balance again."""

    def __init__(self, account: int) -> None:
        super().__init__(None, None, RuntimeError(
            f"account {account}: the balance changed under a batch of accepts"))


def flush(ctx: BatchContext) -> None:
    """The batch's balance changes, in account order (so two instances never wait for
    each other's accounts in opposite orders), as the last writes before the rollups:
    the rows are locked only for the commit. A charge the balance no longer covers
    fails the batch (BalanceRace)."""
    deltas, ctx.account_deltas = ctx.account_deltas, {}
    a = t.accounts.c
    for account, delta in sorted(deltas.items()):
        if not delta:
            continue
        change = update(t.accounts).where(a.id == account).values(balance=a.balance + delta)
        if delta < 0:
            change = change.where(a.balance + delta >= 0)
        if ctx.conn.execute(change).rowcount != 1 and delta < 0:
            raise BalanceRace(account)


def entries(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    for index, op in by_kind[LedgerEntry]:
        ctx.results[index] = _entry(ctx, op)


def post(ctx: BatchContext, op: LedgerEntry) -> Any:
    """One entry inside another handler's transaction (a number's fee): the balance
    after, or InsufficientBalance (nothing written)."""
    return _entry(ctx, op)


def _entry(ctx: BatchContext, op: LedgerEntry) -> Any:
    balance = balances(ctx, (op.account_id,), lock=True).get(op.account_id)
    if balance is None:
        return KeyError(f"no account with id {op.account_id}")
    after = balance + op.points
    if after < 0 and op.points < 0 and not op.allow_negative:
        return InsufficientBalance(-op.points, balance)
    ctx.conn.execute(update(t.accounts).where(t.accounts.c.id == op.account_id).values(
        balance=t.accounts.c.balance + op.points))
    ctx.conn.execute(t.ledger_entries.insert().values(
        account_id=op.account_id, kind=op.kind, points=op.points, balance_after=after,
        reference=op.reference, note=op.note, created_by=op.created_by, created_at=utc()))
    return after
