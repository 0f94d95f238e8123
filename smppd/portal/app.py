"""The pages' front door: static files, the route table, the session and role gate,
the CSRF check on every POST, and one error page for whatever goes wrong.

Order of the gate for a page that needs a session: the session (else the login
page), a forced password change (else that page), the CSRF token of a POST (else
403), the role (else 403), then the view. A view returns a response or a Deferred
of one; an ApiError from the daemon's services becomes its status with the
message, anything else a 500 page (logged) or a 503 while the store is down.
"""

from __future__ import annotations

import logging
import re
from importlib import resources
from typing import Any

from twisted.internet import defer, task
from twisted.python.failure import Failure

from ..api.server import HttpRequest, HttpResponse
from ..api.validation import ApiError
from . import csrf, i18n
from .backend import Backend
from .sessions import Sessions, cookie_header, cookies
from .throttle import LoginThrottle
from .views import ROUTES
from .web import Page, PageError, Route, allowed, json_response

log = logging.getLogger("smppd.portal")
STATIC_TYPES = {".css": b"text/css; charset=utf-8", ".js": b"text/javascript; charset=utf-8",
                ".svg": b"image/svg+xml", ".png": b"image/png", ".ico": b"image/x-icon"}
_STATIC = re.compile(r"^/(?:portal|ops)/static/([a-z0-9_-]+\.(?:css|js|svg|png|ico))$")


class Portal:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.sessions = Sessions(backend.read, backend.put, backend.clock,
                                 lambda: backend.settings().portal)
        portal = backend.settings().portal
        self.throttle = LoginThrottle(backend.clock, portal.failed_logins_per_login,
                                      portal.failed_logins_per_address,
                                      portal.failed_login_window)
        self.routes = [(route, route.compiled()) for route in ROUTES]
        self._static: dict[str, bytes] = {}
        self._purger: task.LoopingCall | None = None

    def start(self, clock: Any) -> None:
        """Hourly: sessions past their expiry are removed from the store."""
        self._purger = task.LoopingCall(self._purge)
        self._purger.clock = clock
        self._purger.start(3600.0, now=True)

    def stop(self) -> None:
        if self._purger is not None and self._purger.running:
            self._purger.stop()

    def _purge(self) -> None:
        self.sessions.purge().addErrback(
            lambda f: log.warning("portal: expired sessions not purged: %s",
                                  f.getErrorMessage()))

    # The front door ----------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpResponse | defer.Deferred[HttpResponse]:
        static = _STATIC.match(request.path)
        if static:
            return self._static_file(static.group(1))
        kind = "operator" if request.path.startswith("/ops") else "user"
        if request.path in ("/portal", "/ops"):
            return HttpResponse(302, b"", b"text/plain", [(b"Location",
                                                           (request.path + "/").encode())])
        page = Page(request, kind, self._guess_locale(request))
        route, params, methods = self._match(request)
        if route is None:
            if methods:
                return self._error(page, PageError(405, "use " + " or ".join(methods)))
            return self._error(page, PageError(404, page.gettext("There is no such page.")))
        if request.too_large:
            return self._error(page, PageError(413, page.gettext("The upload is too large.")))
        d = defer.maybeDeferred(self._gate, page, route, params)
        return d.addErrback(lambda failure: self._failed(failure, page, route))

    def _match(self, request: HttpRequest) -> tuple[Route | None, dict[str, str], list[str]]:
        methods = []
        for route, pattern in self.routes:
            found = pattern.match(request.path)
            if found is None:
                continue
            if route.method == request.method or (
                    route.method == b"GET" and request.method == b"HEAD"):
                return route, found.groupdict(), methods
            methods.append(route.method.decode())
        return None, {}, methods

    @defer.inlineCallbacks
    def _gate(self, page: Page, route: Route, params: dict[str, str]) -> Any:
        request = page.request
        if route.need == "public":
            self._pre_token(page)
            if request.method == b"POST" and not csrf.matches(
                    cookies(request).get(csrf.PRE_COOKIE), page.form.get(csrf.FIELD)):
                raise PageError(403, page.gettext(
                    "The form expired or did not come from this site. Reload the page and "
                    "try again."))
            return (yield route.view(self, page, **params))
        page.session = yield self.sessions.load(request, page.kind)
        if page.session is None:
            if route.json:
                return json_response({"error": "sign in again"}, 401)
            login = "/ops/login" if page.kind == "operator" else "/portal/login"
            target = request.path if request.method == b"GET" else None
            return page.redirect(login, next=target)
        if page.kind == "user":
            page.locale = i18n.pick(page.session.locale, page.locale)
            page.zone = self.backend.zone(page.session.account_id)
            if page.session.must_change_password and route.need != "self":
                return page.redirect("/portal/password")
        if request.method == b"POST":
            given = page.form.get(csrf.FIELD) or request.headers.get(csrf.HEADER, b"").decode(
                "latin-1")
            if not csrf.matches(page.session.csrf, given):
                raise PageError(403, page.gettext(
                    "The form expired or did not come from this site. Reload the page and "
                    "try again."))
        if not self._allowed(page, route.need):
            raise PageError(403, page.gettext("Your role does not allow this."))
        return (yield route.view(self, page, **params))

    @staticmethod
    def _allowed(page: Page, need: str) -> bool:
        if need == "operator":
            return page.kind == "operator"
        if page.kind != "user":
            return False
        return need == "self" or allowed(page.role, need)

    def _guess_locale(self, request: HttpRequest) -> str:
        fallback = self.backend.settings().portal.default_locale
        wanted = request.query.get("lang", [""])[0]
        if wanted in i18n.LOCALES:
            return wanted
        return i18n.from_header(request.headers.get(b"accept-language", b"").decode(
            "latin-1"), fallback)

    def _pre_token(self, page: Page) -> None:
        """The login form's double-submit token: the cookie's, or a new one."""
        token = cookies(page.request).get(csrf.PRE_COOKIE)
        if not token or len(token) > 64:
            token = csrf.new_token()
            page.cookies.append(cookie_header(csrf.PRE_COOKIE, token, "/",
                                              self.sessions.secure(page.request)))
        page.pre_token = token

    # Answers for what went wrong ------------------------------------------------------------

    def _failed(self, failure: Failure, page: Page, route: Route) -> HttpResponse:
        if failure.check(PageError):
            error = failure.value
        elif failure.check(ApiError):
            error = PageError(failure.value.status, failure.value.message)
        else:
            log.error("portal %s %s failed: %s", page.request.method.decode(),
                      page.request.path, failure.getTraceback())
            error = PageError(503, page.gettext(
                "smppd cannot answer this right now (the store may be unavailable). Try "
                "again in a moment."))
        if route.json:
            return json_response({"error": error.message}, error.status)
        return self._error(page, error)

    @staticmethod
    def _error(page: Page, error: PageError) -> HttpResponse:
        return page.render("error.html", status=error.status, status_code=error.status,
                           message=error.message)

    def _static_file(self, name: str) -> HttpResponse:
        data = self._static.get(name)
        if data is None:
            source = resources.files("smppd.portal").joinpath("static", name)
            if not source.is_file():
                return HttpResponse(404, b"not found", b"text/plain")
            data = self._static[name] = source.read_bytes()
        suffix = name[name.rindex("."):]
        return HttpResponse(200, data, STATIC_TYPES[suffix], [
            (b"Cache-Control", b"public, max-age=3600"), (b"X-Content-Type-Options", b"nosniff")])
