"""The short-link listener (`links.listen`): `GET /<code>` answers 302 to the link's
URL once the click is committed, or a plain 404 page for a code that names no link.

The click is a writer operation that also looks the code up, so a click costs no
read of its own and no statement of its own: the writer takes the clicks that came
in while it committed the previous batch, finds their links in one query and records
them all in two statements (see smppd.store.links). The browser waits for that
commit, which is the same group commit every message waits for.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from html import escape
from typing import Any
from urllib.parse import urlsplit

from twisted.internet import defer

from ..callbacks.agents import CLASSES, AgentClasses
from ..callbacks.delivery import target_uri
from ..callbacks.metrics import CallbackMetrics
from ..store.callback_operations import ClickSeen
from ..store.links import CODE
from .server import HttpFactory, HttpLimits, HttpRequest, HttpResponse

log = logging.getLogger("smppd.links")
_HTML = b"text/html; charset=utf-8"
NOT_FOUND = (b"<!doctype html><html><head><meta charset=utf-8><title>Link not found</title>"
             b"</head><body><h1>Link not found</h1><p>This link does not exist or is no "
             b"longer valid.</p></body></html>")
UNAVAILABLE = (b"<!doctype html><html><head><meta charset=utf-8><title>Try again</title>"
               b"</head><body><h1>Please try again in a moment</h1></body></html>")
_NO_CACHE = [(b"Cache-Control", b"no-store"), (b"Referrer-Policy", b"no-referrer")]


class LinkServer:
    def __init__(self, reactor: Any, put: Any, metrics: CallbackMetrics, base_url: str,
                 agents: AgentClasses) -> None:
        self.reactor = reactor
        self.put = put
        self.metrics = metrics
        self.prefix = urlsplit(base_url).path or "/"
        self.agents = agents
        self.found = metrics.redirects.labels("found")
        self.unknown = metrics.redirects.labels("unknown")
        self.by_agent = {kind: metrics.clicks.labels(kind) for kind in CLASSES}

    def factory(self, limits: HttpLimits) -> HttpFactory:
        """The daemon's HTTP limits (timeouts, connection cap), with bodies capped
        small: a redirect request has none worth reading."""
        return HttpFactory(self.handle, replace(limits, max_body=1024, max_job_body=1024),
                           self.reactor)

    def handle(self, request: HttpRequest) -> HttpResponse | defer.Deferred[HttpResponse]:
        if request.method not in (b"GET", b"HEAD"):
            return HttpResponse(405, b"use GET\n", b"text/plain", [(b"Allow", b"GET, HEAD")])
        path = request.path
        code = path[len(self.prefix):] if path.startswith(self.prefix) else ""
        if not CODE.match(code):
            self.unknown.inc()
            return HttpResponse(404, NOT_FOUND, _HTML, list(_NO_CACHE))
        kind = self.agents.of(request.headers.get(b"user-agent", b""))
        if isinstance(kind, defer.Deferred):
            return kind.addCallback(self._click, code)
        return self._click(kind, code)

    def _click(self, kind: str, code: str) -> defer.Deferred[HttpResponse]:
        def answer(url: str | None) -> HttpResponse:
            if url is None:
                self.unknown.inc()
                return HttpResponse(404, NOT_FOUND, _HTML, list(_NO_CACHE))
            self.found.inc()
            self.by_agent[kind].inc()
            try:
                location = target_uri(url)
            except Exception:  # stored as the customer wrote it; send it as it is
                location = url.encode("utf-8")
            page = (b'<!doctype html><a href="' + escape(url).encode("utf-8") + b'">'
                    + escape(url).encode("utf-8") + b"</a>")
            return HttpResponse(302, page, _HTML, [(b"Location", location), *_NO_CACHE])

        def failed(failure: Any) -> HttpResponse:
            log.warning("links: click not recorded: %s", failure.getErrorMessage())
            return HttpResponse(503, UNAVAILABLE, _HTML, [(b"Retry-After", b"5"), *_NO_CACHE])

        return self.put(ClickSeen(code, self.reactor.seconds(), kind)).addCallbacks(
            answer, failed)
