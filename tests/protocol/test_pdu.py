"""PDU codec: interoperability with smpplib, strictness, and malformed input."""

from __future__ import annotations

import contextlib
import struct

import pytest
import smpplib.smpp
from hypothesis import given, settings
from hypothesis import strategies as st

from smppd.protocol import constants as c
from smppd.protocol import pdu as codec
from smppd.protocol.pdu import Pdu, PduDecodeError, PduEncodeError


class _Client:
    sequence = 1

    def next_sequence(self) -> int:
        return 1


def test_decodes_what_smpplib_generates() -> None:
    raw = smpplib.smpp.make_pdu(
        "deliver_sm", client=_Client(), source_addr="48500100200", destination_addr="Acme",
        esm_class=4, short_message=b"id:1 stat:DELIVRD", receipted_message_id="1",
        message_state=2).generate()
    pdu = codec.decode(raw)
    assert pdu.command == "deliver_sm"
    assert pdu.fields["source_addr"] == "48500100200"
    assert pdu.fields["short_message"] == b"id:1 stat:DELIVRD"
    assert pdu.fields["receipted_message_id"] == "1"
    assert pdu.fields["message_state"] == 2
    assert codec.encode(pdu) == raw


def test_smpplib_decodes_what_we_encode() -> None:
    raw = codec.encode(codec.make(
        "submit_sm", 77, source_addr="Acme", source_addr_ton=5, destination_addr="48500100200",
        registered_delivery=1, data_coding=8, short_message="zażółć".encode("utf-16-be"),
        sar_msg_ref_num=300, sar_total_segments=2, sar_segment_seqnum=1))
    parsed = smpplib.smpp.parse_pdu(raw, client=_Client())
    assert parsed.command == "submit_sm"
    assert parsed.source_addr == b"Acme"
    assert parsed.short_message.decode("utf-16-be") == "zażółć"
    assert (parsed.sar_msg_ref_num, parsed.sar_total_segments) == (300, 2)
    assert struct.unpack(">I", raw[12:16])[0] == 77


def test_unknown_vendor_tlvs_are_kept_raw_not_fatal() -> None:
    """Checklist 30: TLVs 0x1403 and 0x060D parse and survive a re-encode."""
    pdu = codec.make("deliver_sm", 5, source_addr="48500100200", destination_addr="1234",
                     short_message=b"hi")
    pdu.unknown_tlvs = [(0x1403, b"\x01\x02"), (0x060D, b"vendor")]
    decoded = codec.decode(codec.encode(pdu))
    assert decoded.unknown_tlvs == [(0x1403, b"\x01\x02"), (0x060D, b"vendor")]
    assert decoded.fields["short_message"] == b"hi"


def test_string_tlv_without_nul_keeps_its_last_character() -> None:
    body = codec.encode(codec.make("deliver_sm", 1, esm_class=4, short_message=b""))
    tlv = struct.pack(">HH", 0x001E, 8) + b"ABCDEF12"  # receipted_message_id, no NUL
    raw = struct.pack(">I", len(body) + len(tlv)) + body[4:] + tlv
    assert codec.decode(raw).fields["receipted_message_id"] == "ABCDEF12"


def test_error_response_without_body_decodes() -> None:
    raw = struct.pack(">IIII", 16, 0x80000004, c.ESME_RTHROTTLED, 9)
    pdu = codec.decode(raw)
    assert (pdu.command, pdu.status, pdu.sequence) == ("submit_sm_resp", c.ESME_RTHROTTLED, 9)
    assert pdu.get("message_id") is None


@pytest.mark.parametrize(("raw", "status", "fragment"), [
    (struct.pack(">IIII", 16, 0x00000077, 0, 3), c.ESME_RINVCMDID, "unknown"),
    (struct.pack(">IIII", 20, 4, 0, 3) + b"abcd", c.ESME_RINVCMDLEN, "NUL"),
    (struct.pack(">IIII", 18, 0x80000004, 0, 3) + b"1\x00", None, None),
    (struct.pack(">IIII", 22, 0x80000004, 0, 3) + b"1\x00" + b"\x00\x1e\x00\x09",
     c.ESME_RINVOPTPARSTREAM, "runs past"),
    (struct.pack(">IIII", 20, 0x80000004, 0, 3) + b"1\x00\x00\x1e", c.ESME_RINVOPTPARSTREAM,
     "stray"),
    (struct.pack(">IIII", 99, 4, 0, 3), c.ESME_RINVCMDLEN, "command_length"),
])
def test_malformed_pdus_name_the_problem(raw: bytes, status: int | None,
                                         fragment: str | None) -> None:
    if status is None:
        assert codec.decode(raw).fields["message_id"] == "1"
        return
    with pytest.raises(PduDecodeError) as info:
        codec.decode(raw)
    assert info.value.status == status
    assert fragment in str(info.value)
    assert info.value.sequence == struct.unpack(">I", raw[12:16])[0]


def test_short_message_length_that_lies_is_rejected() -> None:
    good = codec.encode(codec.make("deliver_sm", 4, short_message=b"hello"))
    index = good.index(b"hello") - 1
    lying = good[:index] + bytes([200]) + good[index + 1:]
    with pytest.raises(PduDecodeError, match="sm_length 200"):
        codec.decode(lying)


@settings(max_examples=400)
@given(st.binary(max_size=300), st.sampled_from(sorted(c.COMMAND_IDS.values())))
def test_any_body_decodes_or_raises_pdu_decode_error(body: bytes, command_id: int) -> None:
    raw = struct.pack(">IIII", 16 + len(body), command_id, 0, 1) + body
    with contextlib.suppress(PduDecodeError):
        codec.decode(raw)


@given(st.binary(min_size=0, max_size=64))
def test_any_bytes_decode_or_raise_pdu_decode_error(raw: bytes) -> None:
    with contextlib.suppress(PduDecodeError):
        codec.decode(raw)


@given(st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=127), max_size=20),
       st.binary(max_size=254), st.integers(0, 255), st.integers(1, c.MAX_SEQUENCE))
def test_submit_sm_round_trip(source: str, message: bytes, dc: int, seq: int) -> None:
    pdu = codec.make("submit_sm", seq, source_addr=source, destination_addr="48500100200",
                     data_coding=dc, short_message=message)
    decoded = codec.decode(codec.encode(pdu))
    assert decoded.fields["source_addr"] == source
    assert decoded.fields["short_message"] == message
    assert decoded.fields["data_coding"] == dc
    assert decoded.sequence == seq


def test_encoder_refuses_instead_of_truncating() -> None:
    with pytest.raises(PduEncodeError, match=r"submit_sm\.source_addr: 21 octets"):
        codec.encode(codec.make("submit_sm", 1, source_addr="1" * 21))
    with pytest.raises(PduEncodeError, match=r"short_message: 255 octets"):
        codec.encode(codec.make("submit_sm", 1, short_message=b"x" * 255))
    with pytest.raises(PduEncodeError, match="NUL"):
        codec.encode(codec.make("submit_sm", 1, source_addr="Shop\x001"))
    with pytest.raises(PduEncodeError, match="not ASCII"):
        codec.encode(codec.make("submit_sm", 1, source_addr="Sklep€"))


def test_sar_together_with_udhi_is_refused() -> None:
    """Checklist 26: never UDHI together with SAR."""
    with pytest.raises(PduEncodeError, match="SAR TLVs together with UDHI"):
        codec.encode(codec.make("submit_sm", 1, esm_class=0x40,
                                short_message=b"\x05\x00\x03\x01\x02\x01x",
                                sar_msg_ref_num=1, sar_total_segments=2, sar_segment_seqnum=1))


def test_pdu_equality_and_repr() -> None:
    a = codec.make("enquire_link", 3)
    assert a == Pdu("enquire_link", 3, 0, {})
    assert "enquire_link" in repr(a)
    assert a.is_response is False
    assert codec.response_to(a).command == "enquire_link_resp"
