"""The ESME side of one SMPP connection, without I/O.

Bytes and clock readings go in (`connection_made`, `data_received`, `tick`,
`connection_lost`); bytes to write (`data_to_send`) and events (`events`) come out,
and `next_deadline` says when `tick` must be called next. No reactor, no socket, no
sleep: every behaviour here is testable by feeding bytes, the way h11 is.

What it guarantees its caller:
- at most `window` submits await a response; each has a response deadline;
- every submit ends in exactly one SubmitResult or SubmitUnknown (a timeout, an
  unbind or a lost connection means "outcome unknown", never "not sent");
- a response that arrives after its timeout is still reported (LateResponse);
- a deliver_sm is answered only when the caller calls `respond` (after its durable
  write), so the SMSC redelivers whatever smppd did not keep;
- malformed input from the SMSC produces generic_nack or a close, never an exception.
"""

from __future__ import annotations

import itertools
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from . import constants as c
from . import pdu as codec
from .framing import DEFAULT_MAX_PDU_LENGTH, Framer, FramingError
from .pdu import Pdu, PduDecodeError


class BindMode(StrEnum):
    TRANSCEIVER = "transceiver"
    TRANSMITTER = "transmitter"
    RECEIVER = "receiver"


class State(StrEnum):
    CLOSED = "closed"  # no connection (before connection_made or after connection_lost)
    BINDING = "binding"
    BOUND = "bound"
    DRAINING = "draining"  # graceful unbind: waiting for outstanding responses
    UNBINDING = "unbinding"  # unbind sent, waiting for unbind_resp
    UNBOUND = "unbound"  # no longer bound; the connection is to be closed


@dataclass(frozen=True, slots=True)
class SessionConfig:
    system_id: str
    password: str
    system_type: str = ""
    bind_mode: BindMode = BindMode.TRANSCEIVER
    window: int = 10
    response_timeout: float = 30.0
    bind_timeout: float = 10.0
    enquire_link_interval: float = 30.0
    enquire_link_timeout: float = 10.0
    unbind_timeout: float = 5.0
    drain_timeout: float = 10.0
    max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""
    initial_sequence: int = 1

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window: expected at least 1, got {self.window}")
        if not 1 <= self.initial_sequence <= c.MAX_SEQUENCE:
            raise ValueError("initial_sequence: expected 1..0x7FFFFFFF")


# Events -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Bound:
    system_id: str  # the SMSC's system_id from bind_resp


@dataclass(frozen=True, slots=True)
class BindFailed:
    status: int  # command_status of bind_resp, or 0 for a timeout
    reason: str

    @property
    def status_name(self) -> str:
        return c.status_name(self.status)


@dataclass(frozen=True, slots=True)
class SubmitResult:
    token: Any
    status: int
    message_id: str | None  # None when the SMSC returned none (error, or a broken body)
    generic_nack: bool = False


class NoResponse(StrEnum):
    """Why a submit has no response, which decides what the caller may do with it."""

    TIMEOUT = "timeout"  # the link is up, the response is late (or lost)
    CONNECTION = "connection"  # the connection went away with the submit unanswered
    UNBOUND = "unbound"  # the SMSC unbound: it declined to process it (checklist 12)


@dataclass(frozen=True, slots=True)
class SubmitUnknown:
    """The submit may or may not have reached the SMSC: no response came."""

    token: Any
    reason: str
    cause: NoResponse = NoResponse.CONNECTION


@dataclass(frozen=True, slots=True)
class LateResponse:
    """A response for a submit already reported as SubmitUnknown."""

    token: Any
    status: int
    message_id: str | None


@dataclass(frozen=True, slots=True)
class DeliverReceived:
    """A deliver_sm or data_sm from the SMSC. Answer with `respond(handle, status)`."""

    handle: int
    pdu: Pdu


@dataclass(frozen=True, slots=True)
class UnbindReceived:
    pass


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """The SMSC sent something wrong; already answered or ignored. For logs and metrics."""

    description: str


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """The transport must close the connection once pending bytes are written."""

    reason: str


Event = (Bound | BindFailed | SubmitResult | SubmitUnknown | LateResponse | DeliverReceived
         | UnbindReceived | ProtocolError | CloseConnection)


class SessionError(RuntimeError):
    """The caller used the session wrongly (submit while not bound, window full, ...)."""


_BIND_COMMANDS = {
    BindMode.TRANSCEIVER: "bind_transceiver",
    BindMode.TRANSMITTER: "bind_transmitter",
    BindMode.RECEIVER: "bind_receiver",
}
_SUBMIT_COMMANDS = frozenset({"submit_sm", "data_sm"})
_LATE_MEMORY = 10_000  # timed-out submits remembered for their late responses


class PduCounters:
    """PDUs by command (and status, for those received). Plain counters, read by the
    metrics exporter at scrape time; one per connector, shared by its sessions."""

    __slots__ = ("received", "sent")

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()
        self.received: Counter[tuple[str, int]] = Counter()


class SubmitWindow:
    """The submits awaiting a response: at most `size`, each with its deadline. Every
    submit has the same timeout, so insertion order is deadline order and the next
    deadline is the first entry's. A submit that timed out (or whose connection
    failed) is remembered a while, so its late response can still be reported."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._open: dict[int, tuple[Any, float]] = {}  # sequence -> (token, deadline)
        self._late: OrderedDict[int, Any] = OrderedDict()  # sequence -> token

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, sequence: int) -> bool:
        return sequence in self._open

    @property
    def room(self) -> int:
        return self.size - len(self._open)

    def knows(self, sequence: int) -> bool:
        """Open, or timed out and still remembered."""
        return sequence in self._open or sequence in self._late

    def open(self, sequence: int, token: Any, deadline: float) -> None:
        if len(self._open) >= self.size:
            raise SessionError(f"window of {self.size} is full")
        self._open[sequence] = (token, deadline)

    def settle(self, sequence: int) -> tuple[Any, bool] | None:
        """(token, late) for a response: late when the submit was already given up."""
        entry = self._open.pop(sequence, None)
        if entry is not None:
            return entry[0], False
        token = self._late.pop(sequence, None)
        return None if token is None else (token, True)

    def next_deadline(self) -> float | None:
        return next(iter(self._open.values()))[1] if self._open else None

    def expire(self, now: float) -> list[Any]:
        """The tokens whose deadline has passed, given up (and remembered)."""
        expired = []
        while self._open:
            sequence, (token, deadline) = next(iter(self._open.items()))
            if deadline > now:
                break
            del self._open[sequence]
            self._remember(sequence, token)
            expired.append(token)
        return expired

    def fail_all(self) -> list[Any]:
        """The connection is gone: every open submit is given up (and remembered)."""
        tokens = []
        for sequence, (token, _deadline) in self._open.items():
            self._remember(sequence, token)
            tokens.append(token)
        self._open.clear()
        return tokens

    def _remember(self, sequence: int, token: Any) -> None:
        self._late[sequence] = token
        if len(self._late) > _LATE_MEMORY:
            self._late.popitem(last=False)


class EsmeSession:
    """One connection's SMPP state. Create a new one for every connection."""

    def __init__(self, config: SessionConfig, counters: PduCounters | None = None) -> None:
        self.config = config
        self.counters = counters if counters is not None else PduCounters()
        self.state = State.CLOSED
        self._framer = Framer(config.max_pdu_length)
        self._out: list[bytes] = []
        self._events: list[Event] = []
        self._sequence = config.initial_sequence - 1
        self.window = SubmitWindow(config.window)
        self._control: dict[int, str] = {}  # seq -> bind / enquire_link / unbind
        # Handle -> (sequence, command) of a deliver_sm or data_sm awaiting respond().
        # Handles are ours, not the SMSC's sequence numbers: an SMSC that reuses a
        # sequence number still gets every PDU answered.
        self._delivers: dict[int, tuple[int, str]] = {}
        self._handles = itertools.count(1)
        self._bind_deadline: float | None = None
        self._enquire_deadline: float | None = None
        self._drain_deadline: float | None = None
        self._unbind_deadline: float | None = None
        self._last_received = 0.0
        self.smsc_system_id: str | None = None
        self._can_transmit = config.bind_mode is not BindMode.RECEIVER

    # Inputs -------------------------------------------------------------------

    def connection_made(self, now: float) -> None:
        if self.state is not State.CLOSED:
            raise SessionError("connection_made on a session that is already connected")
        cfg = self.config
        self.state = State.BINDING
        self._last_received = now
        self._bind_deadline = now + cfg.bind_timeout
        self._send_request(_BIND_COMMANDS[cfg.bind_mode], "bind", {
            "system_id": cfg.system_id, "password": cfg.password,
            "system_type": cfg.system_type, "interface_version": c.INTERFACE_VERSION_34,
            "addr_ton": cfg.addr_ton, "addr_npi": cfg.addr_npi,
            "address_range": cfg.address_range,
        })

    def data_received(self, data: bytes, now: float) -> None:
        if self.state is State.CLOSED:
            return
        self._last_received = now
        try:
            frames = self._framer.feed(data)
        except FramingError as exc:
            self._reply(Pdu("generic_nack", exc.sequence, c.ESME_RINVCMDLEN))
            self._protocol_error(f"unrecoverable framing: {exc}")
            self._close(f"framing error: {exc}")
            return
        for frame in frames:
            if self.state is State.CLOSED:
                break
            self._handle_frame(frame, now)

    def tick(self, now: float) -> None:
        """Fire every deadline that has passed."""
        if self.state is State.CLOSED:
            return
        if self._bind_deadline is not None and now >= self._bind_deadline:
            self._bind_deadline = None
            self._events.append(BindFailed(0, "no bind response within "
                                              f"{self.config.bind_timeout:g} s"))
            self._close("bind timeout")
            return
        reason = f"no response within {self.config.response_timeout:g} s"
        self._events.extend(SubmitUnknown(token, reason, NoResponse.TIMEOUT)
                            for token in self.window.expire(now))
        if self.state in (State.BOUND, State.DRAINING):
            self._keepalive(now)
        if self._drain_deadline is not None and (now >= self._drain_deadline
                                                 or not self.window):
            self._drain_deadline = None
            self._send_unbind(now)
        if self._unbind_deadline is not None and now >= self._unbind_deadline:
            self._unbind_deadline = None
            self._close("no unbind_resp in time")

    def connection_lost(self, now: float, reason: str = "connection lost") -> None:
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        self._fail_outstanding(reason)
        self._control.clear()
        self._delivers.clear()
        self._bind_deadline = self._enquire_deadline = None
        self._drain_deadline = self._unbind_deadline = None

    # Caller requests ------------------------------------------------------------

    @property
    def bound(self) -> bool:
        return self.state is State.BOUND

    @property
    def can_submit(self) -> bool:
        return self.window_available > 0

    @property
    def in_flight(self) -> int:
        return len(self.window)

    @property
    def window_available(self) -> int:
        if self.state is not State.BOUND or not self._can_transmit:
            return 0
        return self.window.room

    def submit(self, fields: dict[str, Any], token: Any, now: float,
               command: str = "submit_sm") -> int:
        """Send one submit_sm (or data_sm); returns its sequence number.

        Raises SessionError when not bound or the window is full, and PduEncodeError
        for fields SMPP cannot carry; in both cases nothing was sent.
        """
        if command not in _SUBMIT_COMMANDS:
            raise SessionError(f"{command} is not a submit command")
        if self.state is not State.BOUND or not self._can_transmit:
            raise SessionError(f"cannot submit in state {self.state.value}")
        if not self.window.room:
            raise SessionError(f"window of {self.config.window} is full")
        sequence = self._allocate_sequence()
        self._out.append(codec.encode(Pdu(command, sequence, 0, fields)))
        self.counters.sent[command] += 1
        self.window.open(sequence, token, now + self.config.response_timeout)
        return sequence

    def respond(self, handle: int, status: int = c.ESME_ROK) -> None:
        """Answer a DeliverReceived. Unknown or already answered handles are ignored."""
        entry = self._delivers.pop(handle, None)
        if entry is None or self.state is State.CLOSED:
            return
        sequence, command = entry
        fields = {"message_id": ""} if command == "data_sm" else {}
        self._reply(Pdu(command + "_resp", sequence, status, fields))

    def unbind(self, now: float) -> None:
        """Graceful close: no new submits, wait for outstanding responses up to
        drain_timeout, send unbind, wait for unbind_resp up to unbind_timeout."""
        if self.state is State.BINDING:
            self._close("closed before bound")
        elif self.state is State.BOUND:
            self.state = State.DRAINING
            self._drain_deadline = now + self.config.drain_timeout
            if not self.window:
                self._drain_deadline = None
                self._send_unbind(now)

    # Outputs --------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        return data

    def events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (self._bind_deadline, self._drain_deadline,
                                 self._unbind_deadline, self._enquire_deadline,
                                 self.window.next_deadline()) if d is not None]
        if self.state in (State.BOUND, State.DRAINING) and self._enquire_deadline is None:
            deadlines.append(self._last_received + self.config.enquire_link_interval)
        return min(deadlines) if deadlines else None

    # Internals ------------------------------------------------------------------

    def _allocate_sequence(self) -> int:
        """Next sequence number in 1..0x7FFFFFFF, wrapping, skipping numbers still
        awaiting a response (the pending maps never collide across a wrap)."""
        sequence = self._sequence
        while True:
            sequence = sequence + 1 if sequence < c.MAX_SEQUENCE else 1
            if sequence not in self.window and sequence not in self._control:
                self._sequence = sequence
                return sequence

    def _send_request(self, command: str, kind: str, fields: dict[str, Any]) -> int:
        sequence = self._allocate_sequence()
        self._out.append(codec.encode(Pdu(command, sequence, 0, fields)))
        self.counters.sent[command] += 1
        self._control[sequence] = kind
        return sequence

    def _reply(self, pdu: Pdu) -> None:
        self._out.append(codec.encode(pdu))
        self.counters.sent[pdu.command] += 1

    def _protocol_error(self, description: str) -> None:
        self._events.append(ProtocolError(description))

    def _close(self, reason: str, cause: NoResponse = NoResponse.CONNECTION) -> None:
        if self.state is State.CLOSED:
            return
        self.state = State.UNBOUND
        self._fail_outstanding(reason, cause)
        self._bind_deadline = self._enquire_deadline = None
        self._drain_deadline = self._unbind_deadline = None
        self._events.append(CloseConnection(reason))

    def _fail_outstanding(self, reason: str,
                          cause: NoResponse = NoResponse.CONNECTION) -> None:
        self._events.extend(SubmitUnknown(token, reason, cause)
                            for token in self.window.fail_all())

    def _keepalive(self, now: float) -> None:
        if self._enquire_deadline is not None:
            if now >= self._enquire_deadline:
                self._enquire_deadline = None
                self._close("no enquire_link_resp within "
                            f"{self.config.enquire_link_timeout:g} s")
            return
        # The same sum next_deadline() gives: `now - last >= interval` differs from it
        # in the last bit for some values (60.004999999999995 - 30.005 < 30), and a
        # timer set for that deadline then found nothing due and was set again for it
        # at once, as often as the reactor could run it.
        if now >= self._last_received + self.config.enquire_link_interval:
            self._send_request("enquire_link", "enquire_link", {})
            self._enquire_deadline = now + self.config.enquire_link_timeout

    def _send_unbind(self, now: float) -> None:
        if self.state not in (State.BOUND, State.DRAINING):
            return
        self.state = State.UNBINDING
        self._send_request("unbind", "unbind", {})
        self._unbind_deadline = now + self.config.unbind_timeout

    # Incoming PDUs: a transition table ------------------------------------------

    def _handle_frame(self, frame: bytes, now: float) -> None:
        try:
            pdu = codec.decode(frame)
        except PduDecodeError as exc:
            self._handle_undecodable(frame, exc)
            self.counters.received[("undecodable", exc.status)] += 1
            return
        self.counters.received[(pdu.command, pdu.status)] += 1
        handler = _TRANSITIONS.get((self.state, pdu.command))
        if handler is not None:
            handler(self, pdu)
        elif pdu.is_response:
            self._protocol_error(f"unexpected {pdu.command} seq {pdu.sequence} while "
                                 f"{self.state.value}")
        else:
            # Fail closed: a request this state does not serve is refused, never acted on
            # (a known command in the wrong state, or one an ESME does not serve at all).
            status = c.ESME_RINVBNDSTS if pdu.command in _ESME_SERVES else c.ESME_RINVCMDID
            self._reply(Pdu("generic_nack", pdu.sequence, status))
            self._protocol_error(f"unexpected request {pdu.command} seq {pdu.sequence} "
                                 f"while {self.state.value}")

    def _on_submit_response(self, pdu: Pdu) -> None:
        self._submit_response(pdu.sequence, pdu.status, pdu.fields.get("message_id"), False)

    def _on_deliver(self, pdu: Pdu) -> None:
        if self.config.bind_mode is BindMode.TRANSMITTER:
            self._reply(Pdu(pdu.command + "_resp", pdu.sequence, c.ESME_RINVBNDSTS,
                            {"message_id": ""} if pdu.command == "data_sm" else {}))
            self._protocol_error(f"{pdu.command} on a transmitter bind")
            return
        handle = next(self._handles)
        self._delivers[handle] = (pdu.sequence, pdu.command)
        self._events.append(DeliverReceived(handle, pdu))

    def _on_enquire_link(self, pdu: Pdu) -> None:
        self._reply(codec.response_to(pdu))

    def _on_enquire_link_resp(self, pdu: Pdu) -> None:
        if self._control.pop(pdu.sequence, None) == "enquire_link":
            self._enquire_deadline = None

    def _on_unbind(self, pdu: Pdu) -> None:
        self._reply(codec.response_to(pdu))
        self._events.append(UnbindReceived())
        self._close("unbound by the SMSC", NoResponse.UNBOUND)

    def _on_unbind_resp(self, pdu: Pdu) -> None:
        if self._control.pop(pdu.sequence, None) == "unbind":
            self._close("unbind complete")

    def _on_alert_notification(self, pdu: Pdu) -> None:
        pass  # no response is defined for it

    def _on_generic_nack(self, pdu: Pdu) -> None:
        sequence = pdu.sequence
        if sequence == 0:
            # The SMSC could not even read our header: the stream is out of step.
            self._protocol_error(f"generic_nack seq 0 ({c.status_name(pdu.status)})")
            self._close(f"generic_nack with seq 0 ({c.status_name(pdu.status)})")
        elif self.window.knows(sequence):
            self._submit_response(sequence, pdu.status, None, True)
        elif self._control.get(sequence) == "bind":
            self._on_bind_response(Pdu("bind_transceiver_resp", sequence,
                                       pdu.status or c.ESME_RBINDFAIL))
        elif sequence in self._control:
            kind = self._control.pop(sequence)
            if kind == "enquire_link":
                self._enquire_deadline = None  # the link answered; it is alive
            elif kind == "unbind":
                self._close("unbind answered with generic_nack")
        else:
            self._protocol_error(f"generic_nack for unknown seq {sequence}")

    def _on_bind_response(self, pdu: Pdu) -> None:
        if self._control.pop(pdu.sequence, None) != "bind":
            self._protocol_error(f"unexpected {pdu.command} seq {pdu.sequence}")
            return
        self._bind_deadline = None
        if pdu.status == c.ESME_ROK:
            self.state = State.BOUND
            self.smsc_system_id = pdu.fields.get("system_id", "")
            self._events.append(Bound(self.smsc_system_id or ""))
            return
        self._events.append(BindFailed(pdu.status, c.status_name(pdu.status)))
        self._close(f"bind rejected: {c.status_name(pdu.status)}")

    def _handle_undecodable(self, frame: bytes, exc: PduDecodeError) -> None:
        _length, command_id, status, sequence = codec.decode_header(frame)
        self._protocol_error(f"undecodable PDU: {exc}")
        if not command_id & c.RESPONSE_BIT:
            self._reply(Pdu("generic_nack", sequence, exc.status))
            return
        # A response we cannot read still settles its request: its status is in the header.
        if self.window.knows(sequence):
            self._submit_response(sequence, status, None, False)
        elif sequence in self._control:
            kind = self._control[sequence]
            if kind == "bind":
                if self.state is State.BINDING:
                    self._on_bind_response(Pdu("bind_transceiver_resp", sequence, status))
            else:
                self._control.pop(sequence)
                if kind == "enquire_link":
                    self._enquire_deadline = None

    def _submit_response(self, sequence: int, status: int, message_id: str | None,
                         nack: bool) -> None:
        settled = self.window.settle(sequence)
        message_id = message_id or None
        if settled is None:
            self._protocol_error(f"response for unknown seq {sequence}")
            return
        token, late = settled
        if late:
            self._events.append(LateResponse(token, status, message_id))
            return
        self._events.append(SubmitResult(token, status, message_id, nack))
        if self._drain_deadline is not None and not self.window:
            self._drain_deadline = 0.0  # drained: unbind on the next tick


_Handler = Callable[[EsmeSession, Pdu], None]
_BIND_RESPONSES = ("bind_transceiver_resp", "bind_transmitter_resp", "bind_receiver_resp")
# What an ESME serves when the SMSC asks; any other request is ESME_RINVCMDID.
_ESME_SERVES = frozenset({"deliver_sm", "data_sm", "enquire_link", "unbind",
                          "alert_notification"})
_CONNECTED = (State.BINDING, State.BOUND, State.DRAINING, State.UNBINDING)
_LIVE = (State.BOUND, State.DRAINING, State.UNBINDING)


def _table() -> dict[tuple[State, str], _Handler]:
    """(state, command) -> handler. What is not here fails closed (see _handle_frame):
    a bind response after bound, a deliver_sm before bound, anything once unbound."""
    s = EsmeSession
    table: dict[tuple[State, str], _Handler] = {}

    def allow(states: tuple[State, ...], commands: tuple[str, ...], handler: _Handler) -> None:
        for state in states:
            for command in commands:
                table[(state, command)] = handler

    allow((State.BINDING,), _BIND_RESPONSES, s._on_bind_response)
    allow(_CONNECTED, ("generic_nack",), s._on_generic_nack)
    allow(_CONNECTED, ("enquire_link",), s._on_enquire_link)
    allow(_CONNECTED, ("enquire_link_resp",), s._on_enquire_link_resp)
    allow(_CONNECTED, ("unbind",), s._on_unbind)
    allow(_CONNECTED, ("alert_notification",), s._on_alert_notification)
    allow(_LIVE, ("submit_sm_resp", "data_sm_resp"), s._on_submit_response)
    allow(_LIVE, ("deliver_sm", "data_sm"), s._on_deliver)
    allow((State.UNBINDING,), ("unbind_resp",), s._on_unbind_resp)
    return table


_TRANSITIONS = _table()
