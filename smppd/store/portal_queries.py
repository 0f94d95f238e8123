"""Reads of the portal's domain (issue 15), on the read pool: a session with its
user, users, the job list, today's counts and the operator's account list. Every
customer read is scoped to one account; the console's reads are the operator's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from ..inbound.pool import display
from . import schema as t
from .rollups import SLOT_SECONDS


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.replace(tzinfo=UTC).timestamp()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    kind: str  # user | operator
    csrf: str
    created_at: float
    last_seen_at: float
    operator: str | None = None
    user_id: int | None = None
    login: str | None = None
    role: str | None = None
    locale: str | None = None
    account_id: int | None = None
    account_name: str | None = None
    must_change_password: bool = False
    disabled: bool = False


def session(conn: Connection, session_id: str) -> SessionRow | None:
    """A session and, for a user's, the user and account as they are now (a role
    changed or a user disabled takes effect on the next request)."""
    s, u, a = t.portal_sessions.c, t.portal_users.c, t.accounts.c
    row = conn.execute(
        select(s.id, s.kind, s.csrf, s.created_at, s.last_seen_at, s.operator, s.user_id,
               u.login, u.role, u.locale, u.account_id, a.name.label("account_name"),
               u.must_change_password, u.disabled)
        .select_from(t.portal_sessions.outerjoin(t.portal_users, u.id == s.user_id)
                     .outerjoin(t.accounts, a.id == u.account_id))
        .where(s.id == session_id)).first()
    if row is None:
        return None
    if row.kind == "user" and row.login is None:
        return None  # the user was deleted
    return SessionRow(row.id, row.kind, row.csrf, _ts(row.created_at) or 0.0,
                      _ts(row.last_seen_at) or 0.0, row.operator, row.user_id, row.login,
                      row.role, row.locale, row.account_id, row.account_name,
                      bool(row.must_change_password), bool(row.disabled))


def user_by_login(conn: Connection, login: str) -> Any:
    u, a = t.portal_users.c, t.accounts.c
    return conn.execute(select(u.id, u.account_id, u.login, u.password_hash, u.role,
                               u.locale, u.disabled, u.must_change_password,
                               a.name.label("account_name"))
                        .select_from(t.portal_users.join(t.accounts, a.id == u.account_id))
                        .where(u.login == login)).first()


def password_hash(conn: Connection, user_id: int) -> str | None:
    return conn.execute(select(t.portal_users.c.password_hash).where(
        t.portal_users.c.id == user_id)).scalar()


def users(conn: Connection, account_id: int | None = None) -> list[dict[str, Any]]:
    """An account's users (None: every account's, for the console)."""
    u, a = t.portal_users.c, t.accounts.c
    query = (select(u.id, u.login, u.email, u.role, u.locale, u.disabled,
                    u.must_change_password, u.created_by, u.created_at, u.last_login_at,
                    u.account_id, a.name.label("account"))
             .select_from(t.portal_users.join(t.accounts, a.id == u.account_id))
             .order_by(a.name, u.login))
    if account_id is not None:
        query = query.where(u.account_id == account_id)
    return [{"id": row.id, "login": row.login, "email": row.email, "role": row.role,
             "locale": row.locale, "disabled": bool(row.disabled),
             "must_change_password": bool(row.must_change_password),
             "created_by": row.created_by, "created_at": _iso(row.created_at),
             "last_login_at": _iso(row.last_login_at), "account_id": row.account_id,
             "account": row.account} for row in conn.execute(query)]


def jobs(conn: Connection, account_id: int, states: tuple[str, ...] | None, cursor: str | None,
         limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """The account's jobs, newest first, a page at a time by id (keyset); `states`
    narrows them (the dashboard's running ones). Counts per status come from
    queries.get_job, the API's read, for the jobs that show progress."""
    j = t.jobs.c
    query = select(j.id, j.name, j.sender, j.state, j.recipients, j.rejected_rows, j.points,
                   j.refunded, j.throughput, j.start_at, j.created_at, j.channel,
                   j.sent_by).where(j.account_id == account_id, j.state != "creating")
    if states:
        query = query.where(j.state.in_(states))
    if cursor is not None:
        query = query.where(j.id < cursor)
    rows = conn.execute(query.order_by(j.id.desc()).limit(limit + 1)).all()
    page = [{"id": row.id, "name": row.name, "from": row.sender, "state": row.state,
             "messages": row.recipients, "rejected_rows": row.rejected_rows,
             "points": row.points, "refunded": row.refunded, "throughput": row.throughput,
             "start_at": _iso(row.start_at), "created_at": _iso(row.created_at),
             "channel": row.channel, "sent_by": row.sent_by} for row in rows[:limit]]
    return page, (page[-1]["id"] if len(rows) > limit else None)


def status_counts(conn: Connection, account_id: int, since: float) -> dict[str, int]:
    """Messages of the account created since `since` (Unix time, the start of the
    account's day, always a whole quarter hour) by status, from the rollups the
    writer keeps (store/rollups.py): a few dozen rows however busy the day was."""
    r = t.message_rollups.c
    first = int(since // SLOT_SECONDS) * SLOT_SECONDS
    return {status: int(count) for status, count in conn.execute(
        select(r.status, func.sum(r.messages)).where(
            r.account_id == account_id, r.bucket >= first).group_by(r.status)).all()
        if count}


def accounts(conn: Connection) -> list[dict[str, Any]]:
    """Every account with its balance and number of users (the console)."""
    a, u = t.accounts.c, t.portal_users.c
    users_per = (select(u.account_id, func.count().label("users")).group_by(u.account_id)
                 .subquery())
    return [{"id": row.id, "name": row.name, "balance": row.balance,
             "users": row.users or 0, "created_at": _iso(row.created_at)}
            for row in conn.execute(
                select(a.id, a.name, a.balance, a.created_at, users_per.c.users)
                .outerjoin(users_per, users_per.c.account_id == a.id).order_by(a.name))]


def job_unsent(conn: Connection, account_id: int, job_id: str) -> tuple[int, int]:
    """(messages, points) of a job not yet sent: what a stop cancels and refunds
    (a message with a part already out is the carrier's and stays)."""
    m, p = t.messages.c, t.parts.c
    started = select(p.message_id).where(p.message_id == m.id, p.status != "queued")
    row = conn.execute(select(func.count(), func.coalesce(func.sum(m.points), 0)).where(
        m.account_id == account_id, m.job_id == job_id, m.status == "queued",
        ~started.exists())).first()
    return (row[0], int(row[1])) if row else (0, 0)


def polls(conn: Connection, account_id: int) -> list[dict[str, Any]]:
    """The account's polls, newest first, with their accepted votes."""
    p, v = t.polls.c, t.poll_votes.c
    accepted = (select(v.poll_id, func.count().label("votes")).where(v.outcome == "accepted")
                .group_by(v.poll_id).subquery())
    return [{"id": row.id, "name": row.name, "number": display(row.number), "prefix": row.prefix,
             "starts_at": _iso(row.starts_at), "ends_at": _iso(row.ends_at),
             "votes": row.votes or 0} for row in conn.execute(
                 select(p.id, p.name, p.number, p.prefix, p.starts_at, p.ends_at,
                        accepted.c.votes).outerjoin(accepted, accepted.c.poll_id == p.id)
                 .where(p.account_id == account_id).order_by(p.id.desc()))]


def texts(conn: Connection, account_id: int, ids: list[str]) -> dict[str, str]:
    """The content of a page of the account's messages (the API's list has none)."""
    if not ids:
        return {}
    m = t.messages.c
    return dict(conn.execute(select(m.id, m.text).where(m.account_id == account_id,
                                                        m.id.in_(ids))).all())
