"""Polls and discount codes in the writer: creating a poll on a number the account
holds, and loading codes into a pool (a code already in the pool is skipped, so an
upload can be repeated safely)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from . import schema as t
from .inbound_ops import AddCodes, Conflict, CreatePoll, NotHeld
from .numbers import holds
from .sql import BulkInsert, chunks, utc

if TYPE_CHECKING:
    from .batch import BatchContext

_INSERT_CODE = BulkInsert(t.discount_codes, ("account_id", "pool", "code", "created_at"))


def create(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    p = t.polls.c
    for index, op in by_kind[CreatePoll]:
        if not holds(ctx, op.account_id, op.number, op.prefix_key, utc(op.starts_at)):
            ctx.results[index] = NotHeld(
                f"the account holds no +{op.number}" + (
                    f" with the prefix {op.prefix}" if op.prefix else "")
                + " for the poll's period")
            continue
        # Two polls open at once on one number and prefix could not tell their votes
        # apart: several polls share a number only with prefixes of their own.
        clash = ctx.conn.execute(select(p.name).where(
            p.number == op.number, p.prefix_key == op.prefix_key,
            p.starts_at < utc(op.ends_at), p.ends_at > utc(op.starts_at)).limit(1)).scalar()
        if clash is not None:
            ctx.results[index] = Conflict(
                f"the poll {clash!r} runs on +{op.number}"
                + (f" with the prefix {op.prefix}" if op.prefix else " without a prefix")
                + " in an overlapping period; give this one its own prefix", "prefix")
            continue
        ctx.conn.execute(t.polls.insert().values(
            id=op.poll_id, account_id=op.account_id, name=op.name, number=op.number,
            prefix=op.prefix, prefix_key=op.prefix_key, starts_at=utc(op.starts_at),
            ends_at=utc(op.ends_at), sender=op.sender, replies=op.replies,
            limit_votes=op.limit_votes, limit_seconds=op.limit_seconds, groups=op.groups,
            discount_pool=op.discount_pool, created_at=utc(op.created_at)))
        ctx.conn.execute(t.poll_options.insert(), [
            {"poll_id": op.poll_id, "option_no": n, "keyword": keyword, "keyword_key": key,
             "reply": reply} for n, (keyword, key, reply) in enumerate(op.options, 1)])
        ctx.results[index] = op.poll_id


def add_codes(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    d = t.discount_codes.c
    for index, op in by_kind[AddCodes]:
        wanted = list(dict.fromkeys(op.codes))
        present: set[str] = set()
        for chunk in chunks(wanted):
            present.update(ctx.conn.execute(select(d.code).where(
                d.account_id == op.account_id, d.pool == op.pool, d.code.in_(chunk))).scalars())
        new = [(op.account_id, op.pool, code, ctx.stamp) for code in wanted
               if code not in present]
        ctx.sql.run(ctx.conn, _INSERT_CODE, new)
        ctx.results[index] = (len(new), len(op.codes) - len(new))
