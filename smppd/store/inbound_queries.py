"""Reads of the inbound domain (issue 11), on the read pool: numbers, the inbound
list, the phonebook, polls and their statistics. (The inbound reports are made by
the reports subsystem: smppd.reports.inbound_documents.)

Every read is scoped to one account, so another account's data is absent (404),
never shown. Reports and statistics are aggregated in SQL (GROUP BY over an index
that covers them), never counted row by row in Python.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from ..inbound.polls import OUTCOMES
from ..inbound.pool import Pool, display
from . import schema as t
from .sql import utc


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


# Numbers ------------------------------------------------------------------------------

def numbers(conn: Connection, account_id: int, pool: Pool) -> dict[str, Any]:
    """The account's numbers (reservations current and future, and numbers the
    operator assigned to it) with their settings; and the pool's numbers it could
    reserve, with their price."""
    r, s = t.inbound_reservations.c, t.inbound_settings.c
    now = utc()
    settings = {(row.number, row.prefix_key): row for row in conn.execute(
        select(t.inbound_settings).where(s.account_id == account_id))}
    held = []
    for number, spec in pool.numbers.items():
        if pool.holders.get(number) == account_id:
            held.append(_held(number, spec.kind, None, "", None, None, settings))
    for row in conn.execute(select(t.inbound_reservations).where(
            r.account_id == account_id, or_(r.ends_at.is_(None), r.ends_at > now))
            .order_by(r.number, r.prefix_key, r.starts_at)):
        spec = pool.get(row.number)
        held.append(_held(row.number, spec.kind if spec else "unknown", row.prefix,
                          row.prefix_key, row.starts_at, row.ends_at, settings))
    taken = {row.number for row in conn.execute(select(r.number).where(
        r.prefix_key == "", or_(r.ends_at.is_(None), r.ends_at > now)))}
    available = [{"number": display(number), "kind": spec.kind,
                  "price": {"reservation": spec.reservation_fee, "monthly": spec.monthly_fee}}
                 for number, spec in sorted(pool.numbers.items())
                 if spec.kind != "shortcode" and number not in pool.holders
                 and (spec.kind == "shared" or number not in taken)]
    return {"numbers": held, "available": available}


def _held(number: str, kind: str, prefix: str | None, key: str, starts: datetime | None,
          ends: datetime | None, settings: dict[tuple[str, str], Any]) -> dict[str, Any]:
    setting = settings.get((number, key))
    auto_reply = None
    forward: dict[str, Any] = {"email": [], "sms": [], "url": None}
    if setting is not None:
        if setting.auto_reply_text:
            auto_reply = {"from": setting.auto_reply_from, "text": setting.auto_reply_text}
        forward = {"email": json.loads(setting.forward_email or "[]"),
                   "sms": ["+" + n for n in json.loads(setting.forward_sms or "[]")],
                   "url": setting.forward_url}
    now = utc()
    active = (starts is None or starts <= now) and (ends is None or now < ends)
    return {"number": display(number), "kind": kind, "prefix": prefix,
            "from": _iso(starts), "until": _iso(ends), "active": active,
            "auto_reply": auto_reply, "forward": forward}


# The inbound list and reports -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class InboundFilter:
    since: float | None = None
    until: float | None = None
    number: str | None = None  # digits
    sender: str | None = None  # digits


def inbound_conditions(account_id: int | None, where: InboundFilter) -> list[Any]:
    """The filter of the inbound list, shared with the inbound reports (smppd.reports)."""
    m = t.inbound_messages.c
    conditions = [m.account_id.is_(None) if account_id is None else m.account_id == account_id]
    if where.since is not None:
        conditions.append(m.received_at >= utc(where.since))
    if where.until is not None:
        conditions.append(m.received_at < utc(where.until))
    if where.number is not None:
        conditions.append(m.destination.in_((where.number, "+" + where.number)))
    if where.sender is not None:
        conditions.append(m.source.in_((where.sender, "+" + where.sender)))
    return conditions


def _item(row: Any) -> dict[str, Any]:
    return {"id": row.id, "from": _plus(row.source), "to": _plus(row.destination),
            "prefix": row.prefix, "text": row.text, "body": row.body,
            "received_at": _iso(row.received_at), "parts": row.parts}


def _plus(address: str) -> str:
    return display(address.removeprefix("+"))


def list_inbound(conn: Connection, account_id: int | None, where: InboundFilter,
                 cursor: int | None, limit: int) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first, keyset paging by id (`cursor`: the last id of the previous page).
    `account_id` None lists the unassigned messages (for the operator)."""
    m = t.inbound_messages.c
    conditions = inbound_conditions(account_id, where)
    if cursor is not None:
        conditions.append(m.id < cursor)
    rows = conn.execute(select(m.id, m.source, m.destination, m.prefix, m.text, m.body,
                               m.received_at, m.parts, m.reason)
                        .where(and_(*conditions)).order_by(m.id.desc()).limit(limit + 1)).all()
    page = []
    for row in rows[:limit]:
        item = _item(row)
        if account_id is None:
            item["reason"] = row.reason
        page.append(item)
    return page, (page[-1]["id"] if len(rows) > limit else None)


# Phonebook ------------------------------------------------------------------------------

def _contact(row: Any, groups: list[str]) -> dict[str, Any]:
    return {"phone": "+" + row.phone, "first_name": row.first_name, "last_name": row.last_name,
            "email": row.email, "fields": json.loads(row.fields) if row.fields else {},
            "groups": groups}


def contacts(conn: Connection, account_id: int, group: str | None, cursor: int | None,
             limit: int) -> tuple[list[dict[str, Any]], int | None] | None:
    """A page of contacts by id; None when `group` is not a group of this account."""
    c, m, g = t.contacts.c, t.contact_group_members.c, t.contact_groups.c
    query = select(t.contacts).where(c.account_id == account_id)
    if group is not None:
        group_id = conn.execute(select(g.id).where(g.account_id == account_id,
                                                   g.name == group)).scalar()
        if group_id is None:
            return None
        query = query.where(c.id.in_(select(m.contact_id).where(m.group_id == group_id)))
    if cursor is not None:
        query = query.where(c.id > cursor)
    rows = conn.execute(query.order_by(c.id).limit(limit + 1)).all()
    rows, more = rows[:limit], len(rows) > limit
    groups: dict[int, list[str]] = {row.id: [] for row in rows}
    if rows:
        for contact_id, name in conn.execute(
                select(m.contact_id, g.name).select_from(t.contact_group_members.join(
                    t.contact_groups, g.id == m.group_id)).where(
                    m.contact_id.in_(list(groups))).order_by(g.name)):
            groups[contact_id].append(name)
    page = [_contact(row, groups[row.id]) for row in rows]
    return page, (rows[-1].id if more else None)


def contact(conn: Connection, account_id: int, phone: str) -> dict[str, Any] | None:
    c = t.contacts.c
    row = conn.execute(select(t.contacts).where(c.account_id == account_id,
                                                c.phone == phone)).first()
    if row is None:
        return None
    m, g = t.contact_group_members.c, t.contact_groups.c
    names = list(conn.execute(select(g.name).select_from(t.contact_group_members.join(
        t.contact_groups, g.id == m.group_id)).where(m.contact_id == row.id)
        .order_by(g.name)).scalars())
    return _contact(row, names)


def groups(conn: Connection, account_id: int) -> list[dict[str, Any]]:
    g, m = t.contact_groups.c, t.contact_group_members.c
    return [{"name": name, "contacts": count} for name, count in conn.execute(
        select(g.name, func.count(m.contact_id)).select_from(t.contact_groups.outerjoin(
            t.contact_group_members, m.group_id == g.id)).where(g.account_id == account_id)
        .group_by(g.name).order_by(g.name))]


def group_recipients(conn: Connection, account_id: int, group: str,
                     ) -> Iterator[tuple[int, dict[str, Any]]] | None:
    """A group's members as job rows: {"to", "first_name", "last_name", "email",
    custom fields...}; None when there is no such group."""
    c, m, g = t.contacts.c, t.contact_group_members.c, t.contact_groups.c
    group_id = conn.execute(select(g.id).where(g.account_id == account_id,
                                               g.name == group)).scalar()
    if group_id is None:
        return None
    rows = conn.execute(select(t.contacts).where(c.id.in_(
        select(m.contact_id).where(m.group_id == group_id))).order_by(c.id))
    return ((n, {**(json.loads(row.fields) if row.fields else {}), "to": "+" + row.phone,
                 "first_name": row.first_name or "", "last_name": row.last_name or "",
                 "email": row.email or ""}) for n, row in enumerate(rows, 1))


# Polls -----------------------------------------------------------------------------------

def poll(conn: Connection, account_id: int, poll_id: str) -> dict[str, Any] | None:
    p, o = t.polls.c, t.poll_options.c
    row = conn.execute(select(t.polls).where(p.id == poll_id,
                                             p.account_id == account_id)).first()
    if row is None:
        return None
    options = [{"keyword": opt.keyword, "reply": opt.reply} for opt in conn.execute(
        select(t.poll_options).where(o.poll_id == poll_id).order_by(o.option_no))]
    return {"id": row.id, "name": row.name, "number": display(row.number),
            "prefix": row.prefix,
            "starts_at": _iso(row.starts_at), "ends_at": _iso(row.ends_at),
            "from": row.sender, "options": options, "replies": json.loads(row.replies),
            "limit": {"votes": row.limit_votes, "per_seconds": row.limit_seconds},
            "groups": json.loads(row.groups) if row.groups else [],
            "discount_pool": row.discount_pool, "created_at": _iso(row.created_at)}


def poll_tally(conn: Connection, found: dict[str, Any],
               ids: tuple[str, str] | None = None) -> dict[str, Any]:
    """Counts per option and per outcome of a poll (`found`: poll()) in one GROUP BY
    over ix_poll_votes_stats (poll_id, outcome, option_no), which covers it; `ids`
    keeps to the votes with ids in [low, high) (vote ids are time-ordered: a period).
    Percentages: of accepted votes per option, of all votes per outcome."""
    v = t.poll_votes.c
    conditions = [v.poll_id == found["id"]]
    if ids is not None:
        conditions += [v.id >= ids[0], v.id < ids[1]]
    by_outcome = dict.fromkeys(OUTCOMES, 0)
    by_option: dict[int, int] = {}
    for outcome, option_no, count in conn.execute(
            select(v.outcome, v.option_no, func.count()).where(and_(*conditions))
            .group_by(v.outcome, v.option_no)):
        by_outcome[outcome] = by_outcome.get(outcome, 0) + count
        if outcome == "accepted" and option_no is not None:
            by_option[option_no] = count
    accepted, total = by_outcome["accepted"], sum(by_outcome.values())
    options = [{"keyword": option["keyword"], "votes": by_option.get(n, 0),
                "percent": _percent(by_option.get(n, 0), accepted)}
               for n, option in enumerate(found["options"], 1)]
    return {"id": found["id"], "name": found["name"], "accepted": accepted,
            "refused": {k: n for k, n in by_outcome.items() if k != "accepted"},
            "total": total, "options": options,
            "outcomes": [{"outcome": k, "votes": n, "percent": _percent(n, total)}
                         for k, n in by_outcome.items()]}


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def poll_stats(conn: Connection, account_id: int, poll_id: str, cursor: str | None,
               limit: int) -> dict[str, Any] | None:
    """The tally and the received messages a page at a time, newest first."""
    found = poll(conn, account_id, poll_id)
    if found is None:
        return None
    stats = poll_tally(conn, found)
    del stats["outcomes"]
    messages, next_cursor = poll_votes(conn, poll_id, cursor, limit)
    return {**stats, "messages": messages, "next_cursor": next_cursor}


def poll_votes(conn: Connection, poll_id: str, cursor: str | None,
               limit: int | None) -> tuple[list[dict[str, Any]], str | None]:
    v, o = t.poll_votes.c, t.poll_options.c
    query = (select(v.id, v.sender, v.answer, v.outcome, v.code, v.received_at, o.keyword)
             .select_from(t.poll_votes.outerjoin(t.poll_options, and_(
                 o.poll_id == v.poll_id, o.option_no == v.option_no)))
             .where(v.poll_id == poll_id))
    if cursor is not None:
        query = query.where(v.id < cursor)
    query = query.order_by(v.id.desc())
    if limit is not None:
        query = query.limit(limit + 1)
    rows = conn.execute(query).all()
    page = [{"id": row.id, "from": _plus(row.sender), "text": row.answer,
             "option": row.keyword, "outcome": row.outcome, "code": row.code,
             "received_at": _iso(row.received_at)} for row in rows[:limit]]
    more = limit is not None and len(rows) > limit
    return page, (page[-1]["id"] if more else None)


def iter_votes(conn: Connection, account_id: int, poll_id: str,
               ) -> Iterator[tuple[Any, ...]] | None:
    """Every vote for the CSV export, oldest first."""
    if conn.execute(select(t.polls.c.id).where(t.polls.c.id == poll_id,
                                               t.polls.c.account_id == account_id)).first() \
            is None:
        return None
    v, o = t.poll_votes.c, t.poll_options.c
    rows = conn.execute(select(v.received_at, v.sender, v.answer, o.keyword, v.outcome, v.code)
                        .select_from(t.poll_votes.outerjoin(t.poll_options, and_(
                            o.poll_id == v.poll_id, o.option_no == v.option_no)))
                        .where(v.poll_id == poll_id).order_by(v.id))
    return ((_iso(row.received_at), _plus(row.sender), row.answer or "", row.keyword or "",
             row.outcome, row.code or "") for row in rows)


VOTES_HEADER = ("received_at", "sender", "text", "option", "outcome", "code")


def unassigned_count(conn: Connection) -> int:
    m = t.inbound_messages.c
    return conn.execute(select(func.count()).select_from(t.inbound_messages).where(
        m.account_id.is_(None), m.route == "unassigned")).scalar() or 0


def due_forwards(conn: Connection, limit: int = 100) -> list[Any]:
    """E-mail forwards to send now, with the message they copy."""
    f, m = t.inbound_forwards.c, t.inbound_messages.c
    return conn.execute(select(f.id, f.recipients, f.attempts, m.source, m.destination,
                               m.text, m.received_at, m.prefix)
                        .select_from(t.inbound_forwards.join(
                            t.inbound_messages, m.id == f.inbound_id))
                        .where(f.state == "pending", f.next_attempt_at <= utc())
                        .order_by(f.id).limit(limit)).all()


def timestamp(value: datetime) -> float:
    return value.replace(tzinfo=UTC).timestamp()
