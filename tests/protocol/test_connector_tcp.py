"""The connector against the fake SMSC over real TCP on 127.0.0.1."""

from __future__ import annotations

import time

from smppd.fake_smsc import FakeSmsc
from twisted.internet import task

from smppd.protocol import constants as c
from smppd.protocol import receipts
from smppd.protocol.command_status import Action, classify_submit
from smppd.protocol.connector import BindKind, LinkState
from smppd.protocol.message_id import IdFormat, IdPolicy
from tests.conftest import call, wait_for
from tests.support.peer import record_commands


def _submit_fields(destination: str = "48500100200", text: bytes = b"hello",
                   receipt: bool = True) -> dict:
    return {"source_addr": "Acme", "source_addr_ton": c.TON_ALPHANUMERIC,
            "destination_addr": destination, "dest_addr_ton": c.TON_INTERNATIONAL,
            "dest_addr_npi": c.NPI_ISDN, "short_message": text,
            "registered_delivery": 1 if receipt else 0}


def _send(connector, tokens, **fields) -> None:  # type: ignore[no-untyped-def]
    def go() -> None:
        for token in tokens:
            assert connector.submit(_submit_fields(**fields), token) is not None

    call(go)


def test_bind_submit_and_receipt(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    connector, listener = connect()
    _send(connector, ["m1"])
    wait_for(lambda: "m1" in listener.results and listener.delivers, what="resp and receipt")
    result = listener.results["m1"]
    assert result.status == 0 and result.message_id
    receipt = receipts.parse(listener.delivers[0])
    assert receipt.message_id == result.message_id and receipt.status == "delivered"
    wait_for(lambda: smsc.deliver_responses, what="deliver_sm_resp at the SMSC")
    assert list(smsc.deliver_responses.values()) == [0]
    assert smsc.submits[0].pdu.get("source_addr") == "Acme"


def test_wrong_password_parks_in_auth_failed_without_a_loop(smsc: FakeSmsc,
                                                            connect) -> None:  # type: ignore[no-untyped-def]
    """Checklist 13: 0x0E -> auth_failed, no retries, named status."""
    smsc.behaviour.credentials = {"acme": "right"}
    connector, listener = connect(password="wrong", wait_bound=False)
    wait_for(lambda: connector.links[0].state is LinkState.AUTH_FAILED, what="auth_failed")
    time.sleep(0.5)  # several back-off periods (0.05 s) pass
    assert len(smsc.binds) == 1 and smsc.binds[0][2] == c.ESME_RINVPASWD
    assert listener.bind_failures[0][1] is True
    assert connector.links[0].last_bind_error == "ESME_RINVPASWD"
    assert connector.state() == "auth_failed"
    # A reload with the right password binds again.
    from dataclasses import replace

    call(connector.reload, replace(connector.config,
                                   session=replace(connector.config.session, password="right")))
    wait_for(lambda: connector.bound, what="bound after reload")


def test_wrong_system_type_named(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    smsc.behaviour.system_type = "VMA"
    connector, listener = connect(wait_bound=False)
    wait_for(lambda: listener.bind_failures, what="bind failure")
    assert listener.bind_failures[0][0].status_name == "ESME_RINVSYSTYP"
    assert connector.links[0].state is LinkState.AUTH_FAILED


def test_already_bound_backs_off_then_succeeds(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    """Checklist 13: 0x05 leads to back-off and a later success."""
    smsc.behaviour.bind_status = c.ESME_RALYBND
    connector, listener = connect(wait_bound=False)
    wait_for(lambda: len(smsc.binds) >= 3, what="three bind attempts")
    smsc.behaviour.bind_status = None
    wait_for(lambda: connector.bound, what="bound at last")
    assert all(status == c.ESME_RALYBND for _cmd, _id, status in smsc.binds[:-1])
    assert listener.bind_failures[0][1] is False


def test_enquire_link_timeout_drops_and_reconnects(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    """Checklist 11: an unanswered enquire_link drops the link, which is re-established.
    The deadline arithmetic (interval + timeout) is exact in the sans-I/O session test;
    here the drop must be caused by that deadline, over a real socket."""
    smsc.behaviour.answer_enquire_link = False
    _connector, listener = connect(enquire_link_interval=0.2, enquire_link_timeout=0.2)
    wait_for(lambda: listener.unbound_count >= 1, what="link dropped")
    assert ("unbound", "no enquire_link_resp within 0.2 s") in listener.events
    smsc.behaviour.answer_enquire_link = True
    wait_for(lambda: listener.bound_count >= 2, what="bound again")
    assert smsc.enquire_links_received >= 1


def test_drop_mid_window_reports_every_in_flight_as_unknown(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    smsc.behaviour.response_delay = 5.0  # responses never come before the drop
    smsc.behaviour.receipts = False
    connector, listener = connect(window=10)
    _send(connector, [f"m{i}" for i in range(10)])
    wait_for(lambda: len(smsc.submits) == 10, what="10 submits at the SMSC")
    call(smsc.drop_all)
    wait_for(lambda: len(listener.unknown) == 10, what="10 unknown outcomes")
    assert set(listener.unknown) == {f"m{i}" for i in range(10)}
    assert not listener.results
    wait_for(lambda: connector.bound, what="rebound")


def test_receipt_before_response_is_matched(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    """Checklist 1: the receipt arrives 50 ms before submit_sm_resp."""
    smsc.behaviour.receipt_before_response = 0.05
    connector, listener = connect()
    _send(connector, ["m1"])
    wait_for(lambda: "m1" in listener.results, what="resp")
    assert len(listener.delivers) == 1  # the receipt came first
    receipt = receipts.parse(listener.delivers[0])
    assert receipt.message_id == listener.results["m1"].message_id


def test_hex_response_decimal_receipt(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    """Checklist 2 over the wire: resp 00B8BE19, receipt 12107289."""
    smsc.behaviour.id_format = "hexpad"
    smsc.behaviour.receipt_id_format = "dec"
    smsc.behaviour.receipt_tlvs = False
    connector, listener = connect()
    _send(connector, ["m1"])
    wait_for(lambda: "m1" in listener.results and listener.delivers, what="resp and receipt")
    resp_id = listener.results["m1"].message_id
    receipt = receipts.parse(listener.delivers[0])
    assert (resp_id, receipt.message_id) == ("00B8BE19", "12107289")
    policy = IdPolicy(IdFormat.HEX, IdFormat.DEC)
    assert policy.from_response(resp_id) == policy.from_receipt(receipt.message_id)
    decimal = IdPolicy(IdFormat.DEC, IdFormat.DEC)
    assert decimal.from_response(resp_id) != decimal.from_receipt(receipt.message_id)


def test_big_and_uuid_ids_round_trip(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    """Checklist 3."""
    connector, listener = connect()
    for count, fmt in enumerate(("big", "uuid"), start=1):
        smsc.behaviour.id_format = fmt
        _send(connector, [fmt])
        wait_for(lambda count=count: len(smsc.submits) == count, what=f"{fmt} submit")
    wait_for(lambda: len(listener.delivers) == 2, what="two receipts")
    assert len(listener.results["big"].message_id) == 20
    assert len(listener.results["uuid"].message_id) == 36
    ids = {receipts.parse(p).message_id for p in listener.delivers}
    assert ids == {listener.results["big"].message_id, listener.results["uuid"].message_id}


def test_throttling_status_is_reported_as_throttled(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    """Checklist 4 at the protocol level: 0x58 is retryable, and a retry gets through."""
    smsc.behaviour.throttle_every = 3
    smsc.behaviour.receipts = False
    connector, listener = connect()
    _send(connector, [f"m{i}" for i in range(9)])
    wait_for(lambda: len(listener.results) == 9, what="9 responses")
    throttled = [t for t, r in listener.results.items() if r.status == c.ESME_RTHROTTLED]
    assert len(throttled) == 3
    assert all(classify_submit(listener.results[t].status) is Action.THROTTLED
               for t in throttled)
    smsc.behaviour.throttle_every = 0
    _send(connector, [f"{t}-retry" for t in throttled])
    wait_for(lambda: all(f"{t}-retry" in listener.results for t in throttled), what="retries")
    assert all(listener.results[f"{t}-retry"].status == 0 for t in throttled)


def test_queue_full_when_smsc_window_exceeded(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    smsc.behaviour.max_pending = 2
    smsc.behaviour.response_delay = 0.2
    smsc.behaviour.receipts = False
    connector, listener = connect(window=5)
    _send(connector, [f"m{i}" for i in range(5)])
    wait_for(lambda: len(listener.results) == 5, what="5 responses")
    statuses = sorted(r.status for r in listener.results.values())
    assert statuses == [0, 0, c.ESME_RMSGQFUL, c.ESME_RMSGQFUL, c.ESME_RMSGQFUL]
    assert classify_submit(c.ESME_RMSGQFUL) is Action.QUEUE_FULL


def test_generic_nack_for_a_submit(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    """Checklist 9 over TCP."""
    smsc.behaviour.nack_every = 2
    smsc.behaviour.receipts = False
    connector, listener = connect()
    _send(connector, ["a", "b", "c"])
    wait_for(lambda: len(listener.results) == 3, what="3 outcomes")
    assert listener.results["b"].generic_nack and listener.results["b"].status == c.ESME_RINVCMDID
    assert listener.results["a"].status == 0 and listener.results["c"].status == 0
    assert connector.bound


def test_generic_nack_seq_zero_forces_reconnect(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    from smppd.protocol import pdu as codec
    from smppd.protocol.pdu import Pdu

    _connector, listener = connect()
    call(smsc.broadcast_raw, codec.encode(Pdu("generic_nack", 0, c.ESME_RINVCMDLEN)))
    wait_for(lambda: listener.unbound_count == 1 and listener.bound_count == 2,
             what="reconnected")


def test_garbage_bytes_on_the_socket(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    """Undecodable PDU: generic_nack and go on. Impossible length: nack and reconnect."""
    import struct

    connector, listener = connect()
    call(smsc.broadcast_raw, struct.pack(">IIII", 20, 0x99, 0, 4242) + b"junk")
    wait_for(lambda: smsc.nacks_received, what="generic_nack at the SMSC")
    assert (smsc.nacks_received[0].sequence, smsc.nacks_received[0].status) == (
        4242, c.ESME_RINVCMDID)
    _send(connector, ["after-garbage"])
    wait_for(lambda: "after-garbage" in listener.results, what="still working")
    call(smsc.broadcast_raw, b"\xff\xff\xff\xf0" + b"\x00" * 12)
    wait_for(lambda: listener.bound_count == 2, what="reconnected after framing error")
    assert any(n.status == c.ESME_RINVCMDLEN for n in smsc.nacks_received)
    assert any("framing" in e for e in listener.protocol_errors)


def test_smsc_unbind_mid_burst(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    """Checklist 12: the SMSC unbinds with five submits unanswered. unbind_resp is
    sent, and no submit follows on that bind although the ESME keeps offering work
    all along (every 2 ms while its window has room); the five are reported, and
    the work goes on over a new bind."""
    smsc.behaviour.response_delay = 0.5
    smsc.behaviour.receipts = False
    connector, listener = connect(window=10)
    _send(connector, [f"m{i}" for i in range(5)])
    wait_for(lambda: len(smsc.submits) == 5, what="5 submits")
    first = smsc.connections[0]
    seen = record_commands(first, "submit_sm", "unbind_resp")
    offered: list[str] = []

    def offer() -> None:
        token = f"late{len(offered)}"
        if connector.submit(_submit_fields(), token) is not None:
            offered.append(token)

    loop = task.LoopingCall(offer)
    call(smsc.unbind_all)
    call(lambda: loop.start(0.002) and None)
    try:
        wait_for(lambda: {f"m{i}" for i in range(5)} <= set(listener.unknown),
                 what="the five unanswered reported")
        wait_for(lambda: connector.bound and first not in smsc.connections, what="rebound")
        wait_for(lambda: len(smsc.submits) > 5 + seen.count("submit_sm"),
                 what="work going out on the new bind")
    finally:
        call(loop.stop)
    assert "unbind_resp" in seen
    after = seen[seen.index("unbind_resp") + 1:]
    assert "submit_sm" not in after, f"submits after unbind_resp on that bind: {after}"


def test_reverse_order_responses_with_window(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    """Checklist 8: window 10, the SMSC answers in reverse after 200 ms."""
    smsc.behaviour.respond_in_reverse = 10
    smsc.behaviour.response_delay = 0.2
    smsc.behaviour.receipts = False
    connector, listener = connect(window=10)
    peak = 0
    sent = 0

    def pump() -> None:
        nonlocal sent, peak
        while sent < 50 and connector.window_available > 0:
            connector.submit(_submit_fields(text=f"msg {sent}".encode()), sent)
            sent += 1
        peak = max(peak, connector.links[0].in_flight)

    call(pump)
    while len(listener.results) < 50:
        wait_for(lambda: connector.window_available > 0 or len(listener.results) == 50)
        call(pump)
    assert peak <= 10
    by_text = {r.pdu.get("short_message"): r.message_id for r in smsc.submits}
    for token, result in listener.results.items():
        assert by_text[f"msg {token}".encode()] == result.message_id


def test_transmitter_receiver_pair(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    connector, listener = connect(bind=BindKind.TRANSMITTER_RECEIVER)
    assert {b[0] for b in smsc.binds} == {"bind_transmitter", "bind_receiver"}
    _send(connector, ["m1"])
    wait_for(lambda: listener.delivers, what="receipt on the receiver")
    receiver = next(conn for conn in smsc.connections if conn.bound_as == "bind_receiver")
    assert receiver.can_receive


def test_late_response_after_timeout(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    smsc.behaviour.response_delay = 0.6
    smsc.behaviour.receipts = False
    connector, listener = connect(response_timeout=0.2)
    _send(connector, ["m1"])
    wait_for(lambda: "m1" in listener.unknown, what="unknown outcome")
    wait_for(lambda: listener.late, what="late response")
    assert listener.late[0].token == "m1" and listener.late[0].message_id


def test_swallowed_response_is_unknown_never_resent(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    """Checklist 7 at the protocol level: one submit, no resp, no resend."""
    smsc.behaviour.swallow = {1}
    smsc.behaviour.receipts = False
    connector, listener = connect(response_timeout=0.3)
    _send(connector, ["m1"])
    wait_for(lambda: "m1" in listener.unknown, what="unknown")
    time.sleep(0.3)
    assert len(smsc.submits) == 1


def test_graceful_stop_unbinds(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    smsc.behaviour.response_delay = 0.2
    smsc.behaviour.receipts = False
    connector, listener = connect()
    _send(connector, ["m1", "m2"])
    call(connector.stop)
    assert set(listener.results) == {"m1", "m2"}  # drained before unbinding
    assert any(p.command == "unbind" for p in smsc.received)
    assert connector.links[0].state is LinkState.STOPPED


def test_smsc_enquire_link_answered_within_a_burst(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    """Checklist 11: mid-way through a 1,000-message burst the SMSC sends enquire_link; the
    answer reaches it before more than one window of further submits (ordering, not time)."""
    smsc.behaviour.receipts = False
    connector, listener = connect(window=10)
    total = 1000
    sent = 0
    asked: list[tuple[int, int]] = []  # (enquire seq, PDUs the SMSC had received then)

    def pump() -> None:
        nonlocal sent
        while sent < total and connector.window_available > 0:
            connector.submit(_submit_fields(receipt=False), sent, flush=False)
            sent += 1
        connector.flush()
        if not asked and len(smsc.submits) >= 300:
            (sequence,) = smsc.send_enquire_link()
            asked.append((sequence, len(smsc.received)))

    while len(listener.results) < total:
        call(pump)
        wait_for(lambda: connector.window_available > 0 or len(listener.results) == total)
    sequence, position = asked[0]
    answer = next(i for i, p in enumerate(smsc.received)
                  if p.command == "enquire_link_resp" and p.sequence == sequence)
    submits_in_between = sum(1 for p in smsc.received[position:answer] if p.command == "submit_sm")
    assert submits_in_between <= 10
