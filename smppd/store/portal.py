"""The portal's domain in the writer (issue 15): users and sessions, applied in
the order they came within a batch (a login's session follows a password change
made just before it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, select, update

from . import portal_ops as pops
from . import schema as t
from .sql import utc

if TYPE_CHECKING:
    from .context import BatchContext

KINDS = (pops.CreateUser, pops.UpdateUser, pops.SetPassword, pops.DeleteUser,
         pops.CreateSession, pops.TouchSession, pops.EndSessions, pops.PurgeSessions)


def apply(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    items = sorted((item for kind in KINDS for item in by_kind.get(kind, ())),
                   key=lambda item: item[0])
    for index, op in items:
        ctx.results[index] = _HANDLERS[type(op)](ctx, op)


def _user(account_id: int | None, user_id: int) -> Any:
    u = t.portal_users.c
    condition = u.id == user_id
    return condition if account_id is None else and_(condition, u.account_id == account_id)


def _create_user(ctx: BatchContext, op: pops.CreateUser) -> Any:
    u = t.portal_users.c
    if ctx.conn.execute(select(u.id).where(u.login == op.login)).first() is not None:
        return pops.Conflict(f"the login {op.login!r} is taken", "login")
    return ctx.conn.execute(t.portal_users.insert().values(
        account_id=op.account_id, login=op.login, email=op.email,
        password_hash=op.password_hash, role=op.role,
        must_change_password=op.must_change_password, locale=op.locale, disabled=False,
        created_by=op.created_by, created_at=ctx.now)).inserted_primary_key[0]


def _end_user_sessions(ctx: BatchContext, user_id: int, keep: str | None = None) -> None:
    s = t.portal_sessions.c
    condition = and_(s.kind == "user", s.user_id == user_id)
    if keep is not None:
        condition = and_(condition, s.id != keep)
    ctx.conn.execute(delete(t.portal_sessions).where(condition))


def _update_user(ctx: BatchContext, op: pops.UpdateUser) -> bool:
    values = {name: getattr(op, name) for name in ("role", "locale", "disabled")
              if getattr(op, name) is not None}
    if not values:
        return ctx.conn.execute(select(t.portal_users.c.id).where(
            _user(op.account_id, op.user_id))).first() is not None
    found = ctx.conn.execute(update(t.portal_users).where(
        _user(op.account_id, op.user_id)).values(**values)).rowcount > 0
    if found and op.disabled:
        _end_user_sessions(ctx, op.user_id)
    return found


def _set_password(ctx: BatchContext, op: pops.SetPassword) -> bool:
    found = ctx.conn.execute(update(t.portal_users).where(
        _user(op.account_id, op.user_id)).values(
        password_hash=op.password_hash,
        must_change_password=op.must_change_password)).rowcount > 0
    if found:
        _end_user_sessions(ctx, op.user_id, op.keep_session)
    return found


def _delete_user(ctx: BatchContext, op: pops.DeleteUser) -> bool:
    found = ctx.conn.execute(delete(t.portal_users).where(
        _user(op.account_id, op.user_id))).rowcount > 0
    if found:
        _end_user_sessions(ctx, op.user_id)
    return found


def _create_session(ctx: BatchContext, op: pops.CreateSession) -> bool:
    if op.replaces is not None:
        ctx.conn.execute(delete(t.portal_sessions).where(t.portal_sessions.c.id == op.replaces))
    at = utc(op.created_at)
    ctx.conn.execute(t.portal_sessions.insert().values(
        id=op.session_id, kind=op.kind, user_id=op.user_id, operator=op.operator,
        csrf=op.csrf, address=op.address, created_at=at, last_seen_at=at))
    if op.user_id is not None:
        ctx.conn.execute(update(t.portal_users).where(t.portal_users.c.id == op.user_id)
                         .values(last_login_at=at))
    return True


def _touch(ctx: BatchContext, op: pops.TouchSession) -> None:
    s = t.portal_sessions.c
    at = utc(op.at)
    ctx.conn.execute(update(t.portal_sessions).where(s.id == op.session_id, s.last_seen_at < at)
                     .values(last_seen_at=at))


def _end(ctx: BatchContext, op: pops.EndSessions) -> None:
    if op.session_ids:
        ctx.conn.execute(delete(t.portal_sessions).where(
            t.portal_sessions.c.id.in_(op.session_ids)))


def _purge(ctx: BatchContext, op: pops.PurgeSessions) -> int:
    s = t.portal_sessions.c
    return ctx.conn.execute(delete(t.portal_sessions).where(
        (s.last_seen_at < utc(op.idle_before)) | (s.created_at < utc(op.created_before))
    )).rowcount


_HANDLERS: dict[type, Any] = {
    pops.CreateUser: _create_user, pops.UpdateUser: _update_user,
    pops.SetPassword: _set_password, pops.DeleteUser: _delete_user,
    pops.CreateSession: _create_session, pops.TouchSession: _touch,
    pops.EndSessions: _end, pops.PurgeSessions: _purge,
}
