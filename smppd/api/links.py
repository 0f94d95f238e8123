"""The short-link listener (`links.listen`): `GET /<code>` answers 302 to the link's
URL, or a plain 404 page for a code that names no link.

Built to answer thousands of redirects a second on one reactor thread: the answer
for a code (its Location made once: `target_uri`) comes from a bounded cache, the
codes it misses are looked up a batch at a time on the read pool
(smppd.callbacks.targets), and the click is queued for the writer without holding
the 302 (smppd.callbacks.clicks): a cached code is answered without a Deferred, a
thread or a query. Clicks still go through the one writer, which decides first or
repeat (smppd.store.links).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from html import escape
from typing import Any
from urllib.parse import urlsplit

from twisted.internet import defer

from ..callbacks.agents import CLASSES, AgentClasses
from ..callbacks.clicks import ClickQueue
from ..callbacks.delivery import target_uri
from ..callbacks.metrics import CallbackMetrics
from ..callbacks.targets import Busy, LinkTargets
from ..store.links import CODE
from .server import HttpFactory, HttpLimits, HttpRequest, HttpResponse

log = logging.getLogger("smppd.links")
_HTML = b"text/html; charset=utf-8"
NOT_FOUND = (b"<!doctype html><html><head><meta charset=utf-8><title>Link not found</title>"
             b"</head><body><h1>Link not found</h1><p>This link does not exist or is no "
             b"longer valid.</p></body></html>")
UNAVAILABLE = (b"<!doctype html><html><head><meta charset=utf-8><title>Try again</title>"
               b"</head><body><h1>Please try again in a moment</h1></body></html>")
COUNT_DELAY = 0.5  # seconds a redirect may wait to be counted in the metrics
_NO_CACHE = [(b"Cache-Control", b"no-store"), (b"Referrer-Policy", b"no-referrer")]


class LinkServer:
    def __init__(self, reactor: Any, read: Any, put: Any, metrics: CallbackMetrics,
                 base_url: str, agents: AgentClasses) -> None:
        self.reactor = reactor
        self.metrics = metrics
        self.prefix = urlsplit(base_url).path or "/"
        self.agents = agents
        self.targets: LinkTargets[HttpResponse] = LinkTargets(reactor, read, redirect)
        self.clicks = ClickQueue(reactor, put, metrics.unrecorded)
        self.found = metrics.redirects.labels("found")
        self.unknown = metrics.redirects.labels("unknown")
        self.by_agent = {kind: metrics.clicks.labels(kind) for kind in CLASSES}
        # Redirects found, per agent class, counted here and added to the counters
        # at most COUNT_DELAY later: two locked counter increments per redirect were
        # a fortieth of the listener's time per request.
        self._counted: dict[str, int] = dict.fromkeys(CLASSES, 0)
        self._count_call: Any = None

    def factory(self, limits: HttpLimits) -> HttpFactory:
        """The daemon's HTTP limits (timeouts, connection cap), with bodies capped
        small: a redirect request has none worth reading."""
        return HttpFactory(self.handle, replace(limits, max_body=1024, max_job_body=1024),
                           self.reactor)

    def count(self) -> None:
        """Add the redirects counted since the last time to the metrics."""
        if self._count_call is not None and self._count_call.active():
            self._count_call.cancel()
        self._count_call = None
        for kind, number in self._counted.items():
            if number:
                self.found.inc(number)
                self.by_agent[kind].inc(number)
                self._counted[kind] = 0

    def stop(self) -> defer.Deferred[Any]:
        """The clicks answered so far handed to the writer and written."""
        self.count()
        return self.clicks.stop()

    def handle(self, request: HttpRequest) -> HttpResponse | defer.Deferred[HttpResponse]:
        if request.method not in (b"GET", b"HEAD"):
            return HttpResponse(405, b"use GET\n", b"text/plain", [(b"Allow", b"GET, HEAD")])
        path = request.path
        code = path[len(self.prefix):] if path.startswith(self.prefix) else ""
        if not CODE.match(code):
            self.unknown.inc()
            return _not_found()
        kind = self.agents.of(request.headers.get(b"user-agent", b""))
        if isinstance(kind, defer.Deferred):
            return kind.addCallback(self._resolve, code)
        return self._resolve(kind, code)

    def _resolve(self, kind: str, code: str) -> HttpResponse | defer.Deferred[HttpResponse]:
        target = self.targets.find(code)
        if isinstance(target, defer.Deferred):
            return target.addCallbacks(self._answer, _unavailable, callbackArgs=(code, kind))
        return self._answer(target, code, kind)

    def _answer(self, target: HttpResponse | None, code: str, kind: str) -> HttpResponse:
        if target is None:
            self.unknown.inc()
            return _not_found()
        self._counted[kind] += 1
        if self._count_call is None:
            self._count_call = self.reactor.callLater(COUNT_DELAY, self.count)
        self.clicks.add(code, self.reactor.seconds(), kind)
        return target  # shared by every click on this code: the server only reads it


def redirect(url: str) -> HttpResponse:
    """The 302 for a link, made once per code and kept in the cache."""
    try:
        location = target_uri(url)
    except Exception:  # stored as the customer wrote it; send it as it is
        location = url.encode("utf-8")
    page = (b'<!doctype html><a href="' + escape(url).encode("utf-8") + b'">'
            + escape(url).encode("utf-8") + b"</a>")
    return HttpResponse(302, page, _HTML, [(b"Location", location), *_NO_CACHE], shared=True)


def _not_found() -> HttpResponse:
    return HttpResponse(404, NOT_FOUND, _HTML, list(_NO_CACHE))


def _unavailable(failure: Any) -> HttpResponse:
    if not failure.check(Busy):
        log.warning("links: cannot look a code up: %s", failure.getErrorMessage())
    return HttpResponse(503, UNAVAILABLE, _HTML, [(b"Retry-After", b"5"), *_NO_CACHE])
