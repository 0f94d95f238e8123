"""Contacts and groups in the writer: upsert by phone (an import of 100,000 rows is
a few set-based statements per batch, not a statement per row), groups made as
they are named, and deletion."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from . import schema as t
from .inbound_ops import DeleteContact, SaveContacts
from .sql import BulkInsert, BulkUpdate, chunks

if TYPE_CHECKING:
    from .context import BatchContext

_INSERT_CONTACT = BulkInsert(t.contacts, ("account_id", "phone", "first_name", "last_name",
                                          "email", "fields", "created_at", "updated_at"))
_UPDATE_CONTACT = BulkUpdate(t.contacts, ("id",), {
    "first_name": "", "last_name": "", "email": "", "fields": "", "updated_at": ""})
_INSERT_MEMBER = BulkInsert(t.contact_group_members, ("group_id", "contact_id"))


def save(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    for index, op in by_kind[SaveContacts]:
        ctx.results[index] = _save(ctx, op)


def _save(ctx: BatchContext, op: SaveContacts) -> tuple[int, int]:
    c = t.contacts.c
    latest = {contact.phone: contact for contact in op.contacts}  # a later row wins
    phones = list(latest)
    existing: dict[str, int] = {}
    for chunk in chunks(phones):
        existing.update(ctx.conn.execute(select(c.phone, c.id).where(
            c.account_id == op.account_id, c.phone.in_(chunk))).all())
    stamp = ctx.stamp
    new = [(op.account_id, p, latest[p].first_name, latest[p].last_name, latest[p].email,
            latest[p].fields, stamp, stamp) for p in phones if p not in existing]
    ctx.sql.run(ctx.conn, _INSERT_CONTACT, new)
    ctx.sql.run(ctx.conn, _UPDATE_CONTACT, [
        (existing[p], latest[p].first_name, latest[p].last_name, latest[p].email,
         latest[p].fields, stamp) for p in phones if p in existing])
    ids = dict(existing)
    if new:
        for chunk in chunks([p for p in phones if p not in existing]):
            ids.update(ctx.conn.execute(select(c.phone, c.id).where(
                c.account_id == op.account_id, c.phone.in_(chunk))).all())
    groups = _groups(ctx, op.account_id, {g for p in phones for g in latest[p].groups})
    contact_ids = list(ids.values())
    for chunk in chunks(contact_ids):
        ctx.conn.execute(delete(t.contact_group_members).where(
            t.contact_group_members.c.contact_id.in_(chunk)))
    ctx.sql.run(ctx.conn, _INSERT_MEMBER, sorted(
        {(groups[g], ids[p]) for p in phones for g in latest[p].groups}))
    return len(new), len(phones) - len(new)


def _groups(ctx: BatchContext, account_id: int, names: set[str]) -> dict[str, int]:
    g = t.contact_groups.c
    if not names:
        return {}
    found = dict(ctx.conn.execute(select(g.name, g.id).where(
        g.account_id == account_id, g.name.in_(sorted(names)))).all())
    for name in sorted(names - set(found)):
        found[name] = ctx.conn.execute(t.contact_groups.insert().values(
            account_id=account_id, name=name)).inserted_primary_key[0]
    return found


def remove(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    c = t.contacts.c
    for index, op in by_kind[DeleteContact]:
        contact_id = ctx.conn.execute(select(c.id).where(
            c.account_id == op.account_id, c.phone == op.phone)).scalar()
        if contact_id is not None:
            ctx.conn.execute(delete(t.contact_group_members).where(
                t.contact_group_members.c.contact_id == contact_id))
            ctx.conn.execute(delete(t.contacts).where(c.id == contact_id))
        ctx.results[index] = contact_id is not None
