"""Reads: what the API, recovery at start and the dispatcher's refill ask for.
Each runs on a thread-pool thread with its own connection, never on the reactor."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, func, select

from ..explain import describe_error
from ..status import DESCRIPTIONS, JobState, Status
from . import schema as t
from .sql import utc


class QueuedMessage(NamedTuple):
    """A message with parts still to send, as the dispatcher needs it. A tuple: one
    is made per message accepted over the API and per row of every page the
    dispatcher loads, and a frozen dataclass of twelve fields cost about 3 µs to
    make against under 1 (setting each field through object.__setattr__)."""

    id: str
    sender: str
    recipient: str
    text: str
    encoding: str
    parts: int
    concat_ref: int
    smsc: str | None
    unsent: tuple[int, ...]  # part numbers still `queued`
    job_id: str | None = None
    account_id: int = 0
    points: int = 0


@dataclass(frozen=True, slots=True)
class MessageFilter:
    sender: str | None = None
    recipient: str | None = None
    status: str | None = None
    job: str | None = None
    min_id: str | None = None  # from `since`
    max_id: str | None = None  # from `until`
    channel: str | None = None  # issue 10
    ref_id: str | None = None
    partner: str | None = None


def seed_accounts(conn: Connection, accounts: list[tuple[str, int]]) -> dict[str, int]:
    """Create accounts named in the configuration that the database lacks, with their
    configured balance. An existing account keeps its balance: the configuration
    seeds it, it does not reset what customers have spent."""
    existing = dict(conn.execute(select(t.accounts.c.name, t.accounts.c.id)).all())
    for name, balance in accounts:
        if name not in existing:
            existing[name] = conn.execute(t.accounts.insert().values(
                name=name, balance=balance, created_at=utc())).inserted_primary_key[0]
    return existing


def balance(conn: Connection, account_id: int) -> int | None:
    return conn.execute(select(t.accounts.c.balance).where(
        t.accounts.c.id == account_id)).scalar()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds") + "Z"


_SUMMARY = (t.messages.c.id, t.messages.c.job_id, t.messages.c.sender, t.messages.c.recipient,
            t.messages.c.status, t.messages.c.parts, t.messages.c.encoding,
            t.messages.c.points, t.messages.c.refunded, t.messages.c.error_code,
            t.messages.c.ref_id, t.messages.c.created_at, t.messages.c.submitted_at,
            t.messages.c.final_at, t.messages.c.updated_at, t.messages.c.channel,
            t.messages.c.sent_by, t.messages.c.partner, t.messages.c.text,
            t.messages.c.params, t.messages.c.callback_id)


def _summary(row: Any) -> dict[str, Any]:
    return {"id": row.id, "job": row.job_id, "from": row.sender, "to": "+" + row.recipient,
            "status": row.status, "parts": row.parts, "encoding": row.encoding,
            "points": row.points, "refunded": row.refunded, "error_code": row.error_code,
            "ref_id": row.ref_id, "params": json.loads(row.params) if row.params else None,
            "partner": row.partner, "callback": row.callback_id,
            "created_at": _iso(row.created_at),
            "submitted_at": _iso(row.submitted_at), "final_at": _iso(row.final_at),
            "updated_at": _iso(row.updated_at),
            "status_description": DESCRIPTIONS.get(row.status, ""),
            "error_description": describe_error(row.error_code), "channel": row.channel,
            "sent_by": row.sent_by, "text": row.text}


def get_message(conn: Connection, account_id: int, message_id: str) -> dict[str, Any] | None:
    """One message of this account, with parts and history; None for another
    account's message, so the API answers 404 and leaks nothing."""
    row = conn.execute(select(*_SUMMARY).where(and_(
        t.messages.c.id == message_id, t.messages.c.account_id == account_id))).first()
    if row is None:
        return None
    message = _summary(row)
    message.update(message_details(conn, {message_id: message["created_at"]})[message_id])
    return message


def message_details(conn: Connection, created: dict[str, str | None],
                    ) -> dict[str, dict[str, Any]]:
    """Parts (with SMSC ids) and history of several messages in two queries, for one
    message (the API) or a page of them (the portal's history rows). `created`: id ->
    its created_at as _summary gives it, for messages the caller already read scoped
    to its account."""
    # `queued` is not stored as an event: it is the message's creation itself.
    details: dict[str, dict[str, Any]] = {
        message_id: {"part_list": [], "history": [{"status": Status.QUEUED, "part": None,
                                                   "error_code": None, "at": at}]}
        for message_id, at in created.items()}
    if not created:
        return details
    for p in conn.execute(select(t.parts).where(t.parts.c.message_id.in_(list(created)))
                          .order_by(t.parts.c.message_id, t.parts.c.part_no)):
        details[p.message_id]["part_list"].append(
            {"part": p.part_no, "status": p.status, "smsc": p.smsc, "smsc_id": p.smsc_id,
             "error_code": p.error_code, "submitted_at": _iso(p.submitted_at),
             "updated_at": _iso(p.updated_at)})
    e = t.message_events.c
    for event in conn.execute(select(t.message_events).where(
            e.message_id.in_(list(created))).order_by(e.id)):
        details[event.message_id]["history"].append(
            {"status": event.status, "part": event.part_no, "error_code": event.error_code,
             "at": _iso(event.at)})
    return details


def list_messages(conn: Connection, account_id: int, where: MessageFilter,
                  cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first; `cursor` is the last id of the previous page."""
    m = t.messages.c
    conditions = [m.account_id == account_id]
    if where.sender is not None:
        conditions.append(m.sender == where.sender)
    if where.recipient is not None:
        conditions.append(m.recipient == where.recipient)
    if where.status is not None:
        conditions.append(m.status == where.status)
    if where.job is not None:
        conditions.append(m.job_id == where.job)
    if where.channel is not None:  # issue 10
        conditions.append(m.channel == where.channel)
    if where.ref_id is not None:
        conditions.append(m.ref_id == where.ref_id)
    if where.partner is not None:
        conditions.append(m.partner == where.partner)
    if where.min_id is not None:
        conditions.append(m.id >= where.min_id)
    if where.max_id is not None:
        conditions.append(m.id <= where.max_id)
    if cursor is not None:
        conditions.append(m.id < cursor)
    rows = conn.execute(select(*_SUMMARY).where(and_(*conditions)).order_by(m.id.desc())
                        .limit(limit + 1)).all()
    page = [_summary(row) for row in rows[:limit]]
    return page, (page[-1]["id"] if len(rows) > limit else None)


def load_queued(conn: Connection, after_id: str,
                limit: int) -> tuple[list[QueuedMessage], str | None]:
    """The next messages with work left, oldest first (the dispatcher's refill), and
    the id to continue after (None when the backlog is exhausted)."""
    m = t.messages.c
    return _queued(conn, and_(m.status == Status.QUEUED, m.job_id.is_(None), m.id > after_id),
                   limit)


def load_job_queued(conn: Connection, job_id: str, after_id: str,
                    limit: int) -> tuple[list[QueuedMessage], str | None]:
    """The next messages of one job with work left, in id order (a job's feeder)."""
    m = t.messages.c
    return _queued(conn, and_(m.job_id == job_id, m.status == Status.QUEUED, m.id > after_id),
                   limit)


def _queued(conn: Connection, condition: Any,
            limit: int) -> tuple[list[QueuedMessage], str | None]:
    m = t.messages.c
    rows = conn.execute(select(m.id, m.sender, m.recipient, m.text, m.encoding, m.parts,
                               m.concat_ref, m.smsc, m.job_id, m.account_id, m.points)
                        .where(condition).order_by(m.id)
                        .limit(limit)).all()
    if not rows:
        return [], None
    unsent: dict[str, list[int]] = defaultdict(list)
    ids = [row[0] for row in rows]
    for start in range(0, len(ids), 500):
        for message_id, part_no in conn.execute(select(t.parts.c.message_id, t.parts.c.part_no)
                                                .where(and_(t.parts.c.message_id.in_(
                                                    ids[start:start + 500]),
                                                    t.parts.c.status == Status.QUEUED))):
            unsent[message_id].append(part_no)
    # Rows unpacked by position: a Row's attribute access by name costs about ten
    # times an unpacking, and a job's pages are read a message at a time.
    found = [QueuedMessage(id_, sender, recipient, text, encoding, parts, concat_ref, smsc,
                           tuple(sorted(unsent[id_])), job_id, account_id, points)
             for id_, sender, recipient, text, encoding, parts, concat_ref, smsc, job_id,
             account_id, points in rows if unsent[id_]]
    return found, ids[-1]


def get_job(conn: Connection, account_id: int, job_id: str) -> dict[str, Any] | None:
    """A job of this account with counts per message status; None for another's."""
    j = t.jobs.c
    row = conn.execute(select(t.jobs).where(j.id == job_id, j.account_id == account_id)).first()
    if row is None:
        return None
    m = t.messages.c
    counts, parts = {}, 0
    for status, count, part_count in conn.execute(
            select(m.status, func.count(), func.sum(m.parts)).where(
                m.account_id == account_id, m.job_id == job_id).group_by(m.status)):
        counts[status] = count
        parts += part_count or 0
    return {"id": row.id, "name": row.name, "from": row.sender, "text": row.text,
            "state": row.state, "counts": counts, "messages": row.recipients, "parts": parts,
            "rejected_rows": row.rejected_rows,
            "row_errors": json.loads(row.row_errors) if row.row_errors else [],
            "points": row.points, "refunded": row.refunded, "throughput": row.throughput,
            "ref_id": row.ref_id, "params": json.loads(row.params) if row.params else None,
            "partner": row.partner, "callback": row.callback_id,
            "shorten_links": bool(row.shorten_links),
            "start_at": _iso(row.start_at), "created_at": _iso(row.created_at),
            "updated_at": _iso(row.updated_at)}


def job_queued_count(conn: Connection, job_id: str) -> int:
    m = t.messages.c
    return conn.execute(select(func.count()).select_from(t.messages).where(
        m.job_id == job_id, m.status == Status.QUEUED)).scalar() or 0


def jobs_in_state(conn: Connection, state: str) -> list[str]:
    return list(conn.execute(select(t.jobs.c.id).where(t.jobs.c.state == state)).scalars())


def active_jobs(conn: Connection) -> list[tuple[str, int, str, float | None, datetime | None]]:
    """Jobs a starting daemon must feed or wake: (id, account, state, cap, start_at)."""
    j = t.jobs.c
    return [tuple(row) for row in conn.execute(
        select(j.id, j.account_id, j.state, j.throughput, j.start_at).where(
            j.state.in_((JobState.SCHEDULED, JobState.RUNNING, JobState.PAUSED)))
        .order_by(j.id))]


def count_pending_receipts(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(t.pending_receipts)).scalar() or 0


def unassembled_fragments(conn: Connection, max_age: float) -> list[Any]:
    """MO parts kept but not yet part of a whole message, younger than `max_age`
    seconds (older ones were given up on; they stay in the table for inspection)."""
    f = t.inbound_fragments.c
    since = utc(datetime.now(UTC).timestamp() - max_age)
    return conn.execute(select(t.inbound_fragments).where(
        f.inbound_id.is_(None), f.received_at >= since).order_by(f.id)).all()


def ledger(conn: Connection, account_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """The account's balance changes other than message charges, newest first."""
    e = t.ledger_entries.c
    return [{"id": row.id, "kind": row.kind, "points": row.points,
             "balance_after": row.balance_after, "reference": row.reference, "note": row.note,
             "created_by": row.created_by, "created_at": _iso(row.created_at)}
            for row in conn.execute(select(t.ledger_entries).where(e.account_id == account_id)
                                    .order_by(e.id.desc()).limit(limit))]


def id_modes(conn: Connection) -> list[tuple[str, str, str]]:
    """Learnt receipt id readings: (smsc, source, reading)."""
    m = t.smsc_id_modes.c
    return [tuple(row) for row in conn.execute(select(m.smsc, m.source, m.reading))]
