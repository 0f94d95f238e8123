"""MO over TCP, TLS verification, and random texts through split + send + reassembly."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smppd.fake_smsc import FakeSmsc

from smppd.protocol import receipts
from smppd.protocol.connector import LinkState, TlsConfig
from smppd.protocol.inbound import Reassembler, fragment_from_pdu
from smppd.protocol.segmentation import ConcatReferences, SplitMode, SplitPolicy, split
from smppd.protocol.text import Encoding
from tests.conftest import call, self_signed, wait_for


def _reassembled(listener) -> list:  # type: ignore[no-untyped-def]
    reassembler = Reassembler()
    messages = []
    for pdu in listener.delivers:
        if receipts.is_receipt(pdu):
            continue
        message = reassembler.add(fragment_from_pdu(pdu), 0.0)
        if message is not None:
            messages.append(message)
    return messages


@pytest.mark.parametrize(("text", "encoding", "mode"), [
    ("Hello from a handset", None, SplitMode.UDH),
    ("Zażółć gęślą jaźń 😀", Encoding.UCS2, SplitMode.UDH),
    ("long " * 80, None, SplitMode.UDH),
    ("długi tekst " * 20, None, SplitMode.UDH16),
    ("sar split " * 40, None, SplitMode.SAR),
])
def test_mo_is_decoded_and_reassembled(smsc: FakeSmsc, connect, text: str,  # type: ignore[no-untyped-def]
                                       encoding: Encoding | None, mode: SplitMode) -> None:
    _connector, listener = connect()
    sequences = call(smsc.inject_mo, "48500100200", "4600", text, encoding=encoding,
                     split_mode=mode)
    wait_for(lambda: len(listener.delivers) == len(sequences), what="all parts delivered")
    (message,) = _reassembled(listener)
    assert (message.source, message.destination, message.text) == ("48500100200", "4600", text)
    wait_for(lambda: len(smsc.deliver_responses) == len(sequences), what="acks")
    assert set(smsc.deliver_responses.values()) == {0}


def test_mo_parts_out_of_order_with_duplicate(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    """Checklist 25 over TCP: parts 3,1,2 and a duplicate 2 give one message."""
    _connector, listener = connect()
    text = "part " * 80  # 400 septets: 3 parts
    call(smsc.inject_mo, "48500", "4600", text, order=[3, 1, 2], duplicate=[2])
    wait_for(lambda: len(listener.delivers) == 4, what="4 deliver_sm")
    messages = _reassembled(listener)
    assert [m.text for m in messages] == [text]


def test_mo_that_looks_like_a_receipt_is_an_mo(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    """Checklist 16."""
    _connector, listener = connect()
    call(smsc.inject_mo, "48500", "4600", "id:1 stat:DELIVRD")
    wait_for(lambda: listener.delivers, what="MO")
    assert not receipts.is_receipt(listener.delivers[0])
    assert _reassembled(listener)[0].text == "id:1 stat:DELIVRD"


def test_mo_vendor_tlvs_reach_the_record(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    """Checklist 30 over TCP."""
    _connector, listener = connect()
    call(smsc.inject_mo, "48500", "4600", "hi", unknown_tlvs=[(0x1403, b"\x01"),
                                                             (0x060D, b"op")])
    wait_for(lambda: listener.delivers, what="MO")
    assert _reassembled(listener)[0].unknown_tlvs == [(0x1403, b"\x01"), (0x060D, b"op")]


def test_failed_durable_write_asks_for_redelivery(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    """Checklist 32: a deliver the handler could not keep is answered ESME_RX_T_APPN."""
    from twisted.internet import defer

    _connector, listener = connect()
    listener.deliver_status = lambda event: defer.fail(RuntimeError("database down"))
    (sequence,) = call(smsc.inject_mo, "48500", "4600", "hello")
    wait_for(lambda: sequence in smsc.deliver_responses, what="deliver_sm_resp")
    assert smsc.deliver_responses[sequence] == 0x64


def test_intermediate_then_final_receipt(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    """Checklist 18 over TCP: ENROUTE then DELIVRD."""
    from smppd import status as s
    from smppd.status import Status

    smsc.behaviour.intermediate_receipts = True
    connector, listener = connect()
    call(connector.submit, {"destination_addr": "48500100200", "short_message": b"x",
                            "registered_delivery": 1}, "m1")
    wait_for(lambda: len(listener.delivers) == 2, what="two receipts")
    state = Status.SUBMITTED
    for pdu in listener.delivers:
        state = s.merge(state, receipts.parse(pdu).status)
    assert state == Status.DELIVERED
    assert receipts.parse(listener.delivers[0]).final is False


def test_receipt_status_by_prefix(smsc: FakeSmsc, connect) -> None:  # type: ignore[no-untyped-def]
    smsc.behaviour.receipt_status_by_prefix = {"4860": "UNDELIV", "486": "EXPIRED"}
    connector, listener = connect()
    for number in ("48600000001", "48610000001", "48500000001"):
        call(connector.submit, {"destination_addr": number, "short_message": b"x",
                                "registered_delivery": 1}, number)
    wait_for(lambda: len(listener.delivers) == 3, what="3 receipts")
    by_id = {r.message_id: r.stat for r in map(receipts.parse, listener.delivers)}
    stats = {token: by_id[result.message_id] for token, result in listener.results.items()}
    assert stats == {"48600000001": "UNDELIV", "48610000001": "EXPIRED",
                     "48500000001": "DELIVRD"}


# TLS ------------------------------------------------------------------------------

def _self_signed(tmp_path):  # type: ignore[no-untyped-def]
    cert_pem, key_pem = self_signed("smsc.test")
    (tmp_path / "ca.pem").write_bytes(cert_pem)
    return cert_pem, key_pem, str(tmp_path / "ca.pem")


@pytest.fixture
def tls_smsc(smsc: FakeSmsc, tmp_path):  # type: ignore[no-untyped-def]
    from twisted.internet import ssl

    cert_pem, key_pem, ca_file = _self_signed(tmp_path)
    context = ssl.PrivateCertificate.loadPEM(cert_pem + key_pem).options()
    port = call(smsc.listen, 0, "127.0.0.1", context)
    yield port.getHost().port, ca_file
    call(port.stopListening)


def test_tls_with_the_right_ca_binds(smsc: FakeSmsc, connect, tls_smsc) -> None:  # type: ignore[no-untyped-def]
    port, ca_file = tls_smsc
    connector, listener = connect(port=port, tls=TlsConfig(ca_file, "smsc.test"))
    call(connector.submit, {"destination_addr": "48500", "short_message": b"x"}, "m1")
    wait_for(lambda: "m1" in listener.results, what="submit over TLS")


def test_tls_self_signed_without_ca_is_refused(smsc: FakeSmsc, connect, tls_smsc) -> None:  # type: ignore[no-untyped-def]
    """Checklist 34: the system trust store does not know the SMSC's certificate."""
    port, _ca_file = tls_smsc
    connector, listener = connect(port=port, tls=TlsConfig(None, "smsc.test"), wait_bound=False)
    wait_for(lambda: connector.links[0].connect_attempts >= 2, what="retries")
    assert listener.bound_count == 0 and not smsc.bound_connections


def test_tls_wrong_hostname_is_refused(smsc: FakeSmsc, connect, tls_smsc) -> None:  # type: ignore[no-untyped-def]
    port, ca_file = tls_smsc
    connector, listener = connect(port=port, tls=TlsConfig(ca_file, "other.test"),
                                  wait_bound=False)
    wait_for(lambda: connector.links[0].connect_attempts >= 2, what="retries")
    assert listener.bound_count == 0
    assert connector.links[0].state is not LinkState.BOUND


# 1,000 random texts ------------------------------------------------------------------

_TEXTS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1,
                 max_size=400)


@settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True)
@given(st.lists(_TEXTS, min_size=1000, max_size=1000), st.sampled_from(list(SplitMode)))
def test_thousand_random_texts_reassemble_at_the_smsc(smsc: FakeSmsc, connect,  # type: ignore[no-untyped-def]
                                                      texts: list[str], mode: SplitMode) -> None:
    smsc.behaviour.receipts = False
    smsc.messages.clear()
    connector, listener = connect(window=50)
    refs = ConcatReferences(rng=random.Random(5))
    submits: list[tuple[str, dict]] = []
    for index, text in enumerate(texts):
        destination = f"4850010{index % 50:04d}"
        _info, parts = split(text, policy=SplitPolicy(mode),
                             reference=lambda d=destination: refs.next(d))
        for number, fields in enumerate(parts):
            submits.append((f"{index}/{number}", dict(fields, destination_addr=destination,
                                                      source_addr="Acme")))
    position = 0

    def pump() -> None:
        nonlocal position
        while position < len(submits) and connector.window_available > 0:
            token, fields = submits[position]
            connector.submit(fields, token, flush=False)
            position += 1
        connector.flush()

    while len(listener.results) < len(submits):
        call(pump)
        wait_for(lambda: connector.window_available > 0 or
                 len(listener.results) == len(submits), what="window")
    assert all(r.status == 0 for r in listener.results.values())
    got = sorted((m.destination, m.text) for m in smsc.messages)
    want = sorted((f"4850010{i % 50:04d}", t) for i, t in enumerate(texts))
    assert got == want
