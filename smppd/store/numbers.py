"""Inbound numbers in the writer: reservations (clashes refused, fees charged as
ledger entries in the same transaction), their monthly fees, release, and the
auto-reply and forwarding settings per number and prefix.

Clashes are checked by reading the number's reservations in the transaction that
adds one. The writer is one thread per instance; on PostgreSQL, where several
instances may share the database, a transaction-scoped advisory lock on the number
serialises them.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select, text, update

from ..inbound.pool import Pool
from . import ledger
from . import schema as t
from .inbound_ops import ChargeMonthly, Conflict, NotHeld, Release, Reserve, SaveSettings
from .operations import InsufficientBalance, LedgerEntry
from .sql import utc

if TYPE_CHECKING:
    from .context import BatchContext


def add_month(moment: datetime) -> datetime:
    """The same day and time a month later (the 31st becomes the month's last day)."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year,
                                                                     moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _pool(ctx: BatchContext) -> Pool:
    return ctx.memory.inbound.pool


def _lock(ctx: BatchContext, number: str) -> None:
    if ctx.sql.postgres:
        ctx.conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": number})


def _display(number: str, prefix: str | None) -> str:
    return f"+{number}" + (f" {prefix}" if prefix else "")


def reserve(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    for index, op in by_kind[Reserve]:
        ctx.results[index] = _reserve(ctx, op)


def _reserve(ctx: BatchContext, op: Reserve) -> Any:
    spec = _pool(ctx).get(op.number)
    if spec is None:
        return NotHeld(f"+{op.number} is not one of the operator's numbers")
    if spec.kind == "shortcode" or op.number in _pool(ctx).holders:
        return Conflict(f"+{op.number} is assigned by the operator", "number")
    _lock(ctx, op.number)
    r = t.inbound_reservations.c
    starts, ends = utc(op.starts_at), utc(op.ends_at) if op.ends_at is not None else None
    overlapping = [r.number == op.number, or_(r.ends_at.is_(None), r.ends_at > starts)]
    if ends is not None:
        overlapping.append(r.starts_at < ends)
    if spec.kind == "shared":
        overlapping.append(r.prefix_key == op.prefix_key)
    clash = ctx.conn.execute(select(r.account_id, r.prefix, r.ends_at).where(
        and_(*overlapping)).limit(1)).first()
    if clash is not None:
        if spec.kind == "shared":
            return Conflict(f"the prefix {clash.prefix!r} is already reserved on +{op.number}"
                            f" (prefixes are unique whatever their case and accents)",
                            "prefix")
        return Conflict(f"+{op.number} is already reserved" + (
            f" until {clash.ends_at:%Y-%m-%d %H:%M} UTC" if clash.ends_at else ""), "number")
    fee = spec.reservation_fee + spec.monthly_fee
    if fee:
        charged = ledger.post(ctx, LedgerEntry(
            op.account_id, "inbound_number", -fee, _display(op.number, op.prefix),
            f"reservation {spec.reservation_fee} + first month {spec.monthly_fee}",
            "system"))
        if isinstance(charged, Exception):
            return charged
    paid_until = add_month(starts) if spec.monthly_fee else None
    reservation_id = ctx.conn.execute(t.inbound_reservations.insert().values(
        account_id=op.account_id, number=op.number, prefix=op.prefix,
        prefix_key=op.prefix_key, starts_at=starts, ends_at=ends, paid_until=paid_until,
        created_at=ctx.now)).inserted_primary_key[0]
    return {"id": reservation_id, "points": fee}


def release(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    r = t.inbound_reservations.c
    for index, op in by_kind[Release]:
        # Current and future periods end now; past ones stay as they were.
        ended = ctx.conn.execute(update(t.inbound_reservations).where(
            r.account_id == op.account_id, r.number == op.number,
            r.prefix_key == op.prefix_key,
            or_(r.ends_at.is_(None), r.ends_at > ctx.now)).values(
            ends_at=ctx.now, released_at=ctx.now))
        ctx.results[index] = ended.rowcount > 0


def charge_monthly(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    r = t.inbound_reservations.c
    due = ctx.conn.execute(select(r.id, r.account_id, r.number, r.prefix, r.paid_until).where(
        r.paid_until.isnot(None), r.paid_until <= ctx.now,
        or_(r.ends_at.is_(None), r.ends_at > r.paid_until)).order_by(r.id)).all()
    charged = lapsed = 0
    for row in due:
        spec = _pool(ctx).get(row.number)
        fee = spec.monthly_fee if spec is not None else 0
        paid_until = row.paid_until
        while paid_until <= ctx.now:  # a daemon that was down pays each month missed
            result = ledger.post(ctx, LedgerEntry(
                row.account_id, "inbound_number", -fee, _display(row.number, row.prefix),
                f"monthly fee from {paid_until:%Y-%m-%d}", "system")) if fee else None
            if isinstance(result, InsufficientBalance):
                ctx.conn.execute(update(t.inbound_reservations).where(r.id == row.id).values(
                    ends_at=paid_until, paid_until=paid_until))
                lapsed += 1
                break
            paid_until = add_month(paid_until)
            charged += 1
        else:
            ctx.conn.execute(update(t.inbound_reservations).where(r.id == row.id).values(
                paid_until=paid_until))
    for index, _op in by_kind[ChargeMonthly]:
        ctx.results[index] = (charged, lapsed)


def holds(ctx: BatchContext, account_id: int, number: str, prefix_key: str,
          at: datetime | None = None) -> bool:
    """The account holds the number (a dedicated number or short code: any prefix on
    it; a shared one: that prefix) now or later. Configured holders hold for ever."""
    spec = _pool(ctx).get(number)
    if spec is None:
        return False
    if _pool(ctx).holders.get(number) == account_id:
        return True
    r = t.inbound_reservations.c
    conditions = [r.account_id == account_id, r.number == number,
                  or_(r.ends_at.is_(None), r.ends_at > (at or ctx.now))]
    if spec.kind == "shared":
        conditions.append(r.prefix_key == prefix_key)
    else:
        conditions.append(r.prefix_key == "")
    return ctx.conn.execute(select(r.id).where(*conditions).limit(1)).first() is not None


def save_settings(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    s = t.inbound_settings.c
    for index, op in by_kind[SaveSettings]:
        if not holds(ctx, op.account_id, op.number, op.prefix_key):
            ctx.results[index] = NotHeld(f"the account holds no +{op.number}"
                                         + (f" with the prefix {op.prefix}" if op.prefix else ""))
            continue
        values = dict(prefix=op.prefix, auto_reply_from=op.auto_reply_from,
                      auto_reply_text=op.auto_reply_text, forward_email=op.forward_email,
                      forward_sms=op.forward_sms, forward_url=op.forward_url,
                      updated_at=ctx.now)
        updated = ctx.conn.execute(update(t.inbound_settings).where(
            s.account_id == op.account_id, s.number == op.number,
            s.prefix_key == op.prefix_key).values(**values))
        if not updated.rowcount:
            ctx.conn.execute(t.inbound_settings.insert().values(
                account_id=op.account_id, number=op.number, prefix_key=op.prefix_key, **values))
        ctx.results[index] = True


def timestamp(value: datetime | None) -> float | None:
    return None if value is None else value.replace(tzinfo=UTC).timestamp()
