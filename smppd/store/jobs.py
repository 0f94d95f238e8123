"""Bulk jobs in the store: created a batch at a time (state `creating`, invisible
to the dispatcher until finished), taken back whole on failure, and their state
changes, of which `stop` cancels and refunds every unsent message at once."""

from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from ..status import JobState, Status
from . import idempotency, leases, ledger, messages, outbox
from . import schema as t
from .operations import (
    AbortJob,
    CreateJob,
    FinishJob,
    InsufficientBalance,
    JobMessage,
    SetJobState,
    StopJob,
)
from .outcomes import INSERT_EVENT
from .rollups import slot_of
from .sql import MAX_PARAMETERS, chunks, utc

if TYPE_CHECKING:
    from .context import BatchContext

Items = dict[type, list[tuple[int, Any]]]


def create(ctx: BatchContext, by_kind: Items) -> None:
    for index, op in by_kind[CreateJob]:
        ctx.results[index] = _create(ctx, op)


def _create(ctx: BatchContext, op: CreateJob) -> Any:
    total = sum(message.points for message in op.messages)
    balance = ledger.balances(ctx, [op.account_id], lock=True).get(op.account_id, 0)
    if balance < total:
        return InsufficientBalance(total, balance)
    j = t.jobs.c
    conn = ctx.conn
    if conn.execute(select(j.id).where(j.id == op.job_id)).scalar() is None:
        created = utc(op.created_at)
        conn.execute(t.jobs.insert().values(
            id=op.job_id, account_id=op.account_id, name=op.name, sender=op.sender,
            text=op.text, state=JobState.CREATING, throughput=op.throughput,
            start_at=utc(op.start_at) if op.start_at is not None else None,
            recipients=len(op.messages), rejected_rows=0, row_errors=None, points=total,
            refunded=0, created_at=created, updated_at=created, description=op.description,
            ref_id=op.ref_id, params=op.params, partner=op.partner,
            callback_id=op.callback_id, shorten_links=op.shorten_links))
    else:
        conn.execute(update(t.jobs).where(j.id == op.job_id).values(
            recipients=j.recipients + len(op.messages), points=j.points + total))
    ledger.charge(ctx, {op.account_id: total})
    if any(message.links or type(message) is not JobMessage for message in op.messages):
        messages.insert(ctx, op.messages, remember=False)
    else:
        _insert(ctx, op.messages)
    return op.job_id


# A job's rows share most of their columns (issue 14). On SQLite they are bound once
# per statement as ?1..?N and only what differs per row is bound per row: binding
# and evaluating 21 values per row was half of SQLite's time per row.
_SHARED = ("account_id", "job_id", "sender", "country", "encoding", "smsc", "ref_id",
           "params", "created_at", "updated_at", "channel", "sent_by", "partner",
           "callback_id", "lease_owner")
_OWN = ("id", "recipient", "text", "parts", "points", "concat_ref")
_PART_OWN = ("message_id", "part_no")


def _insert(ctx: BatchContext, batch: tuple[JobMessage, ...]) -> None:
    """messages.insert(remember=False) for a batch of JobMessages without short links
    (issue 14: the writer's time per row): the same rows; the rollups summed per
    (account, slot) first, since a job's ids share their moment; on SQLite, rows
    grouped by the columns they share, each group's shared values bound once."""
    stamps: dict[float, Any] = {}
    slots: dict[str, int] = {}
    sums: dict[tuple[int, int], list[int]] = {}
    groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    parts: dict[Any, list[tuple[str, int]]] = {}
    for (account_id, message_id, sender, recipient, country, text, encoding, count, points,
         concat_ref, smsc, ref_id, params, created_at, job_id, _, channel, sent_by, partner,
         callback_id, _) in batch:
        created = stamps.get(created_at)
        if created is None:
            created = stamps[created_at] = ctx.sql.ts(utc(created_at))
            parts[created] = []
        shared = (account_id, job_id, sender, country, encoding, smsc, ref_id, params,
                  created, created, channel or ("job" if job_id else "api"), sent_by,
                  partner, callback_id, None)
        own = groups.get(shared)
        if own is None:
            own = groups[shared] = []
        own.append((message_id, recipient, text, count, points, concat_ref))
        if count == 1:
            parts[created].append((message_id, 1))
        else:
            parts[created].extend((message_id, n) for n in range(1, count + 1))
        moment = message_id[:12]
        slot = slots.get(moment)
        if slot is None:
            slot = slots[moment] = slot_of(message_id)
        total = sums.get((account_id, slot))
        if total is None:
            sums[(account_id, slot)] = [1, count, points]
        else:
            total[0] += 1
            total[1] += count
            total[2] += points
    for (account_id, slot), (number, count, points) in sums.items():
        ctx.rollups.add_sums((account_id, slot, Status.QUEUED, ""), number, count, points, 0)
    if ctx.sql.postgres:  # %s parameters cannot be shared: the plain statements
        ctx.sql.run(ctx.conn, messages.INSERT_MESSAGE, [
            (own[0], *shared[:3], own[1], shared[3], own[2], shared[4], *own[3:],
             *shared[5:]) for shared, rows in groups.items() for own in rows])
        ctx.sql.run(ctx.conn, messages.INSERT_PART, [
            (*part, created) for created, rows in parts.items() for part in rows])
        return
    for shared, rows in groups.items():
        _shared_insert(ctx, "messages", _SHARED, shared, _OWN, rows, ("refunded", "0"),
                       ("status", messages.QUEUED_LITERAL))
    for created, rows in parts.items():
        _shared_insert(ctx, "parts", ("updated_at",), (created,), _PART_OWN, rows,
                       ("status", messages.QUEUED_LITERAL))


_statements: dict[tuple[str, int], str] = {}


def _shared_insert(ctx: BatchContext, table: str, shared: tuple[str, ...],
                   values: tuple[Any, ...], own: tuple[str, ...],
                   rows: list[tuple[Any, ...]], *literals: tuple[str, str]) -> None:
    """INSERT of `rows` (the `own` columns) that all have `values` in the `shared`
    columns, bound once as ?1..?N (SQLite numbers a bare ? after the largest so far,
    so the shared markers come first in each row), and `literals` as SQL."""
    per_statement = (MAX_PARAMETERS - len(shared)) // len(own)
    for start in range(0, len(rows), per_statement):
        chunk = rows[start:start + per_statement]
        key = (table, len(chunk))
        sql = _statements.get(key)
        if sql is None:
            group = "(" + ", ".join([f"?{n}" for n in range(1, len(shared) + 1)]
                                    + ["?"] * len(own) + [v for _, v in literals]) + ")"
            sql = (f"INSERT INTO {table} ({', '.join(shared + own)}"
                   f"{''.join(', ' + c for c, _ in literals)}) VALUES "
                   + ", ".join([group] * len(chunk)))
            if len(chunk) == per_statement or len(chunk) <= 64:
                _statements[key] = sql
        ctx.conn.exec_driver_sql(sql, (*values, *chain.from_iterable(chunk)))


def finish(ctx: BatchContext, by_kind: Items) -> None:
    """The last batch is in. A job whose Idempotency-Key is kept already (a racing
    retry) gets that answer as its result, and the caller takes this one back."""
    j = t.jobs.c
    for index, op in by_kind[FinishJob]:
        if not idempotency.claimed(ctx.conn, [(index, op)], ctx.results):
            continue
        idempotency.record(ctx.conn, [op.idempotency] if op.idempotency else [])
        ctx.conn.execute(update(t.jobs).where(
            j.id == op.job_id, j.state == JobState.CREATING).values(
            state=op.state, rejected_rows=op.rejected_rows, row_errors=op.row_errors,
            updated_at=ctx.now))
        ctx.results[index] = op.state


def abort(ctx: BatchContext, by_kind: Items) -> None:
    for index, op in by_kind[AbortJob]:
        ctx.results[index] = _abort(ctx, op)


def _abort(ctx: BatchContext, op: AbortJob) -> int:
    j, m = t.jobs.c, t.messages.c
    conn = ctx.conn
    row = conn.execute(select(j.account_id, j.points).where(
        j.id == op.job_id, j.state == JobState.CREATING)).first()
    if row is None:
        return 0
    _unroll(ctx, row.account_id, op.job_id)
    ctx.touch_everything()  # its messages go; another writer forgets all it knows (rare)
    ids = select(m.id).where(m.job_id == op.job_id).scalar_subquery()
    conn.execute(t.parts.delete().where(t.parts.c.message_id.in_(ids)))
    conn.execute(t.messages.delete().where(m.job_id == op.job_id))
    conn.execute(t.jobs.delete().where(j.id == op.job_id))
    ledger.refund(ctx, {row.account_id: row.points})
    return row.points


def _unroll(ctx: BatchContext, account_id: int, job_id: str) -> None:
    """Take a job's messages out of the reports' rollups before they are deleted. A
    job's messages are written within minutes, so each (status, error) group almost
    always lies in one 15-minute slot: one row per group; otherwise its messages are
    read one by one (an abort is rare)."""
    m = t.messages.c
    groups = ctx.conn.execute(select(
        m.status, m.error_code, func.min(m.id), func.max(m.id), func.count(),
        func.sum(m.parts), func.sum(m.points), func.sum(m.refunded)).where(
        m.job_id == job_id).group_by(m.status, m.error_code)).all()
    for status, error, low, high, count, parts, points, refunded in groups:
        if slot_of(low) == slot_of(high):
            ctx.rollups.add_sums((account_id, slot_of(low), status, error or ""),
                                 -count, -int(parts), -int(points), -int(refunded))
            continue
        same_error = m.error_code.is_(None) if error is None else m.error_code == error
        for row in ctx.conn.execute(select(m.id, m.parts, m.points, m.refunded).where(
                m.job_id == job_id, m.status == status, same_error)):
            ctx.rollups.add(account_id, row.id, status, error, row.parts, row.points,
                            row.refunded, -1)


def _state(ctx: BatchContext, job_id: str, account_id: int) -> str | None:
    j = t.jobs.c
    return ctx.conn.execute(select(j.state).where(
        j.id == job_id, j.account_id == account_id)).scalar()


def set_state(ctx: BatchContext, by_kind: Items) -> None:
    for index, op in by_kind[SetJobState]:
        state = _state(ctx, op.job_id, op.account_id)
        if state is None or state == op.state or state not in op.allowed_from:
            # Idempotent, and a stopped or completed job stays so.
            ctx.results[index] = state
            continue
        ctx.conn.execute(update(t.jobs).where(t.jobs.c.id == op.job_id).values(
            state=op.state, updated_at=ctx.now))
        ctx.results[index] = op.state


def stop(ctx: BatchContext, by_kind: Items) -> None:
    for index, op in by_kind[StopJob]:
        ctx.results[index] = _stop(ctx, op)


def _stop(ctx: BatchContext, op: StopJob) -> tuple[int, int] | None:
    j, m, p = t.jobs.c, t.messages.c, t.parts.c
    conn = ctx.conn
    state = _state(ctx, op.job_id, op.account_id)
    if state is None or state == JobState.CREATING:
        return None  # a job still being written does not exist yet
    # Only messages not even partly sent: a part out of the door is the carrier's.
    started = select(p.message_id).where(p.message_id == m.id, p.status != Status.QUEUED)
    query = select(m.id, m.points, m.parts, m.error_code, m.refunded).where(
        m.job_id == op.job_id, m.status == Status.QUEUED, ~started.exists())
    if op.owner is not None:  # issue 14: not what another live instance is sending
        # Locked as read: an instance leasing the job's next page meanwhile skips them
        # (its lease is FOR UPDATE SKIP LOCKED) instead of taking, warming and sending
        # a message this stop cancels and refunds; one it is leasing now is skipped
        # here (it cancels what it holds itself once it sees the stop).
        query = query.where(leases.not_held_elsewhere(op.owner)).with_for_update(
            of=t.messages, skip_locked=True)
    rows = conn.execute(query).all()
    cancelled = [row for row in rows if row.id not in op.in_flight]
    refund = sum(row.points for row in cancelled)
    ids = [row.id for row in cancelled]
    for row in cancelled:
        ctx.rollups.move(op.account_id, row.id, row.parts, row.points,
                         (Status.QUEUED, row.error_code, row.refunded),
                         (Status.CANCELLED, row.error_code, row.points))
    for chunk in chunks(ids):
        conn.execute(update(t.messages).where(m.id.in_(chunk)).values(
            status=Status.CANCELLED, refunded=m.points, updated_at=ctx.now,
            final_at=ctx.now))
        conn.execute(update(t.parts).where(p.message_id.in_(chunk)).values(
            status=Status.CANCELLED, updated_at=ctx.now))
    ctx.sql.run(conn, INSERT_EVENT, [(message_id, None, Status.CANCELLED, "job stopped",
                                      ctx.stamp) for message_id in ids])
    outbox.message_events(ctx, [(message_id, op.account_id, Status.CANCELLED, "job stopped")
                                for message_id in ids])
    for message_id in ids:
        ctx.cache.forget(message_id)
    ctx.touch(ids)
    ledger.refund(ctx, {op.account_id: refund})
    conn.execute(update(t.jobs).where(j.id == op.job_id).values(
        state=JobState.STOPPED if state != JobState.COMPLETED else state,
        refunded=j.refunded + refund, updated_at=ctx.now))
    return len(ids), refund
