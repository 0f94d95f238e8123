"""Inbound: the account's numbers and reservations (reserve, release), the messages
received (filters and keyset pages), and each number's auto-reply and forwarding,
all through the daemon's InboundService and the API's own body checks."""

from __future__ import annotations

import re
from typing import Any

from twisted.internet import defer

from ...api import inbound_bodies as bodies
from ...api.validation import ApiError
from ..web import Page, Route
from .history import api_args

PAGE_SIZE = 50


def _split(value: str) -> list[str]:
    return [item.strip() for item in re.split(r"[\s,;]+", value) if item.strip()]


@defer.inlineCallbacks
def overview(portal: Any, page: Page, error: ApiError | None = None,
             status: int = 200) -> Any:
    service = portal.backend.app.inbound
    numbers = yield service.numbers(page.account)
    values = {name: page.query(name)[:64] for name in ("since", "until", "number", "sender")}
    items: list[dict[str, Any]] = []
    next_cursor = None
    filter_error = None
    try:
        args = api_args(values, page.zone)
        where = bodies.inbound_filter(args)
        cursor = bodies.int_cursor({"cursor": page.query("cursor")} if page.query("cursor")
                                   else {})
    except ApiError as exc:
        filter_error = exc
    else:
        found = yield service.list_inbound(page.account, where, cursor, PAGE_SIZE)
        items, next_cursor = found["items"], found["next_cursor"]
    return page.render("inbound.html", status=status, numbers=numbers["numbers"],
                       available=numbers["available"], items=items, next_cursor=next_cursor,
                       values=values, filter_error=filter_error, error=error,
                       done=page.query("done"),
                       more_query={k: v for k, v in values.items() if v})


@defer.inlineCallbacks
def reserve(portal: Any, page: Page) -> Any:
    data = {"number": page.field("number")}
    if page.field("prefix"):
        data["prefix"] = page.field("prefix")
    try:
        yield portal.backend.app.inbound.reserve(page.account, bodies.reservation(data))
    except ApiError as exc:
        return (yield overview(portal, page, exc, exc.status))
    return page.redirect("/portal/inbound", done="reserved")


@defer.inlineCallbacks
def release(portal: Any, page: Page) -> Any:
    try:
        number = bodies.number(page.field("number"))
        _, key = bodies.optional_prefix(page.field("prefix") or None)
        result = yield portal.backend.app.inbound.release(page.account, number, key)
        if isinstance(result, ApiError):
            raise result
    except ApiError as exc:
        return (yield overview(portal, page, exc, exc.status))
    return page.redirect("/portal/inbound", done="released")


@defer.inlineCallbacks
def settings_form(portal: Any, page: Page, error: ApiError | None = None,
                  values: dict[str, str] | None = None, status: int = 200) -> Any:
    number, prefix = page.query("number") or page.field("number"), \
        page.query("prefix") or page.field("prefix")
    numbers = yield portal.backend.app.inbound.numbers(page.account)
    held = next((n for n in numbers["numbers"] if n["number"].lstrip("+")
                 == number.lstrip("+") and (n["prefix"] or "") == prefix), None)
    if held is None:
        from ..web import PageError

        raise PageError(404, page.gettext("This account holds no such number."))
    if values is None:
        reply = held["auto_reply"] or {}
        values = {"reply_from": reply.get("from") or "", "reply_text": reply.get("text") or "",
                  "email": "\n".join(held["forward"]["email"]),
                  "sms": "\n".join(held["forward"]["sms"]),
                  "url": held["forward"]["url"] or ""}
    return page.render("inbound_settings.html", status=status, held=held, values=values,
                       error=error)


@defer.inlineCallbacks
def save_settings(portal: Any, page: Page) -> Any:
    values = {name: page.form.get(name, "").strip() for name in
              ("reply_from", "reply_text", "email", "sms", "url")}
    data: dict[str, Any] = {"forward": {"email": _split(values["email"]),
                                        "sms": _split(values["sms"]),
                                        "url": values["url"] or None}}
    if values["reply_text"]:
        data["auto_reply"] = {"from": values["reply_from"], "text": values["reply_text"]}
    try:
        number = bodies.number(page.field("number"))
        prefix, key = bodies.optional_prefix(page.field("prefix") or None)
        yield portal.backend.app.inbound.save_settings(page.account, number, prefix, key,
                                                       bodies.settings(data))
    except ApiError as exc:
        return (yield settings_form(portal, page, exc, values, exc.status))
    return page.redirect("/portal/inbound", done="saved")


ROUTES = [
    Route(b"GET", r"/portal/inbound", overview, "view"),
    Route(b"POST", r"/portal/inbound/reserve", reserve, "send"),
    Route(b"POST", r"/portal/inbound/release", release, "send"),
    Route(b"GET", r"/portal/inbound/settings", settings_form, "view"),
    Route(b"POST", r"/portal/inbound/settings", save_settings, "send"),
]
