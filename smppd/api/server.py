"""A small HTTP/1.1 server protocol for Twisted, parsing with httptools (llhttp).

Why not twisted.web: measured on this machine, its request path costs about 200 µs
of CPU per POST (Request objects, header objects, and a Content-Type parse through
the email package), a fifth of the daemon's whole budget per message. The API needs
only: keep-alive, pipelining, Content-Length or chunked bodies with a size limit,
100-continue and clean errors. httptools does the parsing in C; this module does
the rest in about a tenth of the time.

What it must survive (each found by attacking a running daemon):
- a client that pipelines megabytes of requests and never reads the answers: a
  connection has at most `max_pipelined` requests in the handler at a time, input
  is parsed a slice at a time, and reading stops while the pipeline is full or the
  transport's send buffer is (this protocol is the transport's streaming producer);
  it resumes once the answers drain. Memory per connection stays bounded.
- slow and idle connections: one timer per connection, with a deadline for the
  phase it is in: a new connection must send its request head within
  `header_timeout`, a keep-alive connection may idle `idle_timeout`, a request head
  must be complete `header_timeout` after its first byte, a body must keep coming
  at `body_min_rate` over each `body_timeout`, and a client that reads nothing for
  `idle_timeout` while answers wait is dropped. The deadline is a float updated on
  every event; the reactor timer is only moved when a deadline comes sooner, so a
  request costs no timer churn.
- too many connections: past `max_connections`, the longest-idle connection is
  closed to make room (an idle socket is the cheapest thing to give up), or else the
  one longest stuck in a request head; with neither, the newcomer gets a 503 with a
  JSON body, not a reset.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import tempfile
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, unquote

import httptools
from twisted.internet import defer
from twisted.internet.interfaces import IHalfCloseableProtocol, ISSLTransport
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from ..ratelog import RateLimitedLog
from . import send_now, uploads
from .uploads import SpooledBody, UploadBuffer

log = logging.getLogger("smppd.api")

REASONS = {200: b"OK", 201: b"Created", 204: b"No Content", 302: b"Found",
           303: b"See Other", 304: b"Not Modified", 400: b"Bad Request",
           401: b"Unauthorized", 402: b"Payment Required", 403: b"Forbidden",
           404: b"Not Found", 405: b"Method Not Allowed", 408: b"Request Timeout",
           409: b"Conflict", 410: b"Gone", 413: b"Payload Too Large",
           422: b"Unprocessable Content", 429: b"Too Many Requests",
           500: b"Internal Server Error", 503: b"Service Unavailable"}
MAX_HEADER_BYTES = 16 * 1024
# Input is fed to the parser this much at a time, and not at all while the pipeline
# is full: one 64 KB read of 18-byte requests would otherwise queue 3,600 of them.
FEED_BYTES = 8 * 1024
# Refused connections are kept open this long (reading and discarding) so that the
# 503 is not destroyed by a reset; at most this many at once, then closed at once.
REFUSAL_LINGER = 1.0
MAX_LINGERING_REFUSALS = 256
# At the connection cap, a connection this long into an unfinished request head may
# be closed to make room (a real client sends its head in one go).
HEAD_GRACE = 1.0
# After a last answer and our FIN, how long the client has to close its side.
LINGER_SECONDS = 2.0
FD_MARGIN = 128
# Twisted's default of 50 pending connections drops SYNs under a burst of connects,
# and each dropped SYN costs its client a 1 s retransmission (the kernel caps this
# at net.core.somaxconn).
LISTEN_BACKLOG = 1024  # descriptors beyond the HTTP connections: store, SMSCs, logs, pipes


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The `http:` limits of the configuration (see config/smppd.example.yaml)."""

    max_body: int = 64 * 1024
    max_job_body: int = 32 * 1024 * 1024
    idle_timeout: float = 60.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    body_min_rate: float = 1024.0  # bytes per second, over each body_timeout
    max_connections: int = 1024
    max_pipelined: int = 16
# Paths whose bodies may be uploads (recipient lists, contact CSVs): max_job_body.
LARGE_BODIES = (b"/v1/jobs", b"/v1/contacts", b"/portal/jobs", b"/portal/contacts")
# Of those, the bodies read a slice at a time, and so kept on disk when big.
SPOOLED_TYPES = (b"multipart/form-data", b"text/csv")


@dataclass(slots=True)
class HttpRequest:
    method: bytes
    path: str  # as sent, still percent-encoded: for logs
    query: dict[str, list[str]]
    headers: dict[bytes, bytes]  # names in lower case
    # bytes; on the upload paths (LARGE_BODIES) a bytearray, or for a big CSV or
    # multipart upload its file on disk (smppd.api.uploads)
    body: bytes | bytearray | SpooledBody
    too_large: bool = False
    # Routing works on these: split on '/' first, then each decoded, so an id that
    # contains %2F stays one segment. Empty trailing segments are dropped.
    segments: tuple[str, ...] = ()
    peer: str = ""  # the client's address (pages throttle failed logins by it)
    secure: bool = False  # arrived over TLS (pages mark their cookies Secure)


@dataclass(slots=True)
class HttpResponse:
    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    # Issue 10: a file sent from disk a chunk at a time (a report can be 100 MB), and
    # whether to remove it once sent (a one-off download).
    file: str | None = None
    remove_file: bool = False
    # A response answered many times as it is (the links listener's 302 per code):
    # its keep-alive rendering is kept here after the first, so each further answer
    # is one write of bytes already made. Set `shared` only on a response nobody
    # changes after it is made.
    shared: bool = False
    rendered: bytes | None = None


Handler = Callable[[HttpRequest], "HttpResponse | defer.Deferred[HttpResponse]"]


def json_error(status: int, message: str,
               headers: list[tuple[bytes, bytes]] | None = None) -> HttpResponse:
    body = b'{"error":"' + message.replace("\\", "/").replace('"', "'").encode() + b'"}'
    return HttpResponse(status, body, headers=headers or [])


def split_path(raw: str) -> tuple[str, ...]:
    """'/v1/messages/a%2Fb/' -> ('v1', 'messages', 'a/b')."""
    segments = raw.split("/")
    if segments and segments[0] == "":
        del segments[0]
    while segments and segments[-1] == "":
        segments.pop()
    if "%" not in raw:  # nearly every path: no per-segment look (once per request)
        return tuple(segments)
    return tuple(unquote(segment) if "%" in segment else segment for segment in segments)


@dataclass(slots=True)
class HttpStats:
    """Counts for /metrics (exported by smppd.api.http at scrape time)."""

    refused: int = 0
    evicted: int = 0
    closed: dict[str, int] = field(default_factory=dict)  # timeout kind -> connections

    def close(self, reason: str) -> None:
        self.closed[reason] = self.closed.get(reason, 0) + 1


FILE_CHUNK = 64 * 1024


class _FileOut:
    """A file answer on its way out."""

    __slots__ = ("handle", "keep_alive", "response")

    def __init__(self, handle: Any, response: HttpResponse, keep_alive: bool) -> None:
        self.handle = handle
        self.response = response
        self.keep_alive = keep_alive

    def close(self) -> None:
        self.handle.close()
        if self.response.remove_file and self.response.file:
            with contextlib.suppress(OSError):
                os.unlink(self.response.file)


class _Slot:
    """One request's place in the pipeline: responses go out in request order."""

    __slots__ = ("head", "keep_alive", "response")

    def __init__(self, keep_alive: bool, response: HttpResponse | None = None,
                 head: bool = False) -> None:
        self.keep_alive = keep_alive
        self.response = response
        self.head = head  # a HEAD request: the answer's headers only


QUIET, LINGER, ABORT = "quiet", "linger", "abort"  # ways to close

# Timer phases: what the connection is waiting for, hence which deadline applies.
_FRESH, _IDLE, _HEAD, _BODY, _SEND, _CLOSING, _BUSY = (
    "fresh", "idle", "head", "body", "send", "closing", "busy")


@implementer(IHalfCloseableProtocol)
class HttpProtocol(Protocol):
    def __init__(self, handler: Handler, limits: HttpLimits, clock: Any,
                 factory: HttpFactory | None = None) -> None:
        self.handler = handler
        self.limits = limits
        self.clock = clock
        self.owner = factory
        self.parser: Any = None
        self.peer = ""
        self.secure = False
        self.pending: deque[_Slot] = deque()  # in the handler or ready to write, in order
        self.waiting: deque[tuple[HttpRequest, bool]] = deque()  # parsed, not yet handled
        self.unparsed = b""  # read while blocked; at most one read
        self.closing = False
        self.input_done = False  # after Connection: close, an upgrade, an error, a timeout
        self.output_paused = False  # the transport's send buffer is full
        self.reading_paused = False
        self.answered = 0
        self._producing = False
        self._eof = False  # the client sent FIN
        self._write_closed = False  # we sent FIN after our last answer
        self._feeding = False
        self._dispatching = False
        self._in_message = False
        self._phase = ""
        self._begun = 0  # requests begun on this connection
        self._phase_request = 0
        self._deadline: float | None = None
        self._timer: Any = None
        self._head_started = 0.0
        self._body_mark = 0
        self._file: _FileOut | None = None  # a file answer being sent from disk
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._upload: UploadBuffer | None = None  # the body, on an upload path
        self._body_size = 0
        self._too_large = False
        self._expects_body = False
        self._headers_done = False

    # Connection ----------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        transport = self.transport
        self.peer = str(getattr(transport.getPeer(), "host", "") or "")
        self.secure = ISSLTransport.providedBy(transport)
        transport.registerProducer(self, True)
        self._producing = True
        if self.owner is not None:
            self.owner.opened(self)
        self._update_timer()

    def connectionLost(self, reason: Any = None) -> None:
        self.closing = True
        if self._file is not None:
            self._file.close()
            self._file = None
        self._drop_upload()  # a half-sent upload's file goes now, not at collection
        self.pending.clear()
        self.waiting.clear()
        self.unparsed = b""
        self._deadline = None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self.owner is not None:
            self.owner.lost(self)

    def dataReceived(self, data: bytes) -> None:
        if self.closing or self.input_done:
            return  # read and dropped, so that our close does not turn into a reset
        if self.unparsed or self._blocked():
            self.unparsed += data
        else:
            self._feed(data)
        self._update_reading()
        self._update_timer()

    # The transport's streaming producer: it pauses us when its buffer is full ----------

    def pauseProducing(self) -> None:
        self.output_paused = True
        self._update_reading()
        self._update_timer()

    def resumeProducing(self) -> None:
        self.output_paused = False
        if self._file is not None:
            self._send_file()
        self._progress()

    def stopProducing(self) -> None:
        self.closing = True

    # Input ---------------------------------------------------------------------------

    def _blocked(self) -> bool:
        return (self.closing or self.input_done or self.output_paused or bool(self.waiting)
                or len(self.pending) >= self.limits.max_pipelined)

    def _feed(self, data: bytes) -> None:
        self._feeding = True
        try:
            if len(data) <= FEED_BYTES:  # the usual case: one read, one slice
                self._feed_slice(data)
                return
            for start in range(0, len(data), FEED_BYTES):
                if self.input_done or self.closing:
                    return
                if self._blocked():
                    self.unparsed = data[start:]
                    return
                if not self._feed_slice(data[start:start + FEED_BYTES]):
                    return
        finally:
            self._feeding = False

    def _feed_slice(self, data: bytes) -> bool:
        """Parse one slice; False once the input ended (an upgrade, an error)."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if not self.input_done:
                self._upgrade()
            return False
        except httptools.HttpParserError as exc:
            if not self.input_done:
                self._fail(400, f"malformed HTTP request: {exc}")
            return False
        return True

    def _update_reading(self) -> None:
        """Stop reading while blocked (back-pressure reaches the client through TCP);
        keep reading (and dropping) once input is done, so that the close is clean."""
        pause = not (self.closing or self.input_done) and (bool(self.unparsed)
                                                            or self._blocked())
        if pause == self.reading_paused or self.transport is None or self._eof:
            return
        self.reading_paused = pause
        if pause:
            self.transport.pauseProducing()
        else:
            if self._in_message:  # the client was not slow: we were not reading
                self._head_started = self.clock.seconds()
            self.transport.resumeProducing()

    def _progress(self) -> None:
        """After an answer or a drained send buffer: hand waiting requests to the
        handler, then parse what was held back, then maybe read again."""
        if self.closing:
            return
        self._dispatch()
        if self.unparsed and not self._feeding and not self._blocked():
            data, self.unparsed = self.unparsed, b""
            self._feed(data)
        self._end_of_input()
        self._update_reading()
        self._update_timer()

    # httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset()
        self._in_message = True
        self._begun += 1
        self._head_started = self.clock.seconds()

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_bytes += len(url)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise httptools.HttpParserError("request line too large")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise httptools.HttpParserError("headers too large")
        self._headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        if self.input_done:
            return
        self._headers_done = True
        length = self._headers.get(b"content-length", b"0")
        self._expects_body = length != b"0" or b"transfer-encoding" in self._headers
        if self._expects_body and self._url.startswith(LARGE_BODIES):
            kind = self._headers.get(b"content-type", b"").lower()
            self._upload = UploadBuffer(spool=kind.startswith(SPOOLED_TYPES))
        if length.isdigit() and int(length) > self._limit():
            self._too_large = True
            self._drop_upload()
        elif (self._headers.get(b"expect", b"").lower() == b"100-continue"
              and not self.pending and not self.waiting):
            # Only when nothing is owed before it: answers go out in request order.
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        if self._too_large or self.input_done:
            return
        self._body_size += len(chunk)
        if self._body_size > self._limit():
            self._too_large = True
            self._body.clear()
            self._drop_upload()
        elif self._upload is not None:
            self._upload.add(chunk)
        else:
            self._body.append(chunk)

    def _drop_upload(self) -> None:
        if self._upload is not None:
            self._upload.close()
            self._upload = None

    def _limit(self) -> int:
        limits = self.limits
        return limits.max_job_body if self._url.startswith(LARGE_BODIES) else limits.max_body

    def on_message_complete(self) -> None:
        self._in_message = False
        if self.input_done:
            return  # pipelined after a final request: never handled
        keep_alive = bool(self.parser.should_keep_alive()) and not self._too_large
        upload, self._upload = self._upload, None
        body: bytes | bytearray | SpooledBody | None = upload.finish() \
            if upload is not None else b"".join(self._body)  # one chunk: itself, no copy
        self._body = []  # held once, by the request only
        if body is None:
            assert upload is not None
            if self.owner is not None:
                self.owner.refusals.warning("upload", "http: an upload of %d bytes from %s "
                                            "could not be stored in %s: %s", self._body_size,
                                            self.peer, tempfile.gettempdir(), upload.error)
            self._fail(503, "the upload could not be stored; retry later")
            return
        try:
            url = httptools.parse_url(self._url)
        except httptools.HttpParserInvalidURLError:
            self._fail(400, "malformed request target")
            return
        raw_path = url.path.decode("latin-1") if url.path else "/"
        query = parse_qs(url.query.decode("latin-1"), keep_blank_values=True) \
            if url.query else {}
        request = HttpRequest(self.parser.get_method(), raw_path, query, self._headers, body,
                              self._too_large, split_path(raw_path), self.peer,
                              self.secure)
        if not keep_alive:
            self.input_done = True  # nothing after a final request is even parsed
        self.waiting.append((request, keep_alive))
        self._dispatch()

    def _upgrade(self) -> None:
        """An Upgrade (or CONNECT) request: it was parsed as a plain request and gets
        its one plain answer (a server may ignore Upgrade), then the connection
        closes, since what follows would be another protocol."""
        if self._in_message:
            self._fail(400, "protocol upgrades are not supported")
            return
        self.input_done = True
        self.unparsed = b""
        if self.waiting:
            request, _ = self.waiting[-1]
            self.waiting[-1] = (request, False)
        elif self.pending:
            self.pending[-1].keep_alive = False
        else:
            self._close(LINGER)

    # Handling ------------------------------------------------------------------------

    def _dispatch(self) -> None:
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while (self.waiting and not self.closing and not self.output_paused
                   and len(self.pending) < self.limits.max_pipelined):
                request, keep_alive = self.waiting.popleft()
                slot = _Slot(keep_alive, head=request.method == b"HEAD")
                self.pending.append(slot)
                try:
                    result = self.handler(request)
                except Exception:
                    log.exception("API handler failed on %s %s", request.method.decode(),
                                  request.path)
                    result = json_error(500, "internal error")
                if isinstance(result, defer.Deferred):
                    result.addCallbacks(self._answer, self._crashed, callbackArgs=(slot,),
                                        errbackArgs=(slot,))
                else:
                    self._answer(result, slot)
        finally:
            self._dispatching = False

    def _answer(self, response: HttpResponse, slot: _Slot) -> None:
        if self.closing:
            return
        slot.response = response
        self._flush()
        if not self._dispatching:
            self._progress()

    def _crashed(self, failure: Any, slot: _Slot) -> None:
        log.error("API handler failed: %s", failure.getTraceback())
        self._answer(json_error(500, "internal error"), slot)

    def _fail(self, status: int, message: str) -> None:
        """A final error answer, after every answer owed before it; nothing more is
        read from this connection."""
        self.input_done = True
        self.unparsed = b""
        self.waiting.clear()
        self.pending.append(_Slot(False, json_error(status, message)))
        self._flush()

    # Output ------------------------------------------------------------------------

    def _flush(self) -> None:
        while (self.pending and self.pending[0].response is not None and not self.closing
               and self._file is None):
            slot = self.pending.popleft()
            response = slot.response
            if response is not None and response.file is not None and not slot.head:
                self._start_file(response, slot.keep_alive)
                return
            self._write(response, slot.keep_alive, slot.head)
            self._answered(slot.keep_alive)
            if not slot.keep_alive:
                return
        if self.input_done and not self.pending and not self.waiting and self._file is None:
            self._close(LINGER if self.answered else QUIET)

    def _answered(self, keep_alive: bool) -> None:
        self.answered += 1
        if not keep_alive:
            self._close(LINGER)

    def _start_file(self, response: HttpResponse, keep_alive: bool) -> None:
        """A report download: headers, then the file a chunk at a time while the
        transport takes it (this protocol is its producer: a slow client holds a
        chunk or two in memory, not the file)."""
        assert response.file is not None
        try:
            handle = open(response.file, "rb")  # noqa: SIM115 (closed when sent)
            size = os.fstat(handle.fileno()).st_size
        except OSError:
            self._write(json_error(410, "the file is gone"), keep_alive)
            self._answered(keep_alive)
            self._flush()
            return
        self._write(replace(response, body=b""), keep_alive, length=size)
        self._file = _FileOut(handle, response, keep_alive)
        self._send_file()

    def _send_file(self) -> None:
        out = self._file
        while out is not None and not self.output_paused and not self.closing:
            chunk = out.handle.read(FILE_CHUNK)
            if chunk:
                self.transport.write(chunk)
                continue
            self._file = None
            out.close()
            self._answered(out.keep_alive)
            if out.keep_alive:
                self._flush()
                self._progress()
            return

    def _write(self, response: HttpResponse | None, keep_alive: bool,
               head: bool = False, length: int | None = None) -> None:
        if self.transport is None or response is None:
            return
        send_now.write(self.transport, render(response, keep_alive, head, length))

    def _close(self, how: str = "quiet") -> None:
        """QUIET: nothing is owed (idle): close now. LINGER: after a last answer, send
        it and a FIN but keep reading a moment, because closing with the client's
        bytes unread makes the kernel send a reset, and the client then loses the
        answer (a slowloris still sending gets its 408). ABORT: drop everything."""
        if self.closing and how != ABORT:
            return
        self.closing = True
        self.pending.clear()
        self.waiting.clear()
        self.unparsed = b""
        if self.transport is None:
            return
        # A paused producer would make the transport wait for it instead of closing.
        if self._producing:
            self._producing = False
            self.transport.unregisterProducer()
        if how == ABORT:
            self.transport.abortConnection()
            return
        if how == LINGER and not self._eof:
            self.transport.resumeProducing()  # read (and drop) until the client closes
            self.transport.loseWriteConnection()
        else:
            self.transport.loseConnection()
        self._update_timer()

    def evict(self) -> None:
        """Closed to make room for a new connection (it was idle)."""
        self._close()

    # Half-close (IHalfCloseableProtocol) --------------------------------------------

    def readConnectionLost(self) -> None:
        """The client sent FIN: it will send nothing more, but may still read. What
        it asked is answered, then the connection closes."""
        if self._eof:
            return
        self._eof = True
        if self.closing:
            self.transport.loseConnection()  # we were lingering for exactly this
            return
        self._end_of_input()

    def _end_of_input(self) -> None:
        if self._eof and not self.unparsed and not self.input_done:
            self.input_done = True  # a request cut off by the FIN is dropped
            self._flush()

    def writeConnectionLost(self) -> None:
        """Our FIN went out after the last answer: linger only briefly for the
        client's FIN before letting the descriptor go."""
        self._write_closed = True
        self._set_deadline(self.clock.seconds() + LINGER_SECONDS)

    # Timeouts ------------------------------------------------------------------------

    def _wanted_phase(self) -> str:
        if self.closing:
            return _CLOSING
        if self.output_paused:
            return _SEND
        if self.reading_paused or self.pending or self.waiting:
            return _BUSY  # our own work or back-pressure: not the client's slowness
        if self._in_message:
            return _BODY if self._headers_done and self._expects_body else _HEAD
        return _IDLE if self.answered else _FRESH

    def _update_timer(self) -> None:
        """Enter the phase the connection is in now. A phase is per request (the
        count of requests begun is part of it): a new request gets a new head
        deadline, and activity in between restarts the idle one."""
        phase = self._wanted_phase()
        if phase != self._phase or self._begun != self._phase_request:
            self._phase_request = self._begun
            self._enter(phase)

    def _enter(self, phase: str) -> None:
        previous, self._phase = self._phase, phase
        if self.owner is not None:
            self.owner.phase_changed(self, previous, phase)
        limits, now = self.limits, self.clock.seconds()
        if phase == _BUSY:
            self._deadline = None
            return
        if phase == _HEAD:
            deadline = self._head_started + limits.header_timeout
        elif phase == _BODY:
            self._body_mark = self._body_size
            deadline = now + limits.body_timeout
        elif phase == _FRESH:
            deadline = now + limits.header_timeout
        else:  # idle, send, closing
            deadline = now + limits.idle_timeout
        self._set_deadline(deadline)

    def _set_deadline(self, deadline: float) -> None:
        self._deadline = deadline
        delay = max(0.0, deadline - self.clock.seconds())
        if self._timer is None or not self._timer.active():
            self._timer = self.clock.callLater(delay, self._expired)
        elif self._timer.getTime() > deadline:
            self._timer.reset(delay)

    def _expired(self) -> None:
        self._timer = None
        self._update_timer()
        if self._deadline is None:
            return
        now = self.clock.seconds()
        if now < self._deadline:
            self._set_deadline(self._deadline)
            return
        phase = self._phase
        if phase == _BODY:
            needed = max(1.0, self.limits.body_min_rate * self.limits.body_timeout)
            if self._body_size - self._body_mark >= needed:
                self._body_mark = self._body_size
                self._set_deadline(now + self.limits.body_timeout)
                return
        self._timed_out(phase)

    def _timed_out(self, phase: str) -> None:
        if self.owner is not None and not (phase == _CLOSING and self._write_closed):
            self.owner.stats.close({_HEAD: "header_timeout", _BODY: "body_timeout",
                                    _SEND: "send_timeout", _CLOSING: "send_timeout"}
                                   .get(phase, "idle_timeout"))
        if phase in (_HEAD, _BODY):
            what = "request head" if phase == _HEAD else "request body"
            self._fail(408, f"the {what} did not arrive in time")
        elif phase in (_SEND, _CLOSING):
            self._close(ABORT)  # it reads nothing, or lingers: answers and all dropped
        else:
            self._close(QUIET)


def render(response: HttpResponse, keep_alive: bool, head: bool = False,
           length: int | None = None) -> bytes:
    """The answer's bytes; `length` when the body follows separately (a file)."""
    if response.shared and keep_alive and not head and length is None:
        if response.rendered is None:
            response.rendered = _render(response, True, False, None)
        return response.rendered
    return _render(response, keep_alive, head, length)


def _render(response: HttpResponse, keep_alive: bool, head: bool,
            length: int | None) -> bytes:
    size = len(response.body) if length is None else length
    lines = [b"HTTP/1.1 %d %s" % (response.status, REASONS.get(response.status, b"")),
             b"Server: smppd", b"Content-Type: " + response.content_type,
             b"Content-Length: %d" % size]
    lines.extend(name + b": " + value for name, value in response.headers)
    if not keep_alive:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if head else response.body)


class _Refusal(Protocol):
    """At the connection cap with no idle connection to close: a clear 503, then a
    close after the client has had a moment to read it (closing with its request
    unread would reset the connection and lose the answer)."""

    def __init__(self, factory: HttpFactory) -> None:
        self.owner = factory
        self.timer: Any = None

    def connectionMade(self) -> None:
        body = render(json_error(503, "too many connections; retry shortly",
                                 [(b"Retry-After", b"1")]), keep_alive=False)
        self.transport.write(body)
        if self.owner.lingering >= MAX_LINGERING_REFUSALS:
            self.transport.loseConnection()
            return
        self.owner.lingering += 1
        self.transport.loseWriteConnection()
        self.timer = self.owner.clock.callLater(REFUSAL_LINGER, self.transport.abortConnection)

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Any = None) -> None:
        if self.timer is not None:
            self.owner.lingering -= 1
            if self.timer.active():
                self.timer.cancel()
            self.timer = None


class HttpFactory(Factory):
    noisy = False

    def __init__(self, handler: Handler, limits: HttpLimits, clock: Any = None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.handler = handler
        self.limits = limits
        self.clock = clock
        self.connections: set[HttpProtocol] = set()
        # Connections waiting for a request, longest idle first: the first to go.
        self.idle: OrderedDict[HttpProtocol, None] = OrderedDict()
        # Connections part way through a request head, longest first: next to go.
        self.heads: OrderedDict[HttpProtocol, float] = OrderedDict()
        self.lingering = 0
        self.stats = HttpStats()
        self.refusals = RateLimitedLog(log, clock, burst=3, interval=60.0)

    def buildProtocol(self, addr: Any) -> Protocol:
        if len(self.connections) >= self.limits.max_connections:
            victim = self._victim()
            if victim is not None:
                self.lost(victim)
                victim.evict()
                self.stats.evicted += 1
            else:
                self.stats.refused += 1
                self.refusals.warning(
                    "http-connections", "http: refused a connection from %s: %d open, "
                    "none idle (http.max_connections)", getattr(addr, "host", "?"),
                    len(self.connections))
                return _Refusal(self)
        return HttpProtocol(self.handler, self.limits, self.clock, self)

    # Bookkeeping, called by the protocols -----------------------------------------------

    def opened(self, protocol: HttpProtocol) -> None:
        self.connections.add(protocol)

    def _victim(self) -> HttpProtocol | None:
        """Who makes room: the longest-idle connection, or else the one that has
        spent longest (over HEAD_GRACE) on a request head it has not finished: a
        slowloris must not hold the slots while real clients are turned away."""
        if self.idle:
            return next(iter(self.idle))
        if self.heads:
            oldest, since = next(iter(self.heads.items()))
            if self.clock.seconds() - since >= HEAD_GRACE:
                return oldest
        return None

    def lost(self, protocol: HttpProtocol) -> None:
        self.connections.discard(protocol)
        self.idle.pop(protocol, None)
        self.heads.pop(protocol, None)

    def phase_changed(self, protocol: HttpProtocol, previous: str, phase: str) -> None:
        if protocol not in self.connections:
            return
        if previous == phase == _IDLE and protocol in self.idle:
            self.idle.move_to_end(protocol)  # active again since: the last to go
            return
        if previous in (_FRESH, _IDLE):
            self.idle.pop(protocol, None)
        elif previous == _HEAD:
            self.heads.pop(protocol, None)
        if phase in (_FRESH, _IDLE):
            self.idle[protocol] = None
        elif phase == _HEAD:
            self.heads[protocol] = self.clock.seconds()


def ensure_descriptors(max_connections: int) -> str | None:
    """Raise the soft limit on open files to what `max_connections` needs (up to the
    hard limit). Returns a warning when even the hard limit is too low: accepts
    would then fail with EMFILE before the cap could answer 503."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = max_connections + MAX_LINGERING_REFUSALS + FD_MARGIN + uploads.MAX_SPOOLED
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError):
                pass
    if soft != resource.RLIM_INFINITY and soft < needed:
        return (f"http.max_connections is {max_connections} but only {soft} files may be "
                f"open (needs about {needed}): raise LimitNOFILE or lower the cap")
    return None
