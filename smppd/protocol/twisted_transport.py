"""The Twisted protocol around an EsmeSession: bytes in, bytes out, one timer.

Deliberately thin: every decision is the session's. This class only moves bytes,
reads the clock, keeps a single DelayedCall at the session's next deadline, and
hands the session's events to a sink (the Link). Over TLS it holds the session
back until the handshake is done and the peer's name checked, so a bind (and its
password) goes only to the SMSC the certificate says it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall, IHandshakeListener, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from . import trace
from .deadline_timer import DeadlineTimer, deadline_timer
from .session import CloseConnection, EsmeSession, Event
from .trace import PduTrace

if TYPE_CHECKING:  # pyOpenSSL is imported only when an SMSC uses TLS
    from .tls import ClientTls

EventSink = Callable[["SessionProtocol", list[Event]], None]
# A DelayedCall timer (task.Clock in tests, no timerfd) due more than this before the
# session's next deadline is moved; one due less early is kept and fires for nothing.
# A busy window's oldest deadline creeps forward by milliseconds: so at full speed it
# is set again about once a second, not once per response. (On Linux the timer is a
# timerfd, which moves without waking the reactor: smppd.protocol.deadline_timer.)
RESCHEDULE_SLACK = 1.0


@implementer(IHandshakeListener)
class SessionProtocol(Protocol):
    def __init__(self, session: EsmeSession, sink: EventSink, clock: IReactorTime,
                 on_lost: Callable[[SessionProtocol, str], None],
                 tls: ClientTls | None = None, name: str = "") -> None:
        self.session = session
        self.name = name  # the link's, for the PDU trace
        self._sink = sink
        self._clock = clock
        self._on_lost = on_lost
        self._tls = tls
        self._timer: DeadlineTimer | None = None  # made at the first deadline
        self._lost = False  # no timer after the connection is gone (a descriptor each)
        self._abort_call: IDelayedCall | None = None
        self._handshake_call: IDelayedCall | None = None
        self._close_reason: str | None = None  # why we closed, when we did
        self._started = False  # the session has been told of the connection
        self.tls_error: str | None = None  # why TLS failed, for the link's log
        self._trace: PduTrace | None = None  # only while smppd.pdu is at DEBUG

    # Twisted callbacks ----------------------------------------------------------

    def connectionMade(self) -> None:
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            # Not every transport (TLS over a non-TCP one) supports it.
            with contextlib.suppress(Exception):
                set_no_delay(True)
        if self._tls is not None:
            # A peer that accepts TCP and never finishes the handshake must not
            # hold the link: the bind timeout applies to the handshake too.
            self._handshake_call = self._clock.callLater(
                self.session.config.bind_timeout, self._handshake_expired)
            return
        self._start()

    def handshakeCompleted(self) -> None:
        if self._tls is None or self._started or self._close_reason is not None:
            return
        self._cancel_handshake_timer()
        from .tls import TlsError

        try:
            self._tls.verify_peer(self.transport.getHandle())  # type: ignore[union-attr]
        except TlsError as exc:
            self._fail_tls(str(exc))
            return
        self._start()

    def dataReceived(self, data: bytes) -> None:
        if trace.enabled():
            self._tracer().received(data)
        elif self._trace is not None:
            self._trace = None  # switched off: a later switch-on resynchronises
        self.session.data_received(data, self._clock.seconds())
        self.pump()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._lost = True
        self._cancel_timer()
        self._cancel_handshake_timer()
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        if self._tls is not None and self.tls_error is None:
            from .tls import describe_failure

            self.tls_error = describe_failure(reason, self._started)
        # When the session asked for the close, its reason is the one worth logging.
        text = self._close_reason or self.tls_error or (
            reason.getErrorMessage() if reason is not None else "connection lost")
        self.session.connection_lost(self._clock.seconds(), text)
        events = self.session.events()
        if events:
            self._sink(self, events)
        self._on_lost(self, text)

    # Used by the link -----------------------------------------------------------

    def submit(self, fields: dict[str, Any], token: Any, command: str = "submit_sm",
               flush: bool = True) -> int:
        sequence = self.session.submit(fields, token, self._clock.seconds(), command)
        if flush:
            self.pump()
        return sequence

    def respond(self, handle: int, status: int) -> None:
        self.session.respond(handle, status)
        self.pump()

    def unbind(self) -> None:
        if not self._started:  # still in the TLS handshake: nothing to unbind
            self._close_reason = self._close_reason or "stopped during the TLS handshake"
            self.abort()
            return
        self.session.unbind(self._clock.seconds())
        self.pump()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abortConnection()

    def drop(self, reason: str) -> None:
        """Close at once (no unbind: the SMSC says the bind is broken); `reason` is
        what the submits in flight and the log are told."""
        if self._close_reason is None:
            self._close_reason = reason
        self.abort()

    def pump(self) -> None:
        """Write what the session produced and hand over its events, until quiet
        (an event handler may submit more)."""
        session = self.session
        for _ in range(1000):
            data = session.data_to_send()
            if data and self.transport is not None:
                if trace.enabled():
                    self._tracer().sent(data)
                self.transport.write(data)
            events = session.events()
            if not events:
                break
            for event in events:
                if isinstance(event, CloseConnection) and self._close_reason is None:
                    self._close_reason = event.reason
                    self._clock.callLater(0, self._lose)
            self._sink(self, events)
        self._schedule()

    # Internals ------------------------------------------------------------------

    def _tracer(self) -> PduTrace:
        if self._trace is None:
            self._trace = PduTrace(self.name)
        return self._trace

    def _start(self) -> None:
        self._started = True
        self.session.connection_made(self._clock.seconds())
        self.pump()

    def _handshake_expired(self) -> None:
        self._handshake_call = None
        self._fail_tls(f"TLS handshake not completed within "
                       f"{self.session.config.bind_timeout:g} s")

    def _fail_tls(self, reason: str) -> None:
        self.tls_error = self._close_reason = reason
        self.abort()

    def _cancel_handshake_timer(self) -> None:
        if self._handshake_call is not None and self._handshake_call.active():
            self._handshake_call.cancel()
        self._handshake_call = None

    def _lose(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()
            # A peer that never reads would keep the socket forever: abort after a while.
            self._abort_call = self._clock.callLater(5.0, self.abort)

    def _tick(self) -> None:
        self.session.tick(self._clock.seconds())
        self.pump()

    def _schedule(self) -> None:
        deadline = None if self._lost else self.session.next_deadline()
        if deadline is None:
            if self._timer is not None:
                self._timer.clear()
            return
        if self._timer is None or self._timer.closed:  # (closed by the reactor's shutdown)
            self._timer = deadline_timer(self._clock, self._tick, RESCHEDULE_SLACK)
        self._timer.set(deadline)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.close()
        self._timer = None

