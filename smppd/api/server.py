"""A small HTTP/1.1 server protocol for Twisted, parsing with httptools (llhttp).

Why not twisted.web: measured on this machine, its request path costs about 200 µs
of CPU per POST (Request objects, header objects, and a Content-Type parse through
the email package), a fifth of the daemon's whole budget per message. The API needs
only: keep-alive, pipelining, Content-Length or chunked bodies with a size limit,
100-continue and clean errors. httptools does the parsing in C; this module does
the rest in about a tenth of the time.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import httptools
from twisted.internet import defer
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Factory, Protocol

log = logging.getLogger("smppd.api")

REASONS = {200: b"OK", 201: b"Created", 400: b"Bad Request", 401: b"Unauthorized",
           402: b"Payment Required", 404: b"Not Found", 405: b"Method Not Allowed",
           409: b"Conflict",
           413: b"Payload Too Large", 500: b"Internal Server Error",
           503: b"Service Unavailable",
           # pages (issue 15): redirects after a form, refusals, throttled logins
           204: b"No Content", 302: b"Found", 303: b"See Other", 304: b"Not Modified",
           403: b"Forbidden", 429: b"Too Many Requests"}
MAX_HEADER_BYTES = 16 * 1024
# Paths whose bodies may be uploads (recipient lists, contact CSVs): max_job_body.
LARGE_BODIES = (b"/v1/jobs", b"/v1/contacts", b"/portal/jobs", b"/portal/contacts")


@dataclass(slots=True)
class HttpRequest:
    method: bytes
    path: str
    query: dict[str, list[str]]
    headers: dict[bytes, bytes]  # names in lower case
    body: bytes
    too_large: bool = False
    peer: str = ""  # the client's address (pages throttle failed logins by it)
    secure: bool = False  # arrived over TLS (pages mark their cookies Secure)


@dataclass(slots=True)
class HttpResponse:
    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


Handler = Callable[[HttpRequest], "HttpResponse | defer.Deferred[HttpResponse]"]


class _Slot:
    """One request's place in the pipeline: responses go out in request order."""

    __slots__ = ("keep_alive", "response")

    def __init__(self, keep_alive: bool) -> None:
        self.keep_alive = keep_alive
        self.response: HttpResponse | None = None


class HttpProtocol(Protocol):
    def __init__(self, handler: Handler, max_body: int, max_job_body: int | None = None,
                 ) -> None:
        self.handler = handler
        self.max_body = max_body
        self.max_job_body = max_job_body or max_body  # for /v1/jobs: recipient lists
        self.parser: Any = None
        self.pending: deque[_Slot] = deque()
        self.closing = False
        self._peer = ""
        self._secure = False
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._too_large = False

    def connectionMade(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        peer = self.transport.getPeer()
        self._peer = getattr(peer, "host", "") or ""
        self._secure = ISSLTransport.providedBy(self.transport)

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            self._refuse(400, f"malformed HTTP request: {exc}")

    def connectionLost(self, reason: Any = None) -> None:
        self.closing = True
        self.pending.clear()

    # httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise httptools.HttpParserError("headers too large")
        self._headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        length = self._headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > self._limit():
            self._too_large = True
        elif self._headers.get(b"expect", b"").lower() == b"100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        if self._too_large:
            return
        self._body_size += len(chunk)
        if self._body_size > self._limit():
            self._too_large = True
            self._body.clear()
        else:
            self._body.append(chunk)

    def _limit(self) -> int:
        return self.max_job_body if self._url.startswith(LARGE_BODIES) else self.max_body

    def on_message_complete(self) -> None:
        url = httptools.parse_url(self._url)
        path = unquote(url.path.decode("latin-1"))
        query = parse_qs(url.query.decode("latin-1"), keep_blank_values=True) \
            if url.query else {}
        body = b"".join(self._body)
        self._body = []  # a 30 MB upload is held once, by the request only
        request = HttpRequest(self.parser.get_method(), path, query, self._headers, body,
                              self._too_large, self._peer, self._secure)
        slot = _Slot(self.parser.should_keep_alive() and not self._too_large)
        self.pending.append(slot)
        try:
            result = self.handler(request)
        except Exception:
            log.exception("API handler failed on %s %s", request.method.decode(), path)
            result = HttpResponse(500, b'{"error":"internal error"}')
        if isinstance(result, defer.Deferred):
            result.addCallbacks(self._answer, self._crashed, callbackArgs=(slot,),
                                errbackArgs=(slot,))
        else:
            self._answer(result, slot)

    # Output ------------------------------------------------------------------------

    def _answer(self, response: HttpResponse, slot: _Slot) -> None:
        slot.response = response
        while self.pending and self.pending[0].response is not None:
            done = self.pending.popleft()
            self._write(done.response, done.keep_alive)
            if not done.keep_alive:
                self.closing = True
                self.pending.clear()
                self.transport.loseConnection()
                return

    def _crashed(self, failure: Any, slot: _Slot) -> None:
        log.error("API handler failed: %s", failure.getTraceback())
        self._answer(HttpResponse(500, b'{"error":"internal error"}'), slot)

    def _write(self, response: HttpResponse, keep_alive: bool) -> None:
        if self.transport is None:
            return
        lines = [b"HTTP/1.1 %d %s" % (response.status, REASONS.get(response.status, b"")),
                 b"Server: smppd", b"Content-Type: " + response.content_type,
                 b"Content-Length: %d" % len(response.body)]
        lines.extend(name + b": " + value for name, value in response.headers)
        if not keep_alive:
            lines.append(b"Connection: close")
        self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + response.body)

    def _refuse(self, status: int, message: str) -> None:
        body = b'{"error":"' + message.replace('"', "'").encode() + b'"}'
        self.closing = True
        self._write(HttpResponse(status, body), keep_alive=False)
        self.transport.loseConnection()


class HttpFactory(Factory):
    noisy = False

    def __init__(self, handler: Handler, max_body: int, max_job_body: int | None = None,
                 ) -> None:
        self.handler = handler
        self.max_body = max_body
        self.max_job_body = max_job_body

    def buildProtocol(self, addr: Any) -> HttpProtocol:
        return HttpProtocol(self.handler, self.max_body, self.max_job_body)
