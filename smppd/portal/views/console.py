"""The operator's console (/ops/): binds with state, rate, window in use and last
error, with reconnect, suspend and resume; queue depth and store backlog; accounts
with balance, ledger, top-up (a ledger entry) and users; unassigned inbound
messages; failed callbacks across accounts (adapters.CallbacksPort)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from ...api.validation import ApiError
from ...store import inbound_queries as iq
from ...store import operations as ops
from ...store import portal_queries as pq
from ...store import queries
from .. import i18n
from ..web import ROLES, Page, PageError, Route
from . import users as user_actions


def overview(portal: Any, page: Page) -> Any:
    console = portal.backend.console
    return page.render("ops_home.html", smscs=console.smscs(), queue=console.queue(),
                       done=page.query("done"), smsc=page.query("smsc"))


def smsc_action(portal: Any, page: Page, name: str, action: str) -> Any:
    console = portal.backend.console
    if not getattr(console, action)(name):
        raise PageError(404, page.gettext("There is no such SMSC."))
    return page.redirect("/ops/", done=action, smsc=name)


@defer.inlineCallbacks
def accounts(portal: Any, page: Page) -> Any:
    found = yield portal.backend.read(pq.accounts)
    return page.render("ops_accounts.html", accounts=found)


@defer.inlineCallbacks
def _account(portal: Any, page: Page, account_id: int) -> Any:
    found = yield portal.backend.read(pq.accounts)
    account = next((a for a in found if a["id"] == account_id), None)
    if account is None:
        raise PageError(404, page.gettext("There is no such account."))
    return account


@defer.inlineCallbacks
def account(portal: Any, page: Page, account_id: str, error: ApiError | None = None,
            created: tuple[str, str] | None = None, status: int = 200) -> Any:
    found = yield _account(portal, page, int(account_id))
    ledger = yield portal.backend.read(queries.ledger, found["id"], 20)
    users = yield portal.backend.read(pq.users, found["id"])
    return page.render("ops_account.html", status=status, account=found, ledger=ledger,
                       users=users, error=error, created=created, roles=ROLES,
                       locales=i18n.LOCALES, done=page.query("done"),
                       base=f"/ops/accounts/{found['id']}/users", values={})


@defer.inlineCallbacks
def topup(portal: Any, page: Page, account_id: str) -> Any:
    found = yield _account(portal, page, int(account_id))
    points = page.field("points")
    if not points.isdigit() or not 0 < int(points) <= 10**12:
        return (yield account(portal, page, account_id,
                              ApiError(400, "expected a whole number of points above 0",
                                       "points"), status=400))
    yield portal.backend.put(ops.LedgerEntry(found["id"], "topup", int(points),
                                             note=page.field("note")[:500] or None,
                                             created_by=page.who))
    return page.redirect(f"/ops/accounts/{found['id']}", done="topup")


@defer.inlineCallbacks
def add_user(portal: Any, page: Page, account_id: str) -> Any:
    found = yield _account(portal, page, int(account_id))
    try:
        password = yield user_actions.create_user(
            portal, found["id"], page.field("login"), page.field("email"), page.field("role"),
            page.field("locale"), page.who)
    except ApiError as exc:
        return (yield account(portal, page, account_id, exc, status=exc.status))
    return (yield account(portal, page, account_id, created=(page.field("login"), password)))


@defer.inlineCallbacks
def user_action(portal: Any, page: Page, account_id: str, user_id: str, action: str) -> Any:
    found = yield _account(portal, page, int(account_id))
    try:
        password = yield user_actions.act(portal, page, found["id"], int(user_id), action)
    except ApiError as exc:
        return (yield account(portal, page, account_id, exc, status=exc.status))
    if password is not None:
        users = yield portal.backend.read(pq.users, found["id"])
        login = next((u["login"] for u in users if u["id"] == int(user_id)), "")
        return (yield account(portal, page, account_id, created=(login, password)))
    return page.redirect(f"/ops/accounts/{found['id']}", done=action)


@defer.inlineCallbacks
def unassigned(portal: Any, page: Page) -> Any:
    cursor = page.query("cursor")
    items, next_cursor = yield portal.backend.read(
        iq.list_inbound, None, iq.InboundFilter(), int(cursor) if cursor.isdigit() else None,
        100)
    total = yield portal.backend.read(iq.unassigned_count)
    return page.render("ops_inbound.html", items=items, next_cursor=next_cursor, total=total)


@defer.inlineCallbacks
def callbacks(portal: Any, page: Page) -> Any:
    port = portal.backend.callbacks
    failed = yield port.failed(None, 200)
    return page.render("ops_callbacks.html", available=port.available, failed=failed,
                       done=page.query("done"))


@defer.inlineCallbacks
def resend(portal: Any, page: Page, item_id: str) -> Any:
    found = yield portal.backend.callbacks.resend(None, item_id)
    if not found:
        raise PageError(404, page.gettext("There is no such delivery."))
    return page.redirect("/ops/callbacks", done="resent")


_ACCOUNT = r"/ops/accounts/(?P<account_id>\d{1,12})"
ROUTES = [
    Route(b"GET", r"/ops/", overview, "operator"),
    Route(b"POST", r"/ops/smscs/(?P<name>[^/]{1,64})/(?P<action>reconnect|suspend|resume)",
          smsc_action, "operator"),
    Route(b"GET", r"/ops/accounts", accounts, "operator"),
    Route(b"GET", _ACCOUNT, account, "operator"),
    Route(b"POST", _ACCOUNT + "/topup", topup, "operator"),
    Route(b"POST", _ACCOUNT + "/users", add_user, "operator"),
    Route(b"POST", _ACCOUNT + r"/users/(?P<user_id>\d{1,12})/(?P<action>[a-z]+)", user_action,
          "operator"),
    Route(b"GET", r"/ops/inbound", unassigned, "operator"),
    Route(b"GET", r"/ops/callbacks", callbacks, "operator"),
    Route(b"POST", r"/ops/callbacks/(?P<item_id>[A-Za-z0-9_-]{1,64})/resend", resend,
          "operator"),
]
