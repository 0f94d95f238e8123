"""Text encodings and splitting (checklist 21, 22, 23, 26, 27, 28)."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smppd.protocol import gsm
from smppd.protocol.constants import ESM_UDHI
from smppd.protocol.inbound import Concat, MoFragment, Reassembler, parse_udh
from smppd.protocol.segmentation import (
    ConcatReferences,
    SplitMode,
    SplitPolicy,
    TooManyParts,
    describe,
    split,
)
from smppd.protocol.text import CharsetProfile, Encoding, choose_encoding, decode_payload

GSM_PACKED = CharsetProfile(gsm_packed=True)
LATIN1_DCS0 = CharsetProfile(dcs0_charset="latin1")
LATIN1_DC3 = CharsetProfile(latin1=True)
PROFILES = [CharsetProfile(), GSM_PACKED, LATIN1_DCS0, LATIN1_DC3]
MODES = list(SplitMode)


def test_gsm_table_corrections_over_smpplib() -> None:
    assert gsm.encode("§") == b"\x5f"
    assert not gsm.is_gsm("`")
    assert gsm.encode("\f") == b"\x1b\x0a"
    assert gsm.decode(b"\x5f\x1b\x65") == "§€"


def test_extension_characters_cost_two_septets() -> None:
    for ch in "€[]{}\\^~|\f":
        assert gsm.septet_count(ch) == 2
    assert describe("€" * 80).parts == 1
    assert describe("€" * 81).parts == 2


def test_unknown_extension_and_trailing_escape() -> None:
    assert gsm.decode(b"\x1b\x41") == "A"  # unknown extension reads as its basic char
    assert gsm.decode(b"ab\x1b") == "ab"


def test_septets_with_the_high_bit_set_read_as_their_basic_character() -> None:
    """A text without escapes is decoded in one step; it must read octets exactly
    as the escape-aware loop does (the high bit ignored, ESC with it set included)."""
    assert gsm.decode(bytes([0x80 | 0x41, 0x61])) == "Aa"
    assert gsm.decode(b"\x9b\x65x") == "€x"  # 0x9B is ESC with the high bit set
    assert gsm.decode(bytes(range(0x20, 0x7F)).replace(b"\x1b", b"")) == "".join(
        gsm.BASIC[code] for code in range(0x20, 0x7F) if code != 0x1B)


def test_no_part_ends_on_escape() -> None:
    """Checklist 22: 152 'a' then '€' must not leave ESC at the end of part 1."""
    _info, parts = split("a" * 152 + "€" + "b" * 10, reference=1)
    first = parts[0]["short_message"][6:]
    assert first[-1] != 0x1B
    assert parts[1]["short_message"][6:8] == b"\x1b\x65"


def test_emoji_is_never_split() -> None:
    """Checklist 23: 66 'a' + emoji + 'b'... in a long text: the emoji (two code units)
    does not fit the 67th unit of part 1, so it starts part 2 intact; no BOM."""
    info, parts = split("a" * 66 + "😀" + "b" * 10, reference=3)
    assert (info.encoding, info.parts) == (Encoding.UCS2, 2)
    body1, body2 = (p["short_message"][6:] for p in parts)
    assert len(body1) == 132
    assert body2.startswith("😀".encode("utf-16-be"))
    assert not body1.startswith(b"\xff\xfe") and not body1.startswith(b"\xfe\xff")


@pytest.mark.parametrize(("text", "encoding", "parts"), [
    ("a" * 160, Encoding.GSM, 1), ("a" * 161, Encoding.GSM, 2), ("a" * 306, Encoding.GSM, 2),
    ("a" * 307, Encoding.GSM, 3), ("ą" * 70, Encoding.UCS2, 1), ("ą" * 71, Encoding.UCS2, 2),
    ("ą" * 134, Encoding.UCS2, 2), ("ą" * 135, Encoding.UCS2, 3), ("", Encoding.GSM, 1),
])
def test_charged_part_counts(text: str, encoding: Encoding, parts: int) -> None:
    info = describe(text)
    assert (info.encoding, info.parts) == (encoding, parts)


def test_latin1_data_coding_3_counts_octets() -> None:
    text = "âêî" * 50  # not GSM, Latin-1 yes
    assert describe(text).encoding is Encoding.UCS2
    info = describe(text, LATIN1_DC3)
    assert (info.encoding, info.data_coding, info.parts) == (Encoding.LATIN1, 3, 2)
    assert describe("â" * 140, LATIN1_DC3).parts == 1


def test_dcs0_charset() -> None:
    """Checklist 21: 'Ünïcödé €' round-trips or falls back to UCS-2 per dcs0_charset."""
    text = "Ünïcödé €"
    assert choose_encoding(text) is Encoding.UCS2  # 'ï' is not GSM
    assert choose_encoding("Ünöd €") is Encoding.GSM
    assert choose_encoding("Ünöd €", LATIN1_DCS0) is Encoding.UCS2  # € is not Latin-1
    _info, parts = split("Ünöd", LATIN1_DCS0)
    assert parts[0]["short_message"] == "Ünöd".encode("latin-1")
    assert decode_payload(parts[0]["short_message"], 0, LATIN1_DCS0) == "Ünöd"


def test_too_many_parts_is_rejected_not_truncated() -> None:
    """Checklist 28."""
    text = "a" * (153 * 5 + 1)
    with pytest.raises(TooManyParts, match="needs 6 parts, at most 5"):
        split(text, policy=SplitPolicy(max_parts=5))
    with pytest.raises(TooManyParts):
        describe(text, policy=SplitPolicy(max_parts=5))


def test_unpaired_surrogate_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unpaired surrogate at position 2"):
        describe("ab\ud83d")


def test_golden_udh8_udh16_sar_payload() -> None:
    """Checklist 26: encoder golden tests for each split mode."""
    text = "x" * 200
    _i, udh = split(text, reference=0x1A2)
    assert udh[0]["short_message"][:6] == bytes([5, 0, 3, 0xA2, 2, 1])
    assert udh[1]["short_message"][:6] == bytes([5, 0, 3, 0xA2, 2, 2])
    assert all(p["esm_class"] == ESM_UDHI for p in udh)
    _i, udh16 = split(text, policy=SplitPolicy(SplitMode.UDH16), reference=0x1A2)
    assert udh16[0]["short_message"][:7] == bytes([6, 8, 4, 0x01, 0xA2, 2, 1])
    assert len(udh16[0]["short_message"]) == 7 + 152
    _i, sar = split(text, policy=SplitPolicy(SplitMode.SAR), reference=0x1A2)
    assert [(p["sar_msg_ref_num"], p["sar_total_segments"], p["sar_segment_seqnum"])
            for p in sar] == [(0x1A2, 2, 1), (0x1A2, 2, 2)]
    assert all(p["esm_class"] == 0 for p in sar)
    assert sar[0]["short_message"] == b"x" * 153
    info, payload = split(text, policy=SplitPolicy(SplitMode.PAYLOAD), reference=0x1A2)
    assert info.parts == 2 and len(payload) == 1
    assert payload[0]["message_payload"] == b"x" * 200 and "short_message" not in payload[0]


def test_reference_is_only_taken_for_long_texts() -> None:
    calls = []
    split("short", reference=lambda: calls.append(1) or 5)
    assert calls == []
    split("a" * 200, reference=lambda: calls.append(1) or 5)
    assert calls == [1]


def test_per_destination_references_do_not_collide() -> None:
    """Checklist 27: 300 long messages to one MSISDN, unique refs within a window of 256."""
    refs = ConcatReferences(bits=8, rng=random.Random(1))
    taken = [refs.next("+48500100200") for _ in range(300)]
    for start in range(0, 300 - 256):
        assert len(set(taken[start:start + 256])) == 256
    other = ConcatReferences(bits=16, max_destinations=2, rng=random.Random(2))
    other.next("a"), other.next("b"), other.next("c")
    assert len(other._next) == 2


def test_packed_gsm_round_trip_with_fill_bits() -> None:
    septets = gsm.encode("hello world")
    for fill in range(7):
        packed = gsm.pack(septets, fill)
        assert gsm.unpack(packed, len(septets), fill) == septets
    assert gsm.unpack(gsm.pack(gsm.encode("1234567"))) == gsm.encode("1234567")


def _reassemble(parts: list[dict], profile: CharsetProfile) -> str | None:
    """Reassemble parts the way an SMSC receiving them would."""
    from smppd.protocol.inbound import fragment_from_pdu
    from smppd.protocol.pdu import Pdu

    reassembler = Reassembler(profile=profile)
    result = None
    for number, fields in enumerate(parts, start=1):
        pdu = Pdu("submit_sm", number, 0, dict(fields, source_addr="A", destination_addr="B"))
        fragment = fragment_from_pdu(pdu, profile)
        if fragment.concat is None and "message_payload" not in fields and len(parts) > 1:
            fragment.concat = Concat(0, len(parts), number)
        result = reassembler.add(fragment, 0.0) or result
    return result.text if result else None


def _octets_on_air(fields: dict, encoding: Encoding, profile: CharsetProfile) -> int:
    """Size of a part's user data as the SMSC sends it to the handset (GSM packed)."""
    message = fields["short_message"]
    udh_length = message[0] + 1 if fields["esm_class"] & ESM_UDHI else 0
    body = message[udh_length:]
    if encoding is not Encoding.GSM:
        return udh_length + len(body)
    septets = len(body) if not profile.gsm_packed else None
    if septets is None:  # packed already: count octets as they are
        return udh_length + len(body)
    if profile.dcs0_charset == "latin1":  # the SMSC converts Latin-1 to GSM septets
        septets = gsm.septet_count(body.decode("latin-1"))
    fill = (7 - (udh_length * 8) % 7) % 7
    return udh_length + (fill + septets * 7 + 7) // 8


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=700), st.sampled_from(PROFILES), st.sampled_from(MODES))
def test_split_reassembles_fits_and_matches_prediction(text: str, profile: CharsetProfile,
                                                       mode: SplitMode) -> None:
    policy = SplitPolicy(mode)
    info, parts = split(text, profile, policy, reference=9)
    assert describe(text, profile, policy) == info
    if mode is SplitMode.PAYLOAD and info.parts > 1:
        assert len(parts) == 1
        return
    assert len(parts) == info.parts
    for fields in parts:
        assert _octets_on_air(fields, info.encoding, profile) <= 140
        if mode is SplitMode.SAR and info.parts > 1:
            # the SMSC adds a 6-octet UDH on the air
            assert len(fields["short_message"]) + 6 <= (160 if info.encoding is Encoding.GSM
                                                         and not profile.gsm_packed else 140)
    assert _reassemble(parts, profile) == text


@given(st.text(max_size=300))
def test_parse_udh_never_raises_anything_else(text: str) -> None:
    data = text.encode("utf-8")[:140]
    with contextlib.suppress(ValueError):
        parse_udh(data)


def test_udh_with_port_ie_before_concat_and_16_bit_refs() -> None:
    """Checklist 24."""
    udh = bytes([12, 0x05, 4, 0x0B, 0x84, 0x23, 0xF0, 0x08, 4, 0x12, 0x34, 3, 2])
    parsed = parse_udh(udh + b"body")
    assert parsed.concat == Concat(0x1234, 3, 2)
    assert parsed.elements[0] == (0x05, b"\x0b\x84\x23\xf0")
    assert parsed.length == 13


def test_reassembly_out_of_order_duplicates_and_timeout() -> None:
    """Checklist 25: parts 3,1,2 plus a duplicate 2 give one MO; a missing part expires."""
    reassembler = Reassembler(timeout=60)

    def part(number: int, body: bytes, ref: int = 1) -> MoFragment:
        return MoFragment("48500", "1234", 0, body, Concat(ref, 3, number))

    assert reassembler.add(part(3, b"c"), 0) is None
    assert reassembler.add(part(1, b"a"), 1) is None
    message = reassembler.add(part(2, b"b"), 2)
    assert message is not None and message.text == "abc" and message.parts == 3
    assert reassembler.add(part(2, b"b"), 3) is None  # late duplicate of a finished message
    assert reassembler.duplicates == 1
    assert len(reassembler) == 0
    assert reassembler.add(part(1, b"x", ref=2), 3) is None
    assert reassembler.expire(62) == []
    assert reassembler.expire(64) == [(("48500", "1234", 2, 3), [1])]
    assert len(reassembler) == 0


def test_data_coding_groups() -> None:
    assert decode_payload("ż".encode("utf-16-be"), 0x18) == "ż"  # UCS-2, class 0
    assert decode_payload(gsm.encode("hi"), 0xF0) == "hi"
    assert decode_payload(b"\x01\x02", 0xF4) is None
    assert decode_payload(b"\x01\x02", 4) is None
    assert decode_payload("é".encode("latin-1"), 3) == "é"
    with pytest.raises(ValueError, match="odd length"):
        decode_payload(b"\x00a\x00", 8)
