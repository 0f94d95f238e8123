"""Balances: charging accepts, refunding what was never sent, and the ledger of
every other change (top-ups, fees, corrections).

A message's own charge and refund stay on its row (points, refunded): writing a
ledger row per message would double the writes of the hot path for nothing the
message row does not already say.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from . import schema as t
from .operations import InsufficientBalance, LedgerEntry
from .sql import BulkUpdate, utc

if TYPE_CHECKING:
    from .context import BatchContext

_ADD = BulkUpdate(t.accounts, ("id",), {"balance": "accounts.balance + {}"})


def balances(ctx: BatchContext, account_ids: Iterable[int]) -> dict[int, int]:
    """Current balances; on PostgreSQL the rows stay locked until the commit, since
    several instances may share the database."""
    query = select(t.accounts.c.id, t.accounts.c.balance).where(
        t.accounts.c.id.in_(sorted(set(account_ids))))
    if ctx.sql.postgres:
        query = query.with_for_update()
    return dict(ctx.conn.execute(query).all())


def charge(ctx: BatchContext, points: Mapping[int, int]) -> None:
    ctx.sql.run(ctx.conn, _ADD, [(account, -amount) for account, amount in points.items()
                                 if amount])


def refund(ctx: BatchContext, points: Mapping[int, int]) -> None:
    ctx.sql.run(ctx.conn, _ADD, [(account, amount) for account, amount in points.items()
                                 if amount])


def entries(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    for index, op in by_kind[LedgerEntry]:
        ctx.results[index] = _entry(ctx, op)


def post(ctx: BatchContext, op: LedgerEntry) -> Any:
    """One entry inside another handler's transaction (a number's fee): the balance
    after, or InsufficientBalance (nothing written)."""
    return _entry(ctx, op)


def _entry(ctx: BatchContext, op: LedgerEntry) -> Any:
    balance = balances(ctx, (op.account_id,)).get(op.account_id)
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
