"""Receipt recognition and parsing, id matching, status precedence."""

from __future__ import annotations

import contextlib
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppd import status as s
from smppd.protocol import receipts
from smppd.protocol.message_id import IdFormat, IdPolicy, match_key
from smppd.protocol.pdu import Pdu
from smppd.protocol.receipts import ReceiptError
from smppd.status import Status


def _deliver(text: str, esm_class: int = 0x04, **tlvs: object) -> Pdu:
    return Pdu("deliver_sm", 1, 0, {"esm_class": esm_class, "short_message": text.encode(),
                                    **tlvs})


# (text, id, stat, err, submit date, done date) from vendor documentation and traffic.
CORPUS = [
    ("id:0123456789 sub:001 dlvrd:001 submit date:2611221200 done date:2611221201 "
     "stat:DELIVRD err:000 text:Hello", "0123456789", "DELIVRD", "000",
     datetime(2026, 11, 22, 12, 0), datetime(2026, 11, 22, 12, 1)),
    ("id:c449ab9744f47b6af1879e49e75e4f40 sub:001 dlvrd:0 submit date:2611221200 "
     "done date:2611221200 stat:UNDELIV err:001 Text:none", "c449ab9744f47b6af1879e49e75e4f40",
     "UNDELIV", "001", datetime(2026, 11, 22, 12, 0), datetime(2026, 11, 22, 12, 0)),
    ("ID:7 SUB:001 DLVRD:001 SUBMIT DATE:261122120059 DONE DATE:261122120102 STAT:DELIVRD "
     "ERR:0", "7", "DELIVRD", "0", datetime(2026, 11, 22, 12, 0, 59),
     datetime(2026, 11, 22, 12, 1, 2)),
    ("stat:EXPIRED err:EXP id:99 submit date:2611221200 done date:2611231200", "99",
     "EXPIRED", "EXP", datetime(2026, 11, 22, 12, 0), datetime(2026, 11, 23, 12, 0)),
    ("id:5 stat:REJECTD", "5", "REJECTD", None, None, None),
    ("id:1a2b sub:1 dlvrd:1 submit_date:2611221200 done_date:2611221200 stat:DELETED "
     "err:0 text:", "1a2b", "DELETED", "0", datetime(2026, 11, 22, 12, 0),
     datetime(2026, 11, 22, 12, 0)),
    ("id:42 sub:001 dlvrd:000 submit date:2611221200 done date:2611221200 stat:ACCEPTD "
     "err:000 text:stat:DELIVRD fake", "42", "ACCEPTD", "000", datetime(2026, 11, 22, 12, 0),
     datetime(2026, 11, 22, 12, 0)),
    ("id:42,sub:001,dlvrd:001,stat:ENROUTE,err:000", "42", "ENROUTE", "000", None, None),
    ("id:ABC-123 submit date:20261122120000 done date:bad stat:UNKNOWN err:Network timeout",
     "ABC-123", "UNKNOWN", "Network timeout", datetime(2026, 11, 22, 12, 0), None),
    ("id:77 sub:001 dlvrd:001 submit date:2613221200 done date:2611221200 stat:UNDELIVERABLE "
     "err:34", "77", "UNDELIVERABLE", "34", None, datetime(2026, 11, 22, 12, 0)),
    ("id:8 stat:FAILED err:ffff", "8", "FAILED", "ffff", None, None),
]


@pytest.mark.parametrize(("text", "message_id", "stat", "err", "submit", "done"), CORPUS)
def test_vendor_receipt_corpus(text: str, message_id: str, stat: str, err: str | None,
                               submit: datetime | None, done: datetime | None) -> None:
    """Checklist 19."""
    receipt = receipts.parse(_deliver(text))
    assert (receipt.message_id, receipt.stat, receipt.error) == (message_id, stat, err)
    assert (receipt.submit_date, receipt.done_date) == (submit, done)


def test_text_field_may_contain_keys() -> None:
    receipt = receipts.parse(_deliver(CORPUS[6][0]))
    assert receipt.text_fields["text"] == "stat:DELIVRD fake"
    assert receipt.status == Status.SUBMITTED and receipt.final is False


def test_classified_by_esm_class_not_by_text() -> None:
    """Checklist 16: an MO that looks like a receipt is still an MO."""
    assert not receipts.is_receipt(_deliver("id:1 stat:DELIVRD", esm_class=0))
    assert receipts.is_receipt(_deliver("whatever", esm_class=0x04))
    assert receipts.is_receipt(_deliver("", esm_class=0x20))
    assert not receipts.is_receipt(_deliver("", esm_class=0x40))


def test_tlv_wins_over_text() -> None:
    """Checklist 17."""
    pdu = _deliver("id:111 stat:UNDELIV err:5", receipted_message_id="222", message_state=2,
                   network_error_code=b"\x01\x00\x22")
    receipt = receipts.parse(pdu)
    assert (receipt.message_id, receipt.status, receipt.final) == ("222", Status.DELIVERED, True)
    assert receipt.error == "1:34"


def test_tlv_only_receipt() -> None:
    receipt = receipts.parse(_deliver("", receipted_message_id="9", message_state=3))
    assert (receipt.message_id, receipt.stat, receipt.status) == ("9", "EXPIRED", Status.EXPIRED)


@pytest.mark.parametrize("text", ["", "hello", "id: stat:DELIVRD", "id:5 stat:WHATEVER",
                                  "id:5", "\x00\x01\x02"])
def test_garbage_receipts_raise_receipt_error(text: str) -> None:
    with pytest.raises(ReceiptError):
        receipts.parse(_deliver(text))


@given(st.binary(max_size=200))
def test_any_receipt_bytes_parse_or_raise_receipt_error(data: bytes) -> None:
    with contextlib.suppress(ReceiptError):
        receipts.parse(Pdu("deliver_sm", 1, 0, {"esm_class": 4, "short_message": data}))


def test_states_never_regress() -> None:
    """Checklist 18."""
    state = Status.SUBMITTED
    # ACCEPTD, DELIVRD, a late ENROUTE, a duplicate DELIVRD
    for incoming in (Status.SUBMITTED, Status.DELIVERED, Status.SUBMITTED, Status.DELIVERED):
        state = s.merge(state, incoming)
    assert state == Status.DELIVERED
    assert s.merge(Status.DELIVERED, Status.UNDELIVERED) == Status.DELIVERED
    assert s.merge(Status.UNKNOWN, Status.DELIVERED) == Status.DELIVERED
    assert s.merge(Status.UNKNOWN, Status.SUBMITTED) == Status.UNKNOWN
    assert s.merge(Status.QUEUED, Status.SUBMITTED) == Status.SUBMITTED


def test_multipart_policies() -> None:
    """Checklist 20: a 3-part message with a receipt for part 1 only."""
    parts = [Status.DELIVERED, Status.SUBMITTED, Status.SUBMITTED]
    assert s.combine_parts(parts, "all") == Status.SUBMITTED
    assert s.combine_parts(parts, "first") == Status.DELIVERED
    assert s.combine_parts(parts, "any") == Status.DELIVERED
    last_only = [Status.SUBMITTED, Status.SUBMITTED, Status.DELIVERED]
    assert s.combine_parts(last_only, "last") == Status.DELIVERED
    one_failed = [Status.DELIVERED, Status.UNDELIVERED, Status.DELIVERED]
    assert s.combine_parts(one_failed) == Status.UNDELIVERED
    assert s.combine_parts([Status.DELIVERED] * 3) == Status.DELIVERED


@pytest.mark.parametrize(("policy", "resp", "dlr", "matched"), [
    (IdPolicy(IdFormat.HEX, IdFormat.DEC), "00B8BE19", "12107289", True),
    (IdPolicy(IdFormat.DEC, IdFormat.DEC), "00B8BE19", "12107289", False),
    (IdPolicy(IdFormat.HEX, IdFormat.HEX), "00b8be19", "B8BE19", True),
    (IdPolicy(IdFormat.DEC, IdFormat.HEX), "12107289", "b8be19", True),
    (IdPolicy(IdFormat.DEC, IdFormat.DEC), "00012345", "12345", True),
    (IdPolicy(), "abc", "abc", True),
    (IdPolicy(), "abc\x00 ", " abc", True),
    (IdPolicy(), "ABC", "abc", False),
])
def test_message_id_policies(policy: IdPolicy, resp: str, dlr: str, matched: bool) -> None:
    """Checklist 2."""
    assert (policy.from_response(resp) == policy.from_receipt(dlr)) is matched


def test_ids_stay_exact_beyond_64_bits() -> None:
    """Checklist 3."""
    big = "98765432109876543210"
    assert match_key(big, IdFormat.DEC) == big
    assert match_key("FFFFFFFFFFFFFFFFFF", IdFormat.HEX) == str(0xFFFFFFFFFFFFFFFFFF)
    uuid = "6f1c0e8e-3c1b-4c5e-9d7f-2a1b3c4d5e6f"
    assert match_key(uuid, IdFormat.STRING) == uuid
    assert match_key(uuid, IdFormat.DEC) == uuid  # not numeric: kept, never mangled
