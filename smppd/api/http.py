"""The HTTP API: routing, authentication, JSON in and out.

Every handler's database work runs off the reactor (the application returns
Deferreds); every error becomes a JSON body naming the field, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet import defer
from twisted.python.failure import Failure

from . import forms, inbound, ops, validation
from .server import LARGE_BODIES, HttpFactory, HttpRequest, HttpResponse
from .validation import ApiError

log = logging.getLogger("smppd.api")
PAGES = ("/portal", "/ops")  # served by smppd.portal when the daemon hands it in


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str


class Application(Protocol):
    """What the API needs from the daemon."""

    metrics: Any
    inbound: Any  # smppd.daemon.inbound.InboundService

    def accept_message(self, account: Account, message: validation.ValidMessage,
                       channel: str = "api", sent_by: str | None = None,
                       ) -> defer.Deferred[dict[str, Any]]: ...

    def get_message(self, account: Account, message_id: str) -> defer.Deferred[Any]: ...

    def list_messages(self, account: Account, where: Any, cursor: str | None,
                      limit: int) -> defer.Deferred[Any]: ...

    def get_balance(self, account: Account) -> defer.Deferred[Any]: ...

    def create_job(self, account: Account, read_job: Callable[[], validation.ValidJob],
                   channel: str = "api", sent_by: str | None = None,
                   ) -> defer.Deferred[dict[str, Any]]: ...

    def get_job(self, account: Account, job_id: str) -> defer.Deferred[Any]: ...

    def job_action(self, account: Account, job_id: str,
                   action: str) -> defer.Deferred[Any]: ...

    def readiness(self) -> tuple[bool, dict[str, Any]]: ...


def token_digest(token: str | bytes) -> bytes:
    return hashlib.sha256(token.encode() if isinstance(token, str) else token).digest()


def token_label(token: str | bytes) -> str:
    """Who sent a message through the API, as its history shows it: the token's
    fingerprint, never the token (issue 15)."""
    return "token:" + token_digest(token.strip()).hex()[:12]


def _json(status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None,
          ) -> HttpResponse:
    return HttpResponse(status, json.dumps(body, ensure_ascii=False,
                                           separators=(",", ":")).encode(),
                        headers=headers or [])


def _error(exc: ApiError) -> HttpResponse:
    headers = [(b"WWW-Authenticate", b'Bearer realm="smppd"')] if exc.status == 401 else None
    return _json(exc.status, exc.body(), headers)


class Api:
    def __init__(self, app: Application, tokens: dict[bytes, Account], max_body: int,
                 max_job_body: int | None = None, serve_ops: bool = True,
                 pages: Any = None) -> None:
        self.app = app
        # The portal and console (issue 15): their own package, handed in by the daemon.
        self.pages = pages
        self.tokens = tokens  # sha256(token) -> account: no token kept in clear here
        self.max_body = max_body
        self.max_job_body = max_job_body or max_body
        # False when http.ops_listen serves /metrics, /healthz, /readyz elsewhere.
        self.serve_ops = serve_ops

    def handle(self, request: HttpRequest) -> HttpResponse | defer.Deferred[HttpResponse]:
        return ops.counted(self.app.metrics, request, self._answer(request))

    def _answer(self, request: HttpRequest) -> HttpResponse | defer.Deferred[HttpResponse]:
        try:
            result = self._route(request)
        except ApiError as exc:
            return _error(exc)
        if isinstance(result, defer.Deferred):
            return result.addCallbacks(self._done, self._failed,
                                       callbackArgs=(request,), errbackArgs=(request,))
        return result

    def _route(self, request: HttpRequest) -> Any:
        path = request.path.rstrip("/") or "/"
        method = request.method
        if self.serve_ops and path in ops.OPS_PATHS:
            return ops.ops_response(self.app, path)
        if self.pages is not None and path.startswith(PAGES):
            return self.pages(request)
        if not path.startswith("/v1/"):
            raise ApiError(404, "no such path")
        account = self._authenticate(request)
        if request.too_large:
            limit = self.max_job_body if path.encode().startswith(LARGE_BODIES) \
                else self.max_body
            raise ApiError(413, f"the body is larger than {limit} bytes")
        if path == "/v1/messages":
            if method == b"POST":
                return self._send(request, account)
            if method == b"GET":
                return self._list(request, account)
            raise ApiError(405, "use GET or POST")
        if path.startswith("/v1/messages/"):
            if method != b"GET":
                raise ApiError(405, "use GET")
            return self.app.get_message(account, path[len("/v1/messages/"):]).addCallback(
                lambda found: found if found is not None
                else ApiError(404, "no such message", "id"))
        if path == "/v1/jobs":
            if method != b"POST":
                raise ApiError(405, "use POST")
            # Parsed on the pool thread with the rows: a 30 MB JSON body would hold
            # the reactor for a third of a second.
            return self.app.create_job(account, lambda: self._job_body(request), "api",
                                       _sent_by(request)).addCallback(
                lambda body: HttpResponse(201, json.dumps(body, separators=(",", ":")).encode()))
        if path.startswith("/v1/jobs/"):
            job_id, _, action = path[len("/v1/jobs/"):].partition("/")
            if not action:
                if method != b"GET":
                    raise ApiError(405, "use GET")
                return self.app.get_job(account, job_id).addCallback(
                    lambda found: found if found is not None
                    else ApiError(404, "no such job", "id"))
            if action not in ("pause", "resume", "stop"):
                raise ApiError(404, "no such path (pause, resume or stop)")
            if method != b"POST":
                raise ApiError(405, "use POST")
            return self.app.job_action(account, job_id, action).addCallback(
                lambda found: found if found is not None
                else ApiError(404, "no such job", "id"))
        if path == "/v1/account":
            return self.app.get_balance(account).addCallback(
                lambda balance: {"name": account.name, "balance": balance})
        if path.startswith(inbound.PATHS):  # issue 11: numbers, contacts, polls
            return inbound.route(self.app.inbound, request, account, path)
        raise ApiError(404, "no such path")

    @staticmethod
    def _job_body(request: HttpRequest) -> validation.ValidJob:
        content_type = request.headers.get(b"content-type", b"")
        if not forms.is_multipart(content_type):
            return validation.job(validation.parse_json_object(request.body))
        parts = forms.parse_multipart(request.body, content_type)
        request.body = b""  # the parts are copies: do not hold the upload twice
        if "file" not in parts:
            raise ApiError(400, "missing the CSV file part", "file")
        fields = {name: forms.form_text(parts, name) for name in parts if name != "file"}
        return validation.job(fields, forms.csv_rows(parts["file"]))

    def _authenticate(self, request: HttpRequest) -> Account:
        scheme, _, token = request.headers.get(b"authorization", b"").partition(b" ")
        account = None
        if scheme.lower() == b"bearer" and token:
            account = self.tokens.get(token_digest(token.strip()))
        if account is None:
            raise ApiError(401, "a valid Authorization: Bearer token is required")
        return account

    def _send(self, request: HttpRequest, account: Account) -> defer.Deferred[Any]:
        try:
            message = validation.message(validation.parse_json_object(request.body))
        except ApiError:
            self.app.metrics.api_messages.labels("invalid").inc()
            raise
        return self.app.accept_message(account, message, "api", _sent_by(request)).addCallback(
            lambda body: HttpResponse(201, json.dumps(body, separators=(",", ":")).encode()))

    def _list(self, request: HttpRequest, account: Account) -> defer.Deferred[Any]:
        args = {}
        for name, values in request.query.items():
            if len(values) != 1:
                raise ApiError(400, "give this parameter once", name)
            args[name] = values[0]
        where, cursor, limit = validation.list_query(args)
        return self.app.list_messages(account, where, cursor, limit).addCallback(
            lambda page: {"messages": page[0], "next_cursor": page[1]})

    @staticmethod
    def _done(value: Any, request: HttpRequest) -> HttpResponse:
        if isinstance(value, HttpResponse):
            return value
        if isinstance(value, ApiError):
            return _error(value)
        return _json(200, value)

    @staticmethod
    def _failed(failure: Failure, request: HttpRequest) -> HttpResponse:
        if failure.check(ApiError):
            return _error(failure.value)
        log.error("API %s %s failed: %s", request.method.decode(), request.path,
                  failure.getErrorMessage())
        return _error(ApiError(503, "the store is unavailable; retry later"))


def _sent_by(request: HttpRequest) -> str:
    return token_label(request.headers.get(b"authorization", b"").partition(b" ")[2])


def make_factory(app: Application, tokens: dict[bytes, Account], max_body: int,
                 max_job_body: int | None = None, serve_ops: bool = True,
                 pages: Any = None) -> HttpFactory:
    return HttpFactory(Api(app, tokens, max_body, max_job_body, serve_ops, pages).handle,
                       max_body, max_job_body)
