"""Signing in and out, for customers' users and for operators, the forced change of a
one-time password, and a user's own password and language.

Password checks run on a pool thread (argon2 costs a fifth of a second on purpose).
A failed login says only that the login or the password is wrong, and costs the same
time either way (a login that does not exist is checked against a dummy hash)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from twisted.internet import defer

from ...store import portal_ops as pops
from ...store import portal_queries as pq
from .. import i18n, passwords
from ..web import Page, Route

HOME = {"user": "/portal/", "operator": "/ops/"}


def _safe_next(page: Page, target: str) -> str:
    """Only a path of this same area: never another site (no open redirect)."""
    parts = urlsplit(target)
    home = HOME[page.kind]
    if parts.scheme or parts.netloc or not target.startswith(home) or "//" in target \
            or "\\" in target or any(ch <= " " or ch == "\x7f" for ch in target):
        return home  # and never a line break into the Location header
    return target


def login_form(portal: Any, page: Page) -> Any:
    return page.render("login.html", error=None, login="", next=page.query("next"),
                       locales=i18n.LOCALES)


@defer.inlineCallbacks
def login(portal: Any, page: Page) -> Any:
    login_name = page.field("login")[:128]
    password = page.form.get("password", "")[:passwords.MAX_LENGTH]
    target = _safe_next(page, page.field("next") or HOME[page.kind])
    address = page.request.peer or "?"

    def refused(message: str, status: int = 200) -> Any:
        return page.render("login.html", status=status, error=message, login=login_name,
                           next=target, locales=i18n.LOCALES)

    if not login_name or not password:
        return refused(page.gettext("Give your login and your password."))
    wait = portal.throttle.wait(login_name, address)
    if wait > 0:
        minutes = max(1, round(wait / 60))
        return refused(page.gettext("Too many failed attempts. Try again in %(minutes)s "
                                    "minute(s).", minutes=minutes), 429)
    if page.kind == "operator":
        operator = next((o for o in portal.backend.settings().operators
                         if o.login == login_name), None)
        ok = yield portal.backend.in_thread(
            passwords.verify, operator.password_hash if operator else None, password)
        user = None
    else:
        user = yield portal.backend.read(pq.user_by_login, login_name)
        ok = yield portal.backend.in_thread(
            passwords.verify, user.password_hash if user is not None else None, password)
        ok = ok and user is not None and not user.disabled
    if not ok:
        portal.throttle.failed(login_name, address)
        return refused(page.gettext("The login or the password is wrong."), 401)
    portal.throttle.succeeded(login_name)
    cookie = yield portal.sessions.start(page.request, page.kind,
                                         user_id=user.id if user is not None else None,
                                         operator=login_name if user is None else None)
    page.cookies.append(cookie)
    if user is not None and user.must_change_password:
        target = "/portal/password"
    return page.redirect(target)


@defer.inlineCallbacks
def logout(portal: Any, page: Page) -> Any:
    page.cookies.append((yield portal.sessions.end(page.request, page.kind)))
    return page.redirect(HOME[page.kind] + "login", done="signed_out")


def password_form(portal: Any, page: Page) -> Any:
    return page.render("password.html", error=None, done=page.query("done"))


@defer.inlineCallbacks
def change_password(portal: Any, page: Page) -> Any:
    session = page.session
    assert session is not None and session.user_id is not None
    current = page.form.get("current", "")
    new = page.form.get("new", "")
    repeat = page.form.get("repeat", "")
    stored = yield portal.backend.read(pq.password_hash, session.user_id)
    ok = yield portal.backend.in_thread(passwords.verify, stored, current)
    error = None
    if not ok:
        error = page.gettext("The current password is wrong.")
    elif new != repeat:
        error = page.gettext("The two new passwords differ.")
    elif new == current:
        error = page.gettext("Choose a password other than the current one.")
    else:
        reason = passwords.problem(new, session.login or "")
        if reason == "too_short":
            error = page.gettext("Use at least %(n)s characters.", n=passwords.MIN_LENGTH)
        elif reason is not None:
            error = page.gettext("Choose another password (not your login, at most "
                                 "%(n)s characters).", n=passwords.MAX_LENGTH)
    if error is not None:
        return page.render("password.html", status=400, error=error, done=None)
    new_hash = yield portal.backend.in_thread(passwords.hash_password, new)
    # Every other session of this user ends; this one goes on.
    yield portal.backend.put(pops.SetPassword(
        session.user_id, session.account_id, new_hash, False,
        keep_session=session.id))
    return page.redirect("/portal/password", done="changed")


@defer.inlineCallbacks
def language(portal: Any, page: Page) -> Any:
    session = page.session
    assert session is not None and session.user_id is not None
    locale = page.field("locale")
    if locale in i18n.LOCALES:
        yield portal.backend.put(pops.UpdateUser(session.user_id, session.account_id,
                                                 locale=locale))
    return page.redirect(_safe_next(page, page.field("next") or "/portal/"))


ROUTES = [
    Route(b"GET", r"/portal/login", login_form, "public"),
    Route(b"POST", r"/portal/login", login, "public"),
    Route(b"POST", r"/portal/logout", logout, "self"),
    Route(b"GET", r"/portal/password", password_form, "self"),
    Route(b"POST", r"/portal/password", change_password, "self"),
    Route(b"POST", r"/portal/language", language, "self"),
    Route(b"GET", r"/ops/login", login_form, "public"),
    Route(b"POST", r"/ops/login", login, "public"),
    Route(b"POST", r"/ops/logout", logout, "operator"),
]
