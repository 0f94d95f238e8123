"""The sans-I/O ESME session, driven by bytes and clock values only."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from smppd.protocol import constants as c
from smppd.protocol import pdu as codec
from smppd.protocol.framing import Framer
from smppd.protocol.pdu import Pdu
from smppd.protocol.session import (
    BindFailed,
    BindMode,
    Bound,
    CloseConnection,
    DeliverReceived,
    EsmeSession,
    LateResponse,
    NoResponse,
    ProtocolError,
    SessionConfig,
    SessionError,
    State,
    SubmitResult,
    SubmitUnknown,
    UnbindReceived,
)


class Peer:
    """The SMSC side of a session under test."""

    def __init__(self, **config: Any) -> None:
        values: dict[str, Any] = {"system_id": "acme", "password": "pw", "window": 10,
                                  "response_timeout": 5.0, "enquire_link_interval": 30.0,
                                  "enquire_link_timeout": 10.0}
        values.update(config)
        self.session = EsmeSession(SessionConfig(**values))
        self.framer = Framer()
        self.now = 0.0

    def sent(self) -> list[Pdu]:
        return [codec.decode(f) for f in self.framer.feed(self.session.data_to_send())]

    def feed(self, *pdus: Pdu) -> list[Any]:
        self.session.data_received(b"".join(codec.encode(p) for p in pdus), self.now)
        return self.session.events()

    def bind(self) -> None:
        self.session.connection_made(self.now)
        (bind,) = self.sent()
        assert bind.command == "bind_transceiver"
        assert self.feed(codec.response_to(bind, system_id="smsc")) == [Bound("smsc")]

    def advance(self, seconds: float) -> list[Any]:
        self.now += seconds
        self.session.tick(self.now)
        return self.session.events()

    def submit(self, token: Any) -> int:
        return self.session.submit({"destination_addr": "48500100200", "short_message": b"x"},
                                   token, self.now)


def test_bind_sends_credentials_and_binds() -> None:
    peer = Peer(system_type="VMA")
    peer.session.connection_made(0)
    (bind,) = peer.sent()
    assert (bind.get("system_id"), bind.get("password"), bind.get("system_type"),
            bind.get("interface_version")) == ("acme", "pw", "VMA", 0x34)
    assert peer.feed(codec.response_to(bind, system_id="smsc")) == [Bound("smsc")]
    assert peer.session.state is State.BOUND


@pytest.mark.parametrize(("status", "name"), [(c.ESME_RINVPASWD, "ESME_RINVPASWD"),
                                              (c.ESME_RALYBND, "ESME_RALYBND")])
def test_bind_rejected_names_the_status_and_closes(status: int, name: str) -> None:
    peer = Peer()
    peer.session.connection_made(0)
    (bind,) = peer.sent()
    events = peer.feed(codec.response_to(bind, status))
    assert isinstance(events[0], BindFailed) and events[0].status_name == name
    assert isinstance(events[1], CloseConnection)


def test_bind_timeout() -> None:
    peer = Peer(bind_timeout=3)
    peer.session.connection_made(0)
    assert peer.session.next_deadline() == 3
    events = peer.advance(3)
    assert isinstance(events[0], BindFailed) and "no bind response" in events[0].reason


def test_sequence_numbers_wrap_and_never_collide() -> None:
    """Checklist 10: start at 0x7FFFFFFE, 3 PDUs: 0x7FFFFFFF, 1, 2 (bind took 0x7FFFFFFE)."""
    peer = Peer(initial_sequence=0x7FFFFFFE, window=5)
    peer.bind()
    seqs = [peer.submit(n) for n in range(3)]
    assert seqs == [0x7FFFFFFF, 1, 2]
    # Wrap again with 1 still pending: it is skipped.
    peer.feed(Pdu("submit_sm_resp", 2, 0, {"message_id": "b"}))
    peer.session._sequence = 0x7FFFFFFF
    assert peer.submit("x") == 2


def test_window_is_never_exceeded_and_responses_correlate_in_any_order() -> None:
    """Checklist 8."""
    peer = Peer(window=10)
    peer.bind()
    seqs = {peer.submit(n): n for n in range(10)}
    assert not peer.session.can_submit and peer.session.window_available == 0
    with pytest.raises(SessionError, match="window of 10 is full"):
        peer.submit("one too many")
    responses = [Pdu("submit_sm_resp", seq, 0, {"message_id": f"id{token}"})
                 for seq, token in reversed(seqs.items())]
    events = peer.feed(*responses)
    assert {e.token: e.message_id for e in events} == {n: f"id{n}" for n in range(10)}
    assert peer.session.window_available == 10


def test_response_timeout_means_unknown_and_late_response_is_reported() -> None:
    """Checklist 7: no blind resend; a late resp still reaches the caller."""
    peer = Peer(response_timeout=5)
    peer.bind()
    seq = peer.submit("m1")
    peer.sent()
    assert peer.advance(4.9) == []
    assert peer.advance(0.2) == [SubmitUnknown("m1", "no response within 5 s",
                                               NoResponse.TIMEOUT)]
    assert peer.sent() == []  # nothing was resent
    assert peer.feed(Pdu("submit_sm_resp", seq, 0, {"message_id": "77"})) == [
        LateResponse("m1", 0, "77")]


def test_generic_nack_fails_only_its_submit_and_seq_zero_reconnects() -> None:
    """Checklist 9."""
    peer = Peer()
    peer.bind()
    first, second = peer.submit("a"), peer.submit("b")
    events = peer.feed(Pdu("generic_nack", first, c.ESME_RINVCMDID))
    assert events == [SubmitResult("a", c.ESME_RINVCMDID, None, True)]
    events = peer.feed(Pdu("generic_nack", 0, c.ESME_RINVCMDLEN))
    assert isinstance(events[0], ProtocolError)
    assert SubmitUnknown("b", "generic_nack with seq 0 (ESME_RINVCMDLEN)") in events
    assert isinstance(events[-1], CloseConnection)
    assert second not in peer.session.window


def test_enquire_link_sent_on_idle_and_timeout_closes() -> None:
    """Checklist 11."""
    peer = Peer(enquire_link_interval=30, enquire_link_timeout=10)
    peer.bind()
    peer.sent()
    assert peer.advance(29) == [] and peer.sent() == []
    peer.advance(1)
    (enquire,) = peer.sent()
    assert enquire.command == "enquire_link"
    assert peer.session.next_deadline() == 40
    events = peer.advance(10)
    assert events == [CloseConnection("no enquire_link_resp within 10 s")]


def test_enquire_link_answered_keeps_the_link() -> None:
    peer = Peer(enquire_link_interval=30)
    peer.bind()
    peer.advance(30)
    (enquire,) = peer.sent()
    peer.feed(codec.response_to(enquire))
    assert peer.advance(15) == []
    assert peer.session.state is State.BOUND


def test_the_enquire_link_is_due_at_exactly_the_deadline_the_session_gives() -> None:
    """next_deadline() is when the transport's timer fires; tick() at that moment must
    find the enquire_link due, whatever the float rounding (30.005 + 30 - 30.005 is
    29.999999999999996), or the timer is set again for the same moment, forever."""
    peer = Peer(enquire_link_interval=30)
    peer.now = 30.005
    peer.bind()  # the bind response is the last thing received, at 30.005
    deadline = peer.session.next_deadline()
    assert deadline is not None and deadline - 30.005 < 30  # the rounding in question
    peer.now = deadline
    peer.session.tick(deadline)
    (enquire,) = peer.sent()
    assert enquire.command == "enquire_link"


def test_smsc_enquire_link_is_answered_at_once() -> None:
    peer = Peer()
    peer.bind()
    peer.feed(Pdu("enquire_link", 555))
    (resp,) = peer.sent()
    assert (resp.command, resp.sequence) == ("enquire_link_resp", 555)


def test_smsc_unbind_is_answered_and_in_flight_reported_unknown() -> None:
    """Checklist 12."""
    peer = Peer()
    peer.bind()
    peer.submit("a")
    peer.sent()
    events = peer.feed(Pdu("unbind", 9))
    (resp,) = peer.sent()
    assert (resp.command, resp.sequence) == ("unbind_resp", 9)
    assert events[0] == UnbindReceived()
    assert SubmitUnknown("a", "unbound by the SMSC", NoResponse.UNBOUND) in events
    with pytest.raises(SessionError):
        peer.submit("b")


def test_deliver_is_answered_only_when_the_caller_responds() -> None:
    """Checklist 25/32: ack after the durable write, status chosen by the caller."""
    peer = Peer()
    peer.bind()
    events = peer.feed(Pdu("deliver_sm", 40, 0, {"short_message": b"hi"}))
    assert isinstance(events[0], DeliverReceived) and events[0].pdu.sequence == 40
    assert peer.sent() == []
    peer.session.respond(events[0].handle, c.ESME_RX_T_APPN)
    (resp,) = peer.sent()
    assert (resp.command, resp.sequence, resp.status) == ("deliver_sm_resp", 40, 0x64)
    peer.session.respond(events[0].handle)
    assert peer.sent() == []  # answered once only


def test_every_deliver_is_answered_when_the_smsc_reuses_sequence_numbers() -> None:
    """Issue 8: 40 deliver_sm with sequence 0 or 0xFFFFFFFF were stored but only 2
    answered. Handles are the session's own, so each PDU gets its answer."""
    peer = Peer()
    peer.bind()
    pdus = [Pdu("deliver_sm", 0 if n % 2 else 0xFFFFFFFF, 0, {"short_message": b"%d" % n})
            for n in range(40)]
    events = peer.feed(*pdus)
    handles = [e.handle for e in events if isinstance(e, DeliverReceived)]
    assert len(set(handles)) == 40
    for handle in reversed(handles):  # in any order, as the writes commit
        peer.session.respond(handle)
    answers = peer.sent()
    assert len(answers) == 40 and all(p.command == "deliver_sm_resp" for p in answers)
    assert sorted(p.sequence for p in answers) == [0] * 20 + [0xFFFFFFFF] * 20


def test_the_transition_table_fails_closed() -> None:
    """A PDU the state does not expect is refused or reported, never acted on."""
    peer = Peer()
    peer.session.connection_made(0)
    (bind,) = peer.sent()
    events = peer.feed(Pdu("deliver_sm", 5, 0, {"short_message": b"early"}))
    (nack,) = peer.sent()
    assert (nack.command, nack.sequence, nack.status) == ("generic_nack", 5,
                                                           c.ESME_RINVBNDSTS)
    assert not any(isinstance(e, DeliverReceived) for e in events)
    peer.feed(codec.response_to(bind))
    assert peer.session.state is State.BOUND
    events = peer.feed(codec.response_to(bind), Pdu("unbind_resp", 77, 0))
    assert [type(e) for e in events] == [ProtocolError, ProtocolError]
    assert peer.session.state is State.BOUND


def test_garbage_and_unknown_commands_get_generic_nack_and_the_session_goes_on() -> None:
    peer = Peer()
    peer.bind()
    unknown = struct.pack(">IIII", 16, 0x00000099, 0, 12)
    bad_body = struct.pack(">IIII", 20, 0x00000005, 0, 13) + b"abcd"
    peer.session.data_received(unknown + bad_body, 0)
    nacks = peer.sent()
    assert [(p.command, p.sequence, p.status) for p in nacks] == [
        ("generic_nack", 12, c.ESME_RINVCMDID), ("generic_nack", 13, c.ESME_RINVCMDLEN)]
    assert peer.session.state is State.BOUND
    assert all(isinstance(e, ProtocolError) for e in peer.session.events())


def test_impossible_command_length_nacks_and_disconnects() -> None:
    """Checklist 31."""
    peer = Peer()
    peer.bind()
    peer.submit("a")
    peer.sent()
    peer.session.data_received(struct.pack(">IIII", 0xFFFFFFF0, 4, 0, 3), 0)
    (nack,) = peer.sent()
    assert (nack.command, nack.status) == ("generic_nack", c.ESME_RINVCMDLEN)
    events = peer.session.events()
    assert SubmitUnknown("a", "framing error: command_length 4294967280 is outside "
                              "16..70000") in events
    assert isinstance(events[-1], CloseConnection)


def test_undecodable_submit_resp_still_settles_its_submit() -> None:
    peer = Peer()
    peer.bind()
    seq = peer.submit("a")
    raw = struct.pack(">IIII", 20, 0x80000004, 0, seq) + b"abcd"  # no NUL
    peer.session.data_received(raw, 0)
    events = peer.session.events()
    assert SubmitResult("a", 0, None, False) in events


def test_graceful_unbind_waits_for_outstanding_responses() -> None:
    peer = Peer(drain_timeout=10)
    peer.bind()
    seq = peer.submit("a")
    peer.sent()
    peer.session.unbind(peer.now)
    assert peer.session.state is State.DRAINING and peer.sent() == []
    with pytest.raises(SessionError):
        peer.submit("b")
    peer.feed(Pdu("submit_sm_resp", seq, 0, {"message_id": "1"}))
    peer.advance(0)
    (unbind,) = peer.sent()
    assert unbind.command == "unbind"
    events = peer.feed(codec.response_to(unbind))
    assert events == [CloseConnection("unbind complete")]


def test_graceful_unbind_gives_up_after_drain_timeout() -> None:
    peer = Peer(drain_timeout=2, unbind_timeout=1)
    peer.bind()
    peer.submit("a")
    peer.sent()
    peer.session.unbind(peer.now)
    peer.advance(2)
    assert [p.command for p in peer.sent()] == ["unbind"]
    events = peer.advance(1)
    assert SubmitUnknown("a", "no unbind_resp in time") in events


def test_connection_lost_reports_every_in_flight_submit() -> None:
    peer = Peer()
    peer.bind()
    for n in range(5):
        peer.submit(n)
    peer.session.connection_lost(1.0, "reset by peer")
    assert peer.session.events() == [SubmitUnknown(n, "reset by peer") for n in range(5)]
    assert peer.session.state is State.CLOSED


def test_transmitter_refuses_deliver_and_receiver_refuses_submit() -> None:
    tx = Peer(bind_mode=BindMode.TRANSMITTER)
    tx.session.connection_made(0)
    (bind,) = tx.sent()
    assert bind.command == "bind_transmitter"
    tx.feed(codec.response_to(bind))
    tx.feed(Pdu("deliver_sm", 3, 0, {}))
    (resp,) = tx.sent()
    assert resp.status == c.ESME_RINVBNDSTS
    rx = Peer(bind_mode=BindMode.RECEIVER)
    rx.session.connection_made(0)
    (bind,) = rx.sent()
    rx.feed(codec.response_to(bind))
    assert not rx.session.can_submit
    with pytest.raises(SessionError):
        rx.submit("x")


def test_unexpected_requests_and_responses() -> None:
    peer = Peer()
    peer.bind()
    events = peer.feed(Pdu("submit_sm", 8, 0, {}), Pdu("query_sm_resp", 99, 0, {}),
                       Pdu("submit_sm_resp", 12345, 0, {"message_id": "z"}))
    (nack,) = peer.sent()
    assert (nack.command, nack.sequence) == ("generic_nack", 8)
    assert [e.description for e in events] == [
        "unexpected request submit_sm seq 8 while bound",
        "unexpected query_sm_resp seq 99 while bound", "response for unknown seq 12345"]


def test_generic_nack_to_bind_is_a_bind_failure() -> None:
    peer = Peer()
    peer.session.connection_made(0)
    (bind,) = peer.sent()
    events = peer.feed(Pdu("generic_nack", bind.sequence, c.ESME_RINVCMDID))
    assert isinstance(events[0], BindFailed) and events[0].status_name == "ESME_RINVCMDID"
    assert isinstance(events[-1], CloseConnection)
