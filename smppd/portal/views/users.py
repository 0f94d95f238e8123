"""Users of an account: an owner manages their own account's users in the portal,
the operator any account's in the console; one set of actions for both. A new user
or a reset gets a one-time password, shown once on the page that answers the POST
and changed at the user's first login. An owner cannot demote, disable or delete
themselves (an account must keep someone who can manage it)."""

from __future__ import annotations

import re
from typing import Any

from twisted.internet import defer

from ...api.inbound_bodies import email as check_email
from ...api.validation import ApiError
from ...store import portal_ops as pops
from ...store import portal_queries as pq
from .. import i18n, passwords
from ..web import ROLES, Page, PageError, Route

_LOGIN = re.compile(r"^[A-Za-z0-9._@+-]{3,128}$")
ACTIONS = ("role", "disable", "enable", "reset", "delete")


def check_login(value: str) -> str:
    if not _LOGIN.match(value):
        raise ApiError(400, "a login is 3-128 letters, digits or . _ @ + -", "login")
    return value


@defer.inlineCallbacks
def create_user(portal: Any, account_id: int, login: str, email: str, role: str,
                locale: str, created_by: str) -> Any:
    """Checks, hashes a one-time password and stores the user; returns the password."""
    check_login(login)
    if email:
        check_email(email)
    if role not in ROLES:
        raise ApiError(400, f"expected one of {', '.join(ROLES)}", "role")
    password = passwords.one_time_password()
    hashed = yield portal.backend.in_thread(passwords.hash_password, password)
    try:
        yield portal.backend.put(pops.CreateUser(account_id, login, email or None, hashed, role,
                                                 True, i18n.pick(locale), created_by))
    except pops.Conflict as exc:
        raise ApiError(409, str(exc), exc.field) from None
    return password


@defer.inlineCallbacks
def act(portal: Any, page: Page, account_id: int | None, user_id: int, action: str) -> Any:
    """One action on a user; returns a one-time password for `reset`, else None."""
    if action not in ACTIONS:
        raise PageError(404, page.gettext("There is no such action."))
    session = page.session
    own = page.kind == "user" and session is not None and session.user_id == user_id
    if own and action in ("role", "disable", "delete"):
        raise PageError(403, page.gettext("You cannot change your own role or remove "
                                          "yourself; ask another owner."))
    put = portal.backend.put
    if action == "role":
        role = page.field("role")
        if role not in ROLES:
            raise ApiError(400, f"expected one of {', '.join(ROLES)}", "role")
        found = yield put(pops.UpdateUser(user_id, account_id, role=role))
    elif action in ("disable", "enable"):
        found = yield put(pops.UpdateUser(user_id, account_id, disabled=action == "disable"))
    elif action == "delete":
        found = yield put(pops.DeleteUser(user_id, account_id))
    else:
        password = passwords.one_time_password()
        hashed = yield portal.backend.in_thread(passwords.hash_password, password)
        found = yield put(pops.SetPassword(user_id, account_id, hashed, True))
        if found:
            return password
    if not found:
        raise PageError(404, page.gettext("There is no such user in this account."))
    return None


# The owner's pages ---------------------------------------------------------------------------

@defer.inlineCallbacks
def user_list(portal: Any, page: Page, error: ApiError | None = None,
              created: tuple[str, str] | None = None, status: int = 200,
              values: dict[str, str] | None = None) -> Any:
    users = yield portal.backend.read(pq.users, page.account.id)
    return page.render("users.html", status=status, users=users, error=error,
                       created=created, roles=ROLES, locales=i18n.LOCALES,
                       values=values or {}, done=page.query("done"), base="/portal/users")


@defer.inlineCallbacks
def add(portal: Any, page: Page) -> Any:
    values = {name: page.field(name) for name in ("login", "email", "role", "locale")}
    try:
        password = yield create_user(portal, page.account.id, values["login"],
                                     values["email"], values["role"], values["locale"],
                                     page.who)
    except ApiError as exc:
        return (yield user_list(portal, page, exc, status=exc.status, values=values))
    return (yield user_list(portal, page, created=(values["login"], password)))


@defer.inlineCallbacks
def change(portal: Any, page: Page, user_id: str, action: str) -> Any:
    try:
        password = yield act(portal, page, page.account.id, int(user_id), action)
    except ApiError as exc:
        return (yield user_list(portal, page, exc, status=exc.status))
    if password is not None:
        users = yield portal.backend.read(pq.users, page.account.id)
        login = next((u["login"] for u in users if u["id"] == int(user_id)), "")
        return (yield user_list(portal, page, created=(login, password)))
    return page.redirect("/portal/users", done=action)


ROUTES = [
    Route(b"GET", r"/portal/users", user_list, "owner"),
    Route(b"POST", r"/portal/users", add, "owner"),
    Route(b"POST", r"/portal/users/(?P<user_id>\d{1,12})/(?P<action>[a-z]+)", change, "owner"),
]
