"""One page request: its form, its session, its language, and the answers a page
gives (HTML, a redirect after a POST, JSON for the page's own scripts, a download),
each with the headers every page carries."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any
from urllib.parse import parse_qs, urlencode

from ..api import forms
from ..api.http import Account
from ..api.server import HttpRequest, HttpResponse
from ..api.validation import ApiError
from ..store.portal_queries import SessionRow
from . import i18n, templating
from .localtime import zone_name

HTML = b"text/html; charset=utf-8"
# No inline script or style anywhere: what the page runs is /portal/static/portal.js.
SECURITY_HEADERS = [
    (b"Content-Security-Policy", b"default-src 'self'; img-src 'self' data:; "
     b"style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; "
     b"base-uri 'none'; object-src 'none'"),
    (b"X-Content-Type-Options", b"nosniff"),
    (b"X-Frame-Options", b"DENY"),
    (b"Referrer-Policy", b"same-origin"),
    (b"Cache-Control", b"no-store"),
]


class PageError(Exception):
    """An answer other than the page: 403 (role), 404 (not this account's), ..."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# Roles and what each may do: a viewer reads; a sender also sends and manages the
# account's jobs, numbers, polls, contacts and reports; an owner also manages users
# and callbacks.
ROLES = ("owner", "sender", "viewer")
_ALLOWED = {"view": {"owner", "sender", "viewer"}, "send": {"owner", "sender"},
            "owner": {"owner"}}


def allowed(role: str | None, need: str) -> bool:
    return role in _ALLOWED[need]


@dataclass(frozen=True)
class Route:
    """One page: a method and a path pattern, the view that answers, and the role
    it needs (see `allowed`)."""

    method: bytes
    pattern: str  # a regex over the path, with named groups for the view's arguments
    view: Callable[..., Any]
    need: str  # public | self | view | send | owner | operator
    json: bool = False  # answers the page's scripts: 401/403 as JSON, not a page

    def compiled(self) -> re.Pattern[str]:
        return re.compile("^" + self.pattern + "$")


@dataclass
class Page:
    request: HttpRequest
    kind: str  # user | operator
    locale: str
    session: SessionRow | None = None
    cookies: list[tuple[bytes, bytes]] = field(default_factory=list)  # to set
    pre_token: str | None = None  # the login form's double-submit token
    zone: tzinfo = UTC  # the account's time zone (UTC in the console): smppd.portal.localtime
    _form: dict[str, str] | None = None
    _files: dict[str, Any] | None = None  # bytes, or uploads.SpooledBody

    # What the page is about -------------------------------------------------------------

    @property
    def account(self) -> Account:
        assert self.session is not None and self.session.account_id is not None
        return Account(self.session.account_id, self.session.account_name or "")

    @property
    def role(self) -> str | None:
        return self.session.role if self.session is not None else None

    def can(self, need: str) -> bool:
        return allowed(self.role, need)

    @property
    def who(self) -> str:
        """What sent_by and created_by record for this person."""
        if self.session is None:
            return ""
        if self.kind == "operator":
            return f"ops:{self.session.operator}"
        return self.session.login or ""

    def gettext(self, message: str, **values: Any) -> str:
        text = i18n.translations(self.locale).gettext(message)
        return text % values if values else text

    # Input ---------------------------------------------------------------------------------

    def query(self, name: str, default: str = "") -> str:
        values = self.request.query.get(name)
        return values[0].strip() if values else default

    def _parse(self) -> None:
        content_type = self.request.headers.get(b"content-type", b"")
        self._form, self._files = {}, {}
        if forms.is_multipart(content_type):
            for name, value in forms.parse_multipart(self.request.body, content_type).items():
                if name == "file":  # bytes, or a window of an upload kept on disk
                    self._files[name] = value
                else:
                    self._form[name] = forms.form_text({name: value}, name) or ""
            return
        try:
            text = self.request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "the form is not UTF-8 text") from None
        self._form = {name: values[-1] for name, values in
                      parse_qs(text, keep_blank_values=True).items()}

    @property
    def form(self) -> dict[str, str]:
        if self._form is None:
            self._parse()
        assert self._form is not None
        return self._form

    @property
    def files(self) -> dict[str, Any]:
        if self._files is None:
            self._parse()
        assert self._files is not None
        return self._files

    def field(self, name: str) -> str:
        return self.form.get(name, "").strip()

    # Answers ---------------------------------------------------------------------------------

    def render(self, template: str, status: int = 200, **context: Any) -> HttpResponse:
        base = {"page": self, "session": self.session, "csrf_token": self.csrf_token,
                "path": self.request.path, "can": self.can, "ZONE": self.zone,
                "ZONE_NAME": zone_name(self.zone)}
        if isinstance(context.get("values"), dict):  # a form's values: absent is empty
            context["values"] = defaultdict(str, context["values"])
        body = templating.render(self.locale, template, {**base, **context})
        return HttpResponse(status, body, HTML, SECURITY_HEADERS + self.cookies)

    @property
    def csrf_token(self) -> str:
        if self.session is not None:
            return self.session.csrf
        return self.pre_token or ""

    def redirect(self, location: str, **query: Any) -> HttpResponse:
        """303 See Other after a POST (so a reload does not post again)."""
        if query:
            location += ("&" if "?" in location else "?") + urlencode(
                {k: v for k, v in query.items() if v is not None})
        return HttpResponse(303, b"", HTML, [(b"Location", location.encode()),
                                             *SECURITY_HEADERS, *self.cookies])


def json_response(body: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(status, json.dumps(body, ensure_ascii=False,
                                           separators=(",", ":")).encode(),
                        b"application/json", [(b"Cache-Control", b"no-store"),
                                              (b"X-Content-Type-Options", b"nosniff")])


def download(data: bytes, name: str, content_type: bytes = b"text/csv; charset=utf-8",
             file: str | None = None) -> HttpResponse:
    """`data`, or the file at `file` (sent from disk as it is read)."""
    return HttpResponse(200, data, content_type, [
        (b"Content-Disposition", f'attachment; filename="{name}"'.encode()),
        (b"Cache-Control", b"no-store"), (b"X-Content-Type-Options", b"nosniff")], file=file)
