"""The HTTP API: routing, authentication, JSON in and out.

Every handler's database work runs off the reactor (the application returns
Deferreds); every error becomes a JSON body naming the field, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from twisted.internet import defer
from twisted.python.failure import Failure

from ..ratelog import RateLimitedLog
from ..store.idempotency import Claim, Stored
from ..store.writer import StoreUnavailable, WriterStopped
from . import callbacks as callbacks_api
from . import forms, idempotency, inbound, ops, validation
from . import reports as report_routes  # issue 10
from .lockout import AuthLockout
from .server import LARGE_BODIES, HttpFactory, HttpLimits, HttpRequest, HttpResponse
from .validation import ApiError

log = logging.getLogger("smppd.api")
PAGES = ("portal", "ops")  # first path segments served by smppd.portal, when handed in


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str


class Application(Protocol):
    """What the API needs from the daemon."""

    metrics: Any
    inbound: Any  # smppd.daemon.inbound.InboundService
    reports: Any  # issue 10: smppd.reports.service.ReportService
    campaigns: Any  # issue 10: smppd.reports.campaigns.Campaigns

    def accept_message(self, account: Account, message: validation.ValidMessage,
                       claim: Claim | None = None, channel: str = "api",
                       sent_by: str | None = None) -> defer.Deferred[Any]: ...

    def find_idempotency_key(self, account: Account, key: str,
                             ) -> defer.Deferred[Stored | None]: ...

    def get_message(self, account: Account, message_id: str) -> defer.Deferred[Any]: ...

    def list_messages(self, account: Account, where: Any, cursor: str | None,
                      limit: int) -> defer.Deferred[Any]: ...

    def get_balance(self, account: Account) -> defer.Deferred[Any]: ...

    def create_job(self, account: Account, read_job: Callable[[], validation.ValidJob],
                   key: str | None = None, channel: str = "api",
                   sent_by: str | None = None) -> defer.Deferred[Any]: ...

    def get_job(self, account: Account, job_id: str) -> defer.Deferred[Any]: ...

    def job_action(self, account: Account, job_id: str,
                   action: str) -> defer.Deferred[Any]: ...

    def readiness(self) -> tuple[bool, dict[str, Any]]: ...


def token_digest(token: str | bytes) -> bytes:
    return hashlib.sha256(token.encode() if isinstance(token, str) else token).digest()


def token_label(token: str | bytes) -> str:
    """Who sent a message through the API, as its history shows it: the token's
    fingerprint, never the token (issue 15)."""
    return digest_label(token_digest(token.strip()))


def digest_label(digest: bytes) -> str:
    """token_label from the digest authentication already made (one hash a request)."""
    return "token:" + digest.hex()[:12]


def _json(status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None,
          ) -> HttpResponse:
    return HttpResponse(status, json.dumps(body, ensure_ascii=False,
                                           separators=(",", ":")).encode(),
                        headers=headers or [])


def _error(exc: ApiError) -> HttpResponse:
    headers = []
    if exc.status == 401:
        headers.append((b"WWW-Authenticate", b'Bearer realm="smppd"'))
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers.append((b"Retry-After", b"%d" % retry_after))
    return _json(exc.status, exc.body(), headers)


class LockedOut(ApiError):
    """Too many failed authentications from this address: 429 with Retry-After."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(429, f"too many failed authentications from this address; retry "
                         f"in {retry_after} s")
        self.retry_after = retry_after


# Failures that mean "the store cannot answer now" (503, retry later). Anything else
# escaping a handler is a bug: 500, with the traceback in the log.
STORE_FAILURES: tuple[type[BaseException], ...] = (
    SQLAlchemyError, WriterStopped, StoreUnavailable, OSError, defer.CancelledError)


class Api:
    def __init__(self, app: Application, tokens: dict[bytes, Account], max_body: int,
                 max_job_body: int | None = None, lockout: AuthLockout | None = None,
                 clock: Any = None, serve_ops: bool = True, pages: Any = None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.app = app
        # The portal and console (issue 15): their own package, handed in by the daemon.
        self.pages = pages
        self.tokens = tokens  # sha256(token) -> account: no token kept in clear here
        self.max_body = max_body
        self.max_job_body = max_job_body or max_body
        # False when http.ops_listen serves /metrics, /healthz, /readyz elsewhere.
        self.serve_ops = serve_ops
        self.lockout = lockout or AuthLockout(clock)
        self.in_progress = idempotency.InProgress()
        self.auth_log = RateLimitedLog(log, clock, burst=5, interval=60.0)

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
        """Routes on the path's segments, each decoded on its own: /v1/messages/a%2Fb
        asks for the message "a/b", it is not a path of four segments."""
        segments = request.segments
        method = request.method
        if self.serve_ops and len(segments) == 1 and "/" + segments[0] in ops.OPS_PATHS:
            return ops.ops_response(self.app, "/" + segments[0])
        if self.pages is not None and segments and segments[0] in PAGES:
            return self.pages(request)
        if not segments or segments[0] != "v1":
            raise ApiError(404, "no such path")
        account, sent_by = self._authenticate(request)
        resource = segments[1:]
        path = "/" + "/".join(segments)  # for the routes that match on the path
        if request.too_large:
            limit = self.max_job_body if path.encode().startswith(LARGE_BODIES) \
                else self.max_body
            raise ApiError(413, f"the body is larger than {limit} bytes")
        handled = report_routes.route(self.app, request, account, path)  # issue 10
        if handled is not None:
            return handled
        if resource == ("messages",):
            if method == b"POST":
                return self._send(request, account, sent_by)
            if method == b"GET":
                return self._list(request, account)
            raise ApiError(405, "use GET or POST")
        if len(resource) == 2 and resource[0] == "messages":
            if method != b"GET":
                raise ApiError(405, "use GET")
            return self.app.get_message(account, resource[1]).addCallback(
                lambda found: found if found is not None
                else ApiError(404, "no such message", "id"))
        if resource == ("jobs",):
            if method != b"POST":
                raise ApiError(405, "use POST")
            return self._create_job(request, account, sent_by)
        if len(resource) in (2, 3) and resource[0] == "jobs":
            job_id = resource[1]
            if len(resource) == 2:
                if method != b"GET":
                    raise ApiError(405, "use GET")
                return self.app.get_job(account, job_id).addCallback(
                    lambda found: found if found is not None
                    else ApiError(404, "no such job", "id"))
            action = resource[2]
            if action not in ("pause", "resume", "stop"):
                raise ApiError(404, "no such path (pause, resume or stop)")
            if method != b"POST":
                raise ApiError(405, "use POST")
            return self.app.job_action(account, job_id, action).addCallback(
                lambda found: found if found is not None
                else ApiError(404, "no such job", "id"))
        if path == "/v1/callbacks" or path.startswith("/v1/callbacks/"):
            return callbacks_api.route(getattr(self.app, "callbacks", None), request,
                                       account.id, path)
        if resource == ("account",):
            return self.app.get_balance(account).addCallback(
                lambda balance: {"name": account.name, "balance": balance})
        if path.startswith(inbound.PATHS) and not any("/" in s for s in segments):
            return inbound.route(self.app.inbound, request, account, path)  # issue 11
        raise ApiError(404, "no such path")

    def _create_job(self, request: HttpRequest, account: Account,
                    sent_by: str) -> defer.Deferred[Any]:
        # Parsed on the pool thread with the rows: a 30 MB JSON body would hold the
        # reactor for a third of a second. The fingerprint for an Idempotency-Key is
        # made there too, and read here once the job (or a kept answer) is back.
        key = idempotency.key_of(request)
        made: dict[str, str | None] = {}

        def read() -> validation.ValidJob:
            job = self._job_body(request, fingerprinted=key is not None)
            made["fingerprint"] = job.fingerprint
            return job

        def created(result: Any) -> HttpResponse:
            if isinstance(result, Stored):
                return idempotency.answer(result, made.get("fingerprint"))
            return HttpResponse(201, idempotency.json_body(result))

        def work() -> defer.Deferred[Any]:
            return self.app.create_job(account, read, key, "api", sent_by) \
                .addCallback(created)

        return work() if key is None else self.in_progress.run(account.id, key, work)

    @staticmethod
    def _job_body(request: HttpRequest, fingerprinted: bool = False) -> validation.ValidJob:
        content_type = request.headers.get(b"content-type", b"")
        if not forms.is_multipart(content_type):
            data = validation.parse_json_object(request.body)
            job = validation.job(data)
            if fingerprinted:
                job = replace(job, fingerprint=idempotency.fingerprint("POST /v1/jobs", data))
            return job
        # Views, not copies, of the body's parts (issue 14): the upload is held once.
        parts = forms.parse_multipart(request.body, content_type, views=True)
        request.body = b""
        if "file" not in parts:
            raise ApiError(400, "missing the CSV file part", "file")
        fields = {name: forms.form_text(parts, name) for name in parts if name != "file"}
        job = validation.job(fields, forms.csv_rows(parts["file"]))
        if fingerprinted:
            job = replace(job, fingerprint=idempotency.form_fingerprint("POST /v1/jobs", parts))
        return job

    def _authenticate(self, request: HttpRequest) -> tuple[Account, str]:
        """The account, and the token's label for the history's "sent by" (never the
        token)."""
        wait = self.lockout.retry_after(request.peer)
        if wait is not None:  # the token is not even looked at
            raise LockedOut(wait)
        header = request.headers.get(b"authorization")
        scheme, _, token = (header or b"").partition(b" ")
        account = digest = None
        if scheme.lower() == b"bearer" and token:
            digest = token_digest(token.strip())
            account = self.tokens.get(digest)
        if account is None or digest is None:
            if header is not None:  # a credential was offered, and it was wrong
                self._auth_failed(request)
            raise ApiError(401, "a valid Authorization: Bearer token is required")
        return account, digest_label(digest)

    def _auth_failed(self, request: HttpRequest) -> None:
        """Counted against the address; logged rate-limited, never with the token."""
        count = self.lockout.failed(request.peer)
        self.auth_log.warning("api-auth", "api: authentication failed from %s (%s %s), "
                              "%d in the last %g s", request.peer, request.method.decode(),
                              request.path[:100], count, self.lockout.window)
        if self.lockout.locked(request.peer):
            self.auth_log.warning("api-auth-lockout", "api: %s is refused (429) after %d "
                                  "failed authentications in %g s", request.peer, count,
                                  self.lockout.window)

    def _send(self, request: HttpRequest, account: Account,
              sent_by: str) -> defer.Deferred[Any]:
        metrics = self.app.metrics
        try:
            data = validation.parse_json_object(request.body)
            message = validation.message(data)
            key = idempotency.key_of(request)
        except ApiError:
            metrics.api_message("invalid")
            raise
        if key is None:
            return self.app.accept_message(account, message, None, "api", sent_by) \
                .addCallback(self._accepted)
        fingerprint = idempotency.fingerprint("POST /v1/messages", data)

        def found(stored: Stored | None) -> Any:
            if stored is None:
                return self.app.accept_message(account, message, Claim(
                    account.id, key, fingerprint), "api", sent_by).addCallback(
                    self._accepted, fingerprint)
            metrics.api_message("replayed")
            return idempotency.answer(stored, fingerprint)

        return self.in_progress.run(account.id, key, lambda: self.app.find_idempotency_key(
            account, key).addCallback(found))

    @staticmethod
    def _accepted(result: Any, fingerprint: str | None = None) -> HttpResponse:
        if isinstance(result, Stored):  # a retry elsewhere committed first: its answer
            return idempotency.answer(result, fingerprint)
        return HttpResponse(201, idempotency.json_body(result))

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
        if failure.check(*STORE_FAILURES):
            log.error("API %s %s failed: %s", request.method.decode(), request.path,
                      failure.getErrorMessage())
            return _error(ApiError(503, "the store is unavailable; retry later"))
        log.error("API %s %s failed: %s", request.method.decode(), request.path,
                  failure.getTraceback())
        return _json(500, {"error": "internal error"})


def make_factory(app: Application, tokens: dict[bytes, Account], limits: HttpLimits,
                 lockout: AuthLockout | None = None, clock: Any = None,
                 serve_ops: bool = True, pages: Any = None) -> HttpFactory:
    """The HTTP listener's factory, its API (and the portal's pages when handed in),
    and their counts in /metrics."""
    api = Api(app, tokens, limits.max_body, limits.max_job_body, lockout, clock, serve_ops,
              pages)
    factory = HttpFactory(api.handle, limits, clock)
    factory.api = api  # for a reload of the limits
    app.metrics.registry.register(HttpCollector(factory, api.lockout))
    return factory


class HttpCollector(Collector):
    """Connection and authentication counts, read at scrape time."""

    def __init__(self, factory: HttpFactory, lockout: AuthLockout) -> None:
        self.factory = factory
        self.lockout = lockout

    def collect(self) -> Iterable[Any]:
        stats = self.factory.stats
        yield GaugeMetricFamily("smppd_http_connections", "Open HTTP connections",
                                value=len(self.factory.connections))
        yield CounterMetricFamily("smppd_http_connections_refused_total",
                                  "Connections answered 503 at http.max_connections",
                                  value=stats.refused)
        yield CounterMetricFamily("smppd_http_connections_evicted_total",
                                  "Idle connections closed to make room for new ones",
                                  value=stats.evicted)
        closed = CounterMetricFamily("smppd_http_timeouts_total",
                                     "Connections closed by a timeout", labels=["kind"])
        for kind in ("idle_timeout", "header_timeout", "body_timeout", "send_timeout"):
            closed.add_metric([kind], stats.closed.get(kind, 0))
        yield closed
        yield CounterMetricFamily("smppd_api_auth_failures_total",
                                  "Requests with a wrong credential",
                                  value=self.lockout.failures_total)
        yield CounterMetricFamily("smppd_api_auth_throttled_total",
                                  "Requests answered 429 after too many failures",
                                  value=self.lockout.refused_total)
