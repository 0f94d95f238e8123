"""Contacts and groups: the phonebook a page at a time (by group), adding or
changing one contact, a CSV import, and deleting, through the InboundService with
the API's own contact check."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from ...api import forms
from ...api import inbound_bodies as bodies
from ...api.validation import ApiError
from ..web import Page, Route

PAGE_SIZE = 50
FIELDS = ("phone", "first_name", "last_name", "email", "groups")


@defer.inlineCallbacks
def contact_list(portal: Any, page: Page, error: ApiError | None = None,
                 values: dict[str, str] | None = None, imported: Any = None,
                 status: int = 200) -> Any:
    service = portal.backend.app.inbound
    group = page.query("group")[:64] or None
    cursor = page.query("cursor")
    found = yield service.contacts(page.account, group,
                                   int(cursor) if cursor.isdigit() else None, PAGE_SIZE)
    if isinstance(found, ApiError):  # no such group
        found = {"contacts": [], "next_cursor": None}
    groups = yield service.groups(page.account)
    return page.render("contacts.html", status=status, contacts=found["contacts"],
                       next_cursor=found["next_cursor"], groups=groups["groups"],
                       group=group, error=error, values=values or {},
                       imported=imported, done=page.query("done"))


@defer.inlineCallbacks
def save(portal: Any, page: Page) -> Any:
    values = {name: page.field(name) for name in FIELDS}
    try:
        contact = bodies.contact({k: v for k, v in values.items() if v or k == "phone"})
        yield portal.backend.app.inbound.save_contacts(page.account, [contact])
    except ApiError as exc:
        return (yield contact_list(portal, page, exc, values, status=exc.status))
    return page.redirect("/portal/contacts", done="saved")


@defer.inlineCallbacks
def import_csv(portal: Any, page: Page) -> Any:
    upload = page.files.get("file", b"")
    try:
        if forms.is_blank(upload):
            raise ApiError(400, "choose a CSV file with a 'phone' column", "file")
        result = yield portal.backend.app.inbound.import_contacts(
            page.account, lambda: forms.csv_rows(upload, required="phone"))
    except ApiError as exc:
        return (yield contact_list(portal, page, exc, status=exc.status))
    return (yield contact_list(portal, page, imported=result))


@defer.inlineCallbacks
def delete(portal: Any, page: Page) -> Any:
    try:
        phone = bodies.recipient(page.field("phone"), "phone")[0]
        result = yield portal.backend.app.inbound.delete_contact(page.account, phone)
        if isinstance(result, ApiError):
            raise result
    except ApiError as exc:
        return (yield contact_list(portal, page, exc, status=exc.status))
    return page.redirect("/portal/contacts", done="deleted")


ROUTES = [
    Route(b"GET", r"/portal/contacts", contact_list, "view"),
    Route(b"POST", r"/portal/contacts", save, "send"),
    Route(b"POST", r"/portal/contacts/import", import_csv, "send"),
    Route(b"POST", r"/portal/contacts/delete", delete, "send"),
]
