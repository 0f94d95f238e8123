"""The HTTP API on twisted.web: routing, authentication, JSON in and out.

One leaf resource routes by path itself: the API has a handful of paths, and a
tree of Resource objects would only add lookups per request. Every handler's
database work runs off the reactor (the app returns Deferreds); errors become a
JSON body naming the field, never a traceback page.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web import resource, server

from . import validation
from .validation import ApiError

log = logging.getLogger("smppd.api")


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str


class Application(Protocol):
    """What the API needs from the daemon."""

    metrics: Any

    def accept_message(self, account: Account, message: validation.ValidMessage,
                       ) -> defer.Deferred[dict[str, Any]]: ...

    def get_message(self, account: Account, message_id: str) -> defer.Deferred[Any]: ...

    def list_messages(self, account: Account, where: Any, cursor: str | None,
                      limit: int) -> defer.Deferred[Any]: ...

    def get_balance(self, account: Account) -> defer.Deferred[Any]: ...

    def readiness(self) -> tuple[bool, dict[str, Any]]: ...


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class LimitedRequest(server.Request):
    """A request that stops buffering a body past the configured limit (413)."""

    max_body = 64 * 1024

    def gotLength(self, length: int | None) -> None:
        self.too_large = length is not None and length > self.max_body
        if self.too_large:
            self.content = io.BytesIO()
        else:
            super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.too_large:
            return
        self.content.write(data)
        if self.content.tell() > self.max_body:  # chunked, no length up front
            self.too_large = True
            self.content = io.BytesIO()


class ApiResource(resource.Resource):
    isLeaf = True

    def __init__(self, app: Application, tokens: dict[bytes, Account]) -> None:
        super().__init__()
        self.app = app
        self.tokens = tokens  # sha256(token) -> account: no token kept in clear here

    # twisted.web entry point ----------------------------------------------------------

    def render(self, request: server.Request) -> Any:
        request.setHeader(b"content-type", b"application/json")
        try:
            result = self._route(request)
        except ApiError as exc:
            return self._error(request, exc)
        if isinstance(result, defer.Deferred):
            result.addCallbacks(lambda value: self._finish(request, value),
                                lambda failure: self._failed(request, failure))
            return server.NOT_DONE_YET
        return result

    def _route(self, request: server.Request) -> Any:
        path = request.path.rstrip(b"/") or b"/"
        method = request.method
        if path == b"/healthz":
            return self._json(request, 200, {"status": "ok"})
        if path == b"/readyz":
            ready, detail = self.app.readiness()
            return self._json(request, 200 if ready else 503, detail)
        if path == b"/metrics":
            request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
            return generate_latest(self.app.metrics.registry)
        if not path.startswith(b"/v1/"):
            raise ApiError(404, "no such path")
        account = self._authenticate(request)
        if getattr(request, "too_large", False):
            raise ApiError(413, f"the body is larger than {request.max_body} bytes")
        if path == b"/v1/messages":
            if method == b"POST":
                return self._send(request, account)
            if method == b"GET":
                return self._list(request, account)
            raise ApiError(405, "use GET or POST")
        if path.startswith(b"/v1/messages/"):
            if method != b"GET":
                raise ApiError(405, "use GET")
            message_id = path[len(b"/v1/messages/"):].decode("ascii", "replace")
            return self.app.get_message(account, message_id).addCallback(
                lambda found: found if found is not None
                else ApiError(404, "no such message", "id"))
        if path == b"/v1/account":
            return self.app.get_balance(account).addCallback(
                lambda balance: {"name": account.name, "balance": balance})
        raise ApiError(404, "no such path")

    def _authenticate(self, request: server.Request) -> Account:
        header = request.getHeader(b"authorization") or b""
        scheme, _, token = header.partition(b" ")
        account = None
        if scheme.lower() == b"bearer" and token:
            account = self.tokens.get(hashlib.sha256(token.strip()).digest())
        if account is None:
            request.setHeader(b"www-authenticate", b'Bearer realm="smppd"')
            raise ApiError(401, "a valid Authorization: Bearer token is required")
        return account

    # Handlers ----------------------------------------------------------------------

    def _send(self, request: server.Request, account: Account) -> defer.Deferred[Any]:
        metrics = self.app.metrics
        try:
            data = validation.parse_json_object(request.content.read())
            message = validation.message(data)
        except ApiError:
            metrics.api_messages.labels("invalid").inc()
            raise
        request.setResponseCode(201)
        return self.app.accept_message(account, message)

    def _list(self, request: server.Request, account: Account) -> defer.Deferred[Any]:
        args = {}
        for key, values in request.args.items():
            name = key.decode("utf-8", "replace")
            if len(values) != 1:
                raise ApiError(400, "give this parameter once", name)
            args[name] = values[0].decode("utf-8", "replace")
        where, cursor, limit = validation.list_query(args)
        return self.app.list_messages(account, where, cursor, limit).addCallback(
            lambda page: {"messages": page[0], "next_cursor": page[1]})

    # Output ------------------------------------------------------------------------

    @staticmethod
    def _json(request: server.Request, code: int, body: Any) -> bytes:
        request.setResponseCode(code)
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    def _error(self, request: server.Request, exc: ApiError) -> bytes:
        return self._json(request, exc.status, exc.body())

    def _finish(self, request: server.Request, value: Any) -> None:
        if request._disconnected or request.finished:
            return
        if isinstance(value, ApiError):
            body = self._error(request, value)
        else:
            body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        # A length, not chunked encoding: one write, and clients parse it faster.
        request.setHeader(b"content-length", b"%d" % len(body))
        request.write(body)
        request.finish()

    def _failed(self, request: server.Request, failure: Failure) -> None:
        if failure.check(ApiError):
            self._finish(request, failure.value)
            return
        log.error("API %s %s failed: %s", request.method.decode(), request.path.decode(),
                  failure.getErrorMessage())
        self._finish(request, ApiError(503, "the store is unavailable; retry later"))


def make_site(app: Application, tokens: dict[bytes, Account], max_body: int) -> server.Site:
    root = ApiResource(app, tokens)

    class Request(LimitedRequest):
        pass

    Request.max_body = max_body
    site = server.Site(root, requestFactory=Request)
    site.displayTracebacks = False
    site.noisy = False
    site.log = lambda request: None  # access logs are per request; the daemon logs events
    return site

