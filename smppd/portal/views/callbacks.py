"""Callbacks (the owner's): endpoints, a new endpoint's secret shown once (on the
page that answers the POST, never again), and failed deliveries with a resend
button. Through adapters.CallbacksPort (see there for what is left to wire)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from ...api.validation import ApiError
from .. import adapters
from ..web import Page, PageError, Route

_ID = r"(?P<item_id>[A-Za-z0-9_-]{1,64})"


@defer.inlineCallbacks
def overview(portal: Any, page: Page, error: Any = None, secret: Any = None,
             status: int = 200) -> Any:
    port = portal.backend.callbacks
    endpoints = yield port.list(page.account)
    failed = yield port.failed(page.account, 100)
    return page.render("callbacks.html", status=status, available=port.available,
                       endpoints=endpoints, failed=failed, error=error, secret=secret,
                       events=adapters.CALLBACK_EVENTS, done=page.query("done"))


@defer.inlineCallbacks
def create(portal: Any, page: Page) -> Any:
    data: dict[str, Any] = {"url": page.field("url"),
                            "events": [e for e in adapters.CALLBACK_EVENTS
                                       if page.field(f"event_{e}") == "on"],
                            "default": page.field("default") == "on"}
    try:
        made = yield portal.backend.callbacks.create(page.account, data)
    except (ApiError, PageError) as exc:
        return (yield overview(portal, page, exc, status=exc.status))
    return (yield overview(portal, page, secret=made))


@defer.inlineCallbacks
def delete(portal: Any, page: Page, item_id: str) -> Any:
    yield portal.backend.callbacks.delete(page.account, item_id)
    return page.redirect("/portal/callbacks", done="deleted")


@defer.inlineCallbacks
def resend(portal: Any, page: Page, item_id: str) -> Any:
    found = yield portal.backend.callbacks.resend(page.account, item_id)
    if not found:
        raise PageError(404, page.gettext("There is no such delivery in this account."))
    return page.redirect("/portal/callbacks", done="resent")


ROUTES = [
    Route(b"GET", r"/portal/callbacks", overview, "owner"),
    Route(b"POST", r"/portal/callbacks", create, "owner"),
    Route(b"POST", rf"/portal/callbacks/{_ID}/delete", delete, "owner"),
    Route(b"POST", rf"/portal/callbacks/deliveries/{_ID}/resend", resend, "owner"),
]
