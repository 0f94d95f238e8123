"""Polls and discount codes in the writer: creating a poll on a number the account
holds, and loading codes into a pool (a code already in the pool is skipped, so an
upload can be repeated safely)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update

from . import schema as t
from .inbound_ops import AddCodes, Conflict, CreatePoll, NotHeld, UpdatePoll
from .numbers import holds
from .sql import BulkInsert, chunks, utc

if TYPE_CHECKING:
    from .context import BatchContext

_INSERT_CODE = BulkInsert(t.discount_codes, ("account_id", "pool", "code", "created_at"))


def create(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    for index, op in by_kind[CreatePoll]:
        if not holds(ctx, op.account_id, op.number, op.prefix_key, utc(op.starts_at)):
            ctx.results[index] = NotHeld(
                f"the account holds no +{op.number}" + (
                    f" with the prefix {op.prefix}" if op.prefix else "")
                + " for the poll's period")
            continue
        clash = _clash(ctx, op)
        if clash is not None:
            ctx.results[index] = clash
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


def _clash(ctx: BatchContext, op: Any, poll_id: str | None = None) -> Conflict | None:
    """Two polls open at once on one number and prefix could not tell their votes
    apart: several polls share a number only with prefixes of their own."""
    p = t.polls.c
    query = select(p.name, p.prefix).where(
        p.number == op.number, p.prefix_key == op.prefix_key,
        p.starts_at < utc(op.ends_at), p.ends_at > utc(op.starts_at))
    if poll_id is not None:
        query = query.where(p.id != poll_id)
    clash = ctx.conn.execute(query.limit(1)).first()
    if clash is None:
        return None
    return Conflict(f"the poll {clash.name!r} runs on +{op.number}"
                    + (f" with the prefix {clash.prefix}" if clash.prefix else
                       " without a prefix")
                    + " in an overlapping period; give this one its own prefix", "prefix")


def update_poll(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    p, o, v = t.polls.c, t.poll_options.c, t.poll_votes.c
    for index, op in by_kind[UpdatePoll]:
        row = ctx.conn.execute(select(p.number, p.prefix_key).where(
            p.id == op.poll_id, p.account_id == op.account_id)).first()
        if row is None:
            ctx.results[index] = None
            continue
        if (row.number, row.prefix_key) != (op.number, op.prefix_key):
            ctx.results[index] = Conflict("a poll's number and prefix cannot change; "
                                          "create a new poll", "number")
            continue
        clash = _clash(ctx, op, op.poll_id)
        if clash is not None:
            ctx.results[index] = clash
            continue
        voted = ctx.conn.execute(select(v.id).where(v.poll_id == op.poll_id).limit(1)).first()
        if voted is not None:
            keys = list(ctx.conn.execute(select(o.keyword_key).where(o.poll_id == op.poll_id)
                                         .order_by(o.option_no)).scalars())
            if keys != [key for _, key, _ in op.options]:
                ctx.results[index] = Conflict("votes are counted already: the options "
                                              "cannot change (their replies can)", "options")
                continue
            for n, (keyword, _, reply) in enumerate(op.options, 1):
                ctx.conn.execute(update(t.poll_options).where(
                    o.poll_id == op.poll_id, o.option_no == n).values(keyword=keyword,
                                                                      reply=reply))
        else:
            ctx.conn.execute(delete(t.poll_options).where(o.poll_id == op.poll_id))
            ctx.conn.execute(t.poll_options.insert(), [
                {"poll_id": op.poll_id, "option_no": n, "keyword": keyword,
                 "keyword_key": key, "reply": reply}
                for n, (keyword, key, reply) in enumerate(op.options, 1)])
        ctx.conn.execute(update(t.polls).where(p.id == op.poll_id).values(
            name=op.name, starts_at=utc(op.starts_at), ends_at=utc(op.ends_at),
            sender=op.sender, replies=op.replies, limit_votes=op.limit_votes,
            limit_seconds=op.limit_seconds, groups=op.groups,
            discount_pool=op.discount_pool))
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
