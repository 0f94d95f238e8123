"""Receipt ids matched with no setting (id_format: auto): 1,000 of 1,000 for each
style of SMSC, never the wrong message while the reading is ambiguous, and the
learnt reading shown in /metrics and kept across a restart."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import call, wait_for

STYLES = {
    # name: (response ids, receipt ids, receipted_message_id TLV)
    "same": ("dec", "dec", True),
    "hex-resp/dec-text with TLV": ("hex", "dec", True),
    "hex-resp/dec-text without TLV": ("hex", "dec", False),
    "zero-padded": ("hexpad", "hex", False),
    "upper-case": ("hexlower", "hex", True),
}


def _count(running: Any, status: str) -> int:
    engine = create_engine(running.daemon.settings.database)
    with engine.connect() as conn:
        found = conn.execute(text("SELECT count(*) FROM messages WHERE status = :s"),
                             {"s": status}).scalar()
    engine.dispose()
    return int(found or 0)


@pytest.mark.parametrize("style", list(STYLES))
def test_a_thousand_receipts_match_for_each_style_with_no_setting(start_daemon: Any,
                                                                  style: str) -> None:
    response, receipt, tlvs = STYLES[style]
    running = start_daemon(smsc={"window": 50})
    behaviour = running.smsc.behaviour
    behaviour.id_format, behaviour.receipt_id_format = response, receipt
    behaviour.receipt_tlvs = tlvs
    ids = [running.client.send(to=f"+4850{n:07d}")[1]["id"] for n in range(1000)]
    wait_for(lambda: _count(running, "delivered") == 1000, timeout=60,
             what=f"1,000 delivered ({style})")
    assert len(ids) == 1000 and _count(running, "submitted") == 0
    _, metrics = running.client.request("GET", "/metrics")
    source = "tlv" if tlvs else "text"
    mode = {"dec": "same", "hexpad": "same"}.get(response,
                                                  "dec-to-hex" if receipt == "dec" else "same")
    sample = f'smppd_receipt_id_mode{{mode="{mode}",smsc="carrier-a",source="{source}"}} 1.0'
    assert sample in metrics


def test_colliding_ids_wait_until_the_reading_is_learnt_then_settle_the_right_one(
        start_daemon: Any) -> None:
    """Hex ids 3039 and 12345 are both pending; a text-only receipt `12345` is the
    decimal of the first and the string of the second: it settles neither while the
    reading is unknown, then the right one once receipts have taught dec-to-hex."""
    running = start_daemon()
    smsc = running.smsc
    smsc.behaviour.id_format, smsc.behaviour.receipt_id_format = "hex", "dec"
    smsc.behaviour.receipt_tlvs = False
    smsc.behaviour.receipts = False
    smsc.use_ids([0x3039, 0x12345])
    _, first = running.client.send(to="+48500000001")
    _, second = running.client.send(to="+48500000002")
    for message in (first, second):
        running.client.wait_status(message["id"], "submitted")
    from smppd.protocol import receipts

    def receipt_for(decimal_id: str) -> None:
        smsc.deliver({"esm_class": 4, "source_addr": "48500000001", "destination_addr": "Acme",
                      "short_message": receipts.format_text(decimal_id, "DELIVRD").encode()})

    call(receipt_for, "12345")  # ambiguous: 12345 (same) and 3039 (dec-to-hex) are both
    wait_for(lambda: len(smsc.deliver_responses) == 1, what="the receipt acked")
    assert running.client.message(first["id"])["status"] == "submitted"
    assert running.client.message(second["id"])["status"] == "submitted"
    smsc.behaviour.receipts = True  # unambiguous receipts teach the reading
    for n in range(3):
        _, body = running.client.send(to=f"+4860000000{n}")
        running.client.wait_status(body["id"], "delivered")
    running.client.wait_status(first["id"], "delivered")  # the waiting receipt, read
    assert running.client.message(second["id"])["status"] == "submitted"


def test_the_learnt_reading_survives_a_restart(start_daemon: Any) -> None:
    running = start_daemon()
    smsc = running.smsc
    smsc.behaviour.id_format, smsc.behaviour.receipt_id_format = "hex", "dec"
    smsc.behaviour.receipt_tlvs = False
    for n in range(4):
        _, body = running.client.send(to=f"+4850000000{n}")
        running.client.wait_status(body["id"], "delivered")
    engine = create_engine(running.daemon.settings.database)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT smsc, source, reading FROM smsc_id_modes")).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [("carrier-a", "text", "dec-to-hex")]
    call(running.daemon.stop, drain_timeout=2.0)
    again = start_daemon()
    _, metrics = again.client.request("GET", "/metrics")
    assert ('smppd_receipt_id_mode{mode="dec-to-hex",smsc="carrier-a",source="text"} 1.0'
            in metrics)
