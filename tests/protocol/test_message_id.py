"""Receipt id readings and the learner behind id_format: auto."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from smppd.protocol.message_id import (
    AutoIds,
    IdLearner,
    Reading,
    Source,
    canonical,
    pair_reading,
    read,
    readings,
)


def test_canonical_ignores_padding_case_and_blanks() -> None:
    assert canonical(" 00b8be19\x00") == canonical("B8BE19") == "B8BE19"
    assert canonical("0000") == "0" and canonical("  ") == ""


def test_each_reading_and_what_cannot_be_read() -> None:
    assert read("12107289", Reading.DEC_TO_HEX) == "B8BE19"
    assert read("b8be19", Reading.HEX_TO_DEC) == "12107289"
    assert read("B8BE19", Reading.DEC_TO_HEX) is None  # letters are not decimal
    assert read("6f1c-uuid", Reading.HEX_TO_DEC) is None
    assert readings("12345") == {Reading.SAME: "12345", Reading.DEC_TO_HEX: "3039",
                                 Reading.HEX_TO_DEC: "74565"}
    assert pair_reading("12107289", "B8BE19") is Reading.DEC_TO_HEX
    assert pair_reading("7", "7") is None  # a single digit reads the same every way


@given(st.integers(min_value=0, max_value=10**30))
def test_readings_invert_the_formats_carriers_use(number: int) -> None:
    hex_id, dec_id = f"{number:X}", str(number)
    assert read(dec_id, Reading.DEC_TO_HEX) == canonical(hex_id)
    assert read(f"{number:x}", Reading.HEX_TO_DEC) == canonical(dec_id)
    assert read(f"{number:012X}", Reading.SAME) == canonical(hex_id)


def test_the_learner_needs_agreement_and_refuses_contradiction() -> None:
    learner = IdLearner(needed=3)
    assert not learner.observe(Reading.DEC_TO_HEX)
    assert not learner.observe(Reading.DEC_TO_HEX)
    assert learner.observe(Reading.DEC_TO_HEX) and learner.mode is Reading.DEC_TO_HEX
    mixed = IdLearner(needed=3)
    for reading in (Reading.SAME, Reading.DEC_TO_HEX, Reading.SAME, Reading.SAME):
        mixed.observe(reading)
    assert mixed.mode is None and mixed.contradicted


def test_auto_ids_give_candidates_until_learnt_then_keys() -> None:
    ids = AutoIds(needed=2)
    assert ids.from_response("00B8BE19") == "B8BE19"
    text_reads: list[int] = []

    def text() -> str:
        text_reads.append(1)
        return "12107289"

    first = ids.receipt(None, text)
    assert first is not None and first.key is None and first.source is Source.TEXT
    assert dict(first.candidates)[Reading.DEC_TO_HEX] == "B8BE19"
    ids.observe(Source.TEXT, Reading.DEC_TO_HEX)
    ids.observe(Source.TEXT, Reading.DEC_TO_HEX)
    assert ids.take_learnt() == [(Source.TEXT, Reading.DEC_TO_HEX)]
    learnt = ids.receipt(None, text)
    assert learnt is not None and learnt.key == "B8BE19"
    assert ids.receipt(None, lambda: "") is None


def test_a_learnt_tlv_teaches_the_text_and_the_text_is_then_not_read() -> None:
    ids = AutoIds(needed=2)
    ids.set_mode(Source.TLV, Reading.SAME)
    for _ in range(2):
        found = ids.receipt("B8BE19", lambda: "12107289")
        assert found is not None and found.key == "B8BE19" and found.source is Source.TLV
    assert ids.mode(Source.TEXT) is Reading.DEC_TO_HEX
    assert ids.take_learnt() == [(Source.TEXT, Reading.DEC_TO_HEX)]

    def never() -> str:
        raise AssertionError("the text was parsed although nothing needs it")

    assert ids.receipt("B8BE19", never) is not None
    # Without the TLV, the learnt text reading matches on its own.
    found = ids.receipt(None, lambda: "12107289")
    assert found is not None and found.key == "B8BE19" and found.source is Source.TEXT
