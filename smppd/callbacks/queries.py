"""Reads for callbacks and links: endpoints and their deliveries for the API, what is
due for the drainer, the outbox's depth for metrics, a message's links. (Clicks as
reports count them, a job's CTR included, are in smppd.reports.queries.) Each
runs on a read-pool thread with its own connection, never on the reactor."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select, text

from ..store import outbox
from ..store import schema as t
from ..store.sql import chunks
from .endpoints import Endpoint
from .payload import body, iso, message_data

_EP, _EV, _M = t.callback_endpoints.c, t.callback_events.c, t.messages.c
# Literal, not a parameter: SQLite (and PostgreSQL's generic plans) can use the
# partial index of pending events only when the condition is written out.
_PENDING = text("callback_events.state = 'pending'")


def _unix(value: datetime) -> float:
    return value.replace(tzinfo=UTC).timestamp()


# Endpoints ------------------------------------------------------------------------

def all_endpoints(conn: Connection) -> list[Endpoint]:
    return [Endpoint(row.id, row.account_id, row.url, bool(row.is_default))
            for row in conn.execute(select(_EP.id, _EP.account_id, _EP.url, _EP.is_default)
                                    .where(_EP.deleted_at.is_(None)))]


def list_endpoints(conn: Connection, account_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(select(t.callback_endpoints).where(
        _EP.account_id == account_id, _EP.deleted_at.is_(None)).order_by(_EP.id)).all()
    counts: dict[tuple[str, str], int] = {}
    if rows:
        for target, state, count in conn.execute(
                select(_EV.target, _EV.state, func.count()).where(
                    _EV.target.in_([row.id for row in rows]),
                    _EV.state.in_((outbox.PENDING, outbox.FAILED)))
                .group_by(_EV.target, _EV.state)):
            counts[(target, state)] = count
    return [{"id": row.id, "url": row.url,
             "events": outbox.events_of(row.on_status, row.on_final, row.on_inbound),
             "default": bool(row.is_default), "created_at": iso(row.created_at),
             "pending": counts.get((row.id, outbox.PENDING), 0),
             "failed": counts.get((row.id, outbox.FAILED), 0)} for row in rows]


def deliveries(conn: Connection, account_id: int, endpoint_id: str, state: str | None,
               cursor: int | None, limit: int) -> tuple[list[dict[str, Any]], int | None] | None:
    """An endpoint's events, newest first; None when it is not this account's."""
    owner = conn.execute(select(_EP.account_id).where(_EP.id == endpoint_id)).scalar()
    if owner != account_id:
        return None
    conditions = [_EV.target == endpoint_id]
    if state is not None:
        conditions.append(_EV.state == state)
    if cursor is not None:
        conditions.append(_EV.seq < cursor)
    rows = conn.execute(select(t.callback_events).where(and_(*conditions))
                        .order_by(_EV.seq.desc()).limit(limit + 1)).all()
    page = [{"id": row.id, "type": row.type, "message_id": row.message_id,
             "status": row.status, "state": row.state, "attempts": row.attempts,
             "last_error": row.last_error, "last_http_status": row.last_status,
             "created_at": iso(row.at),
             "next_attempt_at": iso(row.next_at) if row.state == outbox.PENDING else None,
             "finished_at": iso(row.finished_at)} for row in rows[:limit]]
    return page, (rows[limit - 1].seq if len(rows) > limit else None)


def failed_events(conn: Connection, account_id: int | None,
                  limit: int) -> list[dict[str, Any]]:
    """Failed deliveries, newest first: one account's, or every account's (None: the
    operator's console). The URL is the endpoint's, or the forward URL the event
    was sent to."""
    query = select(_EV.id, _EV.account_id, _EV.target, _EV.url, _EV.type, _EV.attempts,
                   _EV.last_error, _EV.last_status, _EV.finished_at, _EV.at,
                   _EP.url.label("endpoint_url")).select_from(
        t.callback_events.outerjoin(t.callback_endpoints, _EP.id == _EV.target)).where(
        _EV.state == outbox.FAILED)
    if account_id is not None:
        query = query.where(_EV.account_id == account_id)
    rows = conn.execute(query.order_by(_EV.seq.desc()).limit(limit)).all()
    return [{"id": row.id, "account_id": row.account_id,
             "callback": None if row.url else row.target,
             "url": row.url or row.endpoint_url, "type": row.type, "attempts": row.attempts,
             "last_error": row.last_error, "last_http_status": row.last_status,
             "at": iso(row.finished_at or row.at), "created_at": iso(row.at)}
            for row in rows]


# The drainer ------------------------------------------------------------------------

@dataclass(slots=True)
class Event:
    """One event to deliver, with its body built and its key found."""

    seq: int
    id: str
    account_id: int
    target: str
    url: str | None
    secret: str | None
    type: str
    body: str
    at: float  # when the event happened (Unix seconds): its age decides giving up
    attempts: int


def _select() -> Any:
    ws = t.webhook_secrets.c
    return (select(_EV.seq, _EV.id, _EV.account_id, _EV.target, _EV.url, _EV.type,
                   _EV.message_id, _EV.status, _EV.error_code, _EV.data, _EV.at,
                   _EV.attempts, _EP.url.label("endpoint_url"),
                   _EP.secret.label("endpoint_secret"), _EP.deleted_at,
                   ws.secret.label("account_secret"), _M.ref_id, _M.params, _M.partner,
                   _M.parts, _M.sender, _M.recipient, _M.job_id,
                   _M.created_at.label("message_created"))
            .select_from(t.callback_events
                         .outerjoin(t.callback_endpoints, _EP.id == _EV.target)
                         .outerjoin(t.webhook_secrets, ws.account_id == _EV.account_id)
                         .outerjoin(t.messages, _M.id == _EV.message_id)))


def _events(rows: Any) -> list[Event]:
    """Rows of _select() as Events. Unpacked as tuples, in _select()'s column order:
    a named attribute of a Row costs about a microsecond, and a body needs some thirty
    of them (the drainer's read thread was the backlog's bottleneck, bench/callbacks.py
    phase 3)."""
    events = []
    append = events.append
    for (seq, event_id, account_id, target, url, event_type, message_id, status,
         error_code, data, at, attempts, endpoint_url, endpoint_secret, deleted_at,
         account_secret, ref_id, params, partner, parts, sender, recipient, job_id,
         message_created) in rows:
        if data is not None:
            content = json.loads(data)
        elif message_id is not None:
            content = message_data(message_id, ref_id, params, partner, status, error_code,
                                   at, parts, sender, recipient, job_id, message_created)
        else:
            content = {}
        endpoint = endpoint_url is not None and deleted_at is None
        append(Event(seq, event_id, account_id, target, endpoint_url if endpoint else url,
                     endpoint_secret if endpoint else account_secret, event_type,
                     body(event_type, at, content), _unix(at), attempts))
    return events


def _fetched(conn: Connection, query: Any) -> list[Any]:
    """The rows of `query`, with the read transaction ended before their bodies are
    built (two thirds of a read's time): the worker runs at SCHED_IDLE and may wait
    long for a CPU in between, and on SQLite a snapshot held that long keeps the
    daemon's checkpoints from starting the WAL again from its beginning."""
    rows = conn.execute(query).all()
    conn.rollback()
    return rows


def first_pending(conn: Connection) -> int:
    """Where the drainer's reading starts: just before the oldest pending event (or at
    the newest event when none is pending)."""
    oldest = conn.execute(select(func.min(_EV.seq)).where(_PENDING)).scalar()
    if oldest is not None:
        return oldest - 1
    return conn.execute(select(func.max(_EV.seq))).scalar() or 0


def new_events(conn: Connection, after: int, exclude: Sequence[str],
               limit: int) -> tuple[list[Event], int]:
    """Pending events written after `after` (by seq: the order they were written),
    skipping `exclude` targets; and how far that read looked. The newest seq is taken
    first, so an event committed during the read is left for the next.

    Not filtered by due time: a new event is due at once, and retries keep their old
    seq, so only after a restart does this return events whose retry time has not
    come; they are tried then (a restart starts every back-off afresh)."""
    newest = conn.execute(select(func.max(_EV.seq))).scalar() or after
    if newest <= after:
        return [], newest  # nothing new: the idle tick costs one indexed max()
    query = _select().where(_EV.seq > after, _EV.seq <= newest, _PENDING).order_by(
        _EV.seq).limit(limit)
    if exclude:
        query = query.where(_EV.target.notin_(list(exclude)))
    events = _events(_fetched(conn, query))
    return events, (events[-1].seq if len(events) >= limit else newest)


def target_events(conn: Connection, target: str, now: datetime, limit: int,
                  after: int = 0) -> tuple[list[Event], int]:
    """One target's pending, due events written after `after` (0: all, retries
    included, after its back-off), in seq order; and the newest seq when it began.

    In seq order, not by due time: a page is then every due event of the target up
    to its last seq, so the next page starts there (by due time, fresh events due
    at once would come before older retries and a page would not be a prefix); and
    it is a range of the (target, state, seq) index, where ordering by due time
    sorted the target's whole backlog for each page (seconds per page, behind an
    endpoint that was down for a minute while sending went on)."""
    newest = conn.execute(select(func.max(_EV.seq))).scalar() or 0
    query = _select().where(_EV.target == target, _PENDING, _EV.next_at <= now,
                            _EV.seq <= newest, _EV.seq > after).order_by(_EV.seq)
    return _events(_fetched(conn, query.limit(limit))), newest


def due_events(conn: Connection, now: datetime, exclude: Sequence[str],
               limit: int) -> list[Event]:
    """Pending events due by `now`, oldest due first, skipping `exclude` targets: the
    drainer's sweep for anything the reads by seq passed over."""
    query = _select().where(_PENDING, _EV.next_at <= now).order_by(
        _EV.next_at, _EV.seq).limit(limit)
    if exclude:
        query = query.where(_EV.target.notin_(list(exclude)))
    return _events(_fetched(conn, query))


def outbox_depth(conn: Connection) -> list[tuple[int, int, float]]:
    """(account id, pending events, Unix time of the oldest) per account."""
    return [(account_id, count, _unix(oldest)) for account_id, count, oldest in conn.execute(
        select(_EV.account_id, func.count(), func.min(_EV.at)).where(_PENDING)
        .group_by(_EV.account_id))]


# Links of a message ----------------------------------------------------------------

def link_urls(conn: Connection, codes: Sequence[str]) -> dict[str, str]:
    """code -> URL for those of `codes` that name a link: the links listener's lookup
    of the codes its cache did not have, a batch at a time."""
    links = t.links.c
    found: dict[str, str] = {}
    for chunk in chunks(list(codes)):
        for code, url in conn.execute(select(links.code, links.url).where(
                links.code.in_(chunk))):
            found[code] = url
    return found


def message_links(conn: Connection, message_id: str) -> list[dict[str, Any]]:
    links = t.links.c
    return [{"code": row.code, "url": row.url, "clicks": row.clicks,
             "first_click_at": iso(row.first_click_at)}
            for row in conn.execute(select(t.links).where(links.message_id == message_id)
                                    .order_by(links.created_at, links.code))]


def message_with_links(conn: Connection, account_id: int,
                       message_id: str) -> dict[str, Any] | None:
    """GET /v1/messages/{id}: the message, and its short links with their clicks."""
    from ..store.queries import get_message

    message = get_message(conn, account_id, message_id)
    if message is not None:
        message["links"] = message_links(conn, message_id)
    return message
