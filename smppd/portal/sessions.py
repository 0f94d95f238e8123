"""Signed-in sessions, kept in the store so they survive a restart and can be ended
from anywhere (logout, a password change, a disabled user).

The cookie holds 256 random bits; the store holds only their SHA-256, so reading the
table opens no session. A login always makes a new session id (the old cookie,
if any, is ended in the same transaction): a session fixed before login is worth
nothing after it. Sessions end after `idle_timeout` without a request and
`absolute_timeout` after login whatever happens. Cookies are HttpOnly, SameSite=Lax,
and Secure when the request came over TLS or the portal's base_url is https.
The idle clock is written at most once a minute per session, not on every request.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from typing import Any

from twisted.internet import defer

from ..api.server import HttpRequest
from ..config import PortalSettings
from ..store import portal_ops as pops
from ..store import portal_queries as pq
from ..store.portal_queries import SessionRow
from . import csrf

COOKIES = {"user": "smppd_portal", "operator": "smppd_ops"}
PATHS = {"user": "/portal/", "operator": "/ops/"}
TOUCH_EVERY = 60.0


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def cookies(request: HttpRequest) -> dict[str, str]:
    """The request's cookies by name (the first of a repeated name)."""
    found: dict[str, str] = {}
    for item in request.headers.get(b"cookie", b"").decode("latin-1").split(";"):
        name, sep, value = item.strip().partition("=")
        if sep and name and name not in found:
            found[name] = value.strip().strip('"')
    return found


def cookie_header(name: str, value: str, path: str, secure: bool,
                  max_age: int | None = None) -> tuple[bytes, bytes]:
    parts = [f"{name}={value}", f"Path={path}", "HttpOnly", "SameSite=Lax"]
    if secure:
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return b"Set-Cookie", "; ".join(parts).encode()


class Sessions:
    def __init__(self, read: Callable[..., defer.Deferred[Any]],
                 put: Callable[[Any], defer.Deferred[Any]], clock: Callable[[], float],
                 settings: Callable[[], PortalSettings]) -> None:
        self.read = read
        self.put = put
        self.clock = clock
        self.settings = settings

    def secure(self, request: HttpRequest) -> bool:
        return request.secure or self.settings().secure_cookies

    def cookie_value(self, request: HttpRequest, kind: str) -> str | None:
        value = cookies(request).get(COOKIES[kind])
        return value if value and len(value) <= 128 else None

    @defer.inlineCallbacks
    def load(self, request: HttpRequest, kind: str) -> Any:
        """The request's live session of this kind, or None (absent, ended, expired,
        or its user disabled)."""
        value = self.cookie_value(request, kind)
        if value is None:
            return None
        row: SessionRow | None = yield self.read(pq.session, digest(value))
        if row is None or row.kind != kind:
            return None
        now = self.clock()
        settings = self.settings()
        if (now - row.last_seen_at > settings.idle_timeout
                or now - row.created_at > settings.absolute_timeout or row.disabled):
            yield self.put(pops.EndSessions((row.id,)))
            return None
        if now - row.last_seen_at >= TOUCH_EVERY:
            self.put(pops.TouchSession(row.id, now)).addErrback(lambda _: None)
        return row

    @defer.inlineCallbacks
    def start(self, request: HttpRequest, kind: str, user_id: int | None = None,
              operator: str | None = None) -> Any:
        """A new session; returns its Set-Cookie header. The request's old session
        cookie of this kind, if any, ends with it."""
        value = secrets.token_urlsafe(32)
        old = self.cookie_value(request, kind)
        yield self.put(pops.CreateSession(digest(value), kind, user_id, operator,
                                          csrf.new_token(), request.peer[:64] or None,
                                          self.clock(),
                                          digest(old) if old is not None else None))
        return cookie_header(COOKIES[kind], value, PATHS[kind], self.secure(request))

    @defer.inlineCallbacks
    def end(self, request: HttpRequest, kind: str) -> Any:
        """Log out: the session ends in the store; returns the header that clears
        the cookie."""
        value = self.cookie_value(request, kind)
        if value is not None:
            yield self.put(pops.EndSessions((digest(value),)))
        return cookie_header(COOKIES[kind], "", PATHS[kind], self.secure(request), max_age=0)

    def purge(self) -> defer.Deferred[Any]:
        now = self.clock()
        settings = self.settings()
        return self.put(pops.PurgeSessions(now - settings.idle_timeout,
                                           now - settings.absolute_timeout))
