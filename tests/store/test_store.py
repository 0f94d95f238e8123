"""The store's batch semantics, on SQLite and PostgreSQL: charging, status moves,
receipts before responses, multipart policies, refunds, MO dedupe, reads."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from sqlalchemy import inspect

from smppd.ids import new_id
from smppd.store import database, queries
from smppd.store import operations as ops
from smppd.store.queries import MessageFilter
from tests.conftest import call, wait_for
from tests.store.conftest import Store


def accept(store: Store, parts: int = 1, points: int | None = None, account: str = "acme",
           recipient: str = "48500100200", smsc: str | None = None, **kw: Any) -> ops.Accept:
    return ops.Accept(store.accounts[account], kw.pop("message_id", None) or new_id(), "Acme",
                      recipient, "PL", "text", "gsm", parts,
                      parts if points is None else points, 7, smsc, None, None, time.time(),
                      **kw)


def statuses(message: dict[str, Any]) -> list[str]:
    return [h["status"] for h in message["history"] if h["part"] is None]


def test_the_written_down_head_is_alembics_head() -> None:
    """A daemon on a current schema skips Alembic by comparing with SCHEMA_HEAD: a new
    migration that forgot to move it would never be applied."""
    assert database.head_revision() == database.SCHEMA_HEAD


def test_a_start_on_a_current_schema_does_not_run_alembic(tmp_path: Any, monkeypatch: Any) -> None:
    url = f"sqlite:///{tmp_path / 'head.db'}"
    database.upgrade_url(url)
    ran: list[str] = []
    monkeypatch.setattr(database, "upgrade", lambda engine, revision="head": ran.append(revision))
    database.upgrade_url(url)
    assert ran == []
    engine = database.make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0009'")
    engine.dispose()
    database.upgrade_url(url)
    assert ran == ["head"]


def test_schema_is_at_head_and_upgrade_is_idempotent(engine: Any) -> None:
    assert database.current_revision(engine) == database.head_revision()
    database.upgrade(engine)
    names = set(inspect(engine).get_table_names())
    assert {"accounts", "messages", "parts", "message_events", "pending_receipts",
            "inbound_fragments", "inbound_messages", "jobs", "ledger_entries"} <= names


def test_accept_charges_and_refuses_beyond_balance(store: Store) -> None:
    first, second = accept(store, 3, account="other"), accept(store, 3, account="other")
    too_much = accept(store, 5, account="other")
    results = store.apply(first, second, too_much)
    assert results[:2] == [first.message_id, second.message_id]
    assert isinstance(results[2], ops.InsufficientBalance)
    assert store.balance("other") == 4
    assert store.message(too_much.message_id, "other") is None
    assert store.message(first.message_id, "other")["status"] == "queued"


def test_response_then_receipt_gives_delivered_with_history(store: Store) -> None:
    message = accept(store)
    store.apply(message)
    store.apply(ops.PartSubmitted(message.message_id, 1, "smsc", "0A1B", "a1b"))
    assert store.message(message.message_id)["status"] == "submitted"
    store.apply(ops.ReceiptSeen("smsc", "a1b", "delivered", None))
    found = store.message(message.message_id)
    assert found["status"] == "delivered" and found["final_at"]
    assert statuses(found) == ["queued", "submitted", "delivered"]
    assert found["part_list"][0]["smsc_id"] == "0A1B"  # exactly as the SMSC wrote it


@pytest.mark.parametrize("same_batch", [True, False])
def test_receipt_before_response_is_matched_once(store: Store, same_batch: bool) -> None:
    message = accept(store)
    store.apply(message)
    receipt = ops.ReceiptSeen("smsc", "77", "delivered", None)
    response = ops.PartSubmitted(message.message_id, 1, "smsc", "77", "77")
    if same_batch:
        store.apply(receipt, response)
    else:
        store.apply(receipt)
        assert store.scalar("SELECT count(*) FROM pending_receipts") == 1
        store.apply(response)
    found = store.message(message.message_id)
    assert found["status"] == "delivered"
    assert statuses(found).count("delivered") == 1
    assert store.scalar("SELECT count(*) FROM pending_receipts") == 0


def test_big_and_uuid_ids_round_trip_as_strings(store: Store) -> None:
    """Checklist 3: never a lossy int cast."""
    big, guid = "98765432109876543210", str(uuid.uuid4())
    first, second = accept(store), accept(store)
    store.apply(first, second)
    store.apply(ops.PartSubmitted(first.message_id, 1, "smsc", big, big),
                ops.PartSubmitted(second.message_id, 1, "smsc", guid, guid))
    store.apply(ops.ReceiptSeen("smsc", big, "delivered", None),
                ops.ReceiptSeen("smsc", guid, "undelivered", "034"))
    assert store.message(first.message_id)["part_list"][0]["smsc_id"] == big
    assert store.message(first.message_id)["status"] == "delivered"
    assert store.message(second.message_id)["status"] == "undelivered"
    assert store.message(second.message_id)["error_code"] == "034"


def test_multipart_waits_for_every_part_under_policy_all(store: Store) -> None:
    message = accept(store, 3, smsc="smsc")
    store.apply(message)
    store.apply(*[ops.PartSubmitted(message.message_id, n, "smsc", f"p{n}", f"p{n}")
                  for n in (1, 2, 3)])
    store.apply(ops.ReceiptSeen("smsc", "p1", "delivered", None))
    assert store.message(message.message_id)["status"] == "submitted"
    store.apply(ops.ReceiptSeen("smsc", "p2", "delivered", None),
                ops.ReceiptSeen("smsc", "p3", "delivered", None))
    found = store.message(message.message_id)
    assert found["status"] == "delivered"
    assert [p["status"] for p in found["part_list"]] == ["delivered"] * 3


def test_multipart_first_policy_trusts_part_one(store: Store) -> None:
    """Checklist 20: a carrier that reports only part 1; partial state stays visible."""
    message = accept(store, 3, smsc="first-only")
    store.apply(message)
    store.apply(*[ops.PartSubmitted(message.message_id, n, "first-only", f"f{n}", f"f{n}")
                  for n in (1, 2, 3)])
    store.apply(ops.ReceiptSeen("first-only", "f1", "delivered", None))
    found = store.message(message.message_id)
    assert found["status"] == "delivered"
    assert [p["status"] for p in found["part_list"]] == ["delivered", "submitted", "submitted"]


def test_a_multipart_message_is_queued_until_every_part_is_out(store: Store) -> None:
    message = accept(store, 2)
    store.apply(message)
    store.apply(ops.PartSubmitted(message.message_id, 1, "smsc", "q1", "q1"))
    assert store.message(message.message_id)["status"] == "queued"
    with store.engine.connect() as conn:
        queued, _ = queries.load_queued(conn, "", 10)
    assert [(m.id, m.unsent) for m in queued] == [(message.message_id, (2,))]


def test_rejected_part_rejects_message_and_refunds_unaccepted_parts(store: Store) -> None:
    message = accept(store, 4)
    store.apply(message)
    assert store.balance() == 996
    store.apply(ops.PartSubmitted(message.message_id, 1, "smsc", "r1", "r1"))
    store.apply(ops.PartFailed(message.message_id, 2, "smsc", "rejected", "ESME_RINVDSTADR"))
    found = store.message(message.message_id)
    assert found["status"] == "rejected" and found["error_code"] == "ESME_RINVDSTADR"
    assert found["refunded"] == 3  # parts 2, 3 and 4 never reached the carrier
    assert store.balance() == 999
    assert [p["status"] for p in found["part_list"]] == ["submitted", "rejected", "cancelled",
                                                         "cancelled"]
    store.apply(ops.PartFailed(message.message_id, 3, "smsc", "rejected", "again"))
    assert store.balance() == 999  # refunded once


def test_unknown_is_charged_and_can_be_settled_by_a_late_receipt(store: Store) -> None:
    message = accept(store)
    store.apply(message)
    store.apply(ops.PartUnknown(message.message_id, 1, "smsc", "no response within 5 s"))
    found = store.message(message.message_id)
    assert found["status"] == "unknown" and found["refunded"] == 0
    store.apply(ops.LateId(message.message_id, 1, "smsc", "L1", "l1", 0))
    store.apply(ops.ReceiptSeen("smsc", "l1", "delivered", None))
    assert store.message(message.message_id)["status"] == "delivered"
    assert store.balance() == 999


def test_states_never_regress_and_duplicates_change_nothing(store: Store) -> None:
    """Checklist 18."""
    message = accept(store)
    store.apply(message)
    store.apply(ops.PartSubmitted(message.message_id, 1, "smsc", "d1", "d1"))
    store.apply(ops.ReceiptSeen("smsc", "d1", "delivered", None))
    events = store.scalar("SELECT count(*) FROM message_events")
    store.apply(ops.ReceiptSeen("smsc", "d1", "submitted", None),
                ops.ReceiptSeen("smsc", "d1", "delivered", None),
                ops.ReceiptSeen("smsc", "d1", "undelivered", None))
    assert store.message(message.message_id)["status"] == "delivered"
    assert store.scalar("SELECT count(*) FROM message_events") == events


def test_mo_fragments_are_deduplicated(store: Store) -> None:
    def fragment(number: int) -> ops.FragmentSeen:
        return ops.FragmentSeen("smsc", "48500100200", "1234", 0, 9, 2, number,
                                b"part %d" % number, None, f"key-{number}")

    first = store.apply(fragment(1), fragment(2), fragment(1))
    assert first[0] and first[1] and first[2] is None
    assert store.apply(fragment(2)) == [None]
    inbound = store.apply(ops.InboundComplete("smsc", "48500100200", "1234", 0, "part 1part 2",
                                              b"part 1part 2", 2, None, (), None,
                                              ("key-1", "key-2")))
    assert inbound[0]
    with store.engine.connect() as conn:
        assert queries.unassembled_fragments(conn, 3600) == []


def test_reads_are_per_account_with_filters_and_pages(store: Store) -> None:
    mine = [accept(store, recipient=f"4850010010{i}") for i in range(5)]
    theirs = accept(store, account="other")
    store.apply(*mine, theirs)
    assert store.message(theirs.message_id, "acme") is None
    with store.engine.connect() as conn:
        page, cursor = queries.list_messages(conn, store.accounts["acme"], MessageFilter(),
                                             None, 3)
        rest, end = queries.list_messages(conn, store.accounts["acme"], MessageFilter(),
                                          cursor, 3)
        one, _ = queries.list_messages(conn, store.accounts["acme"],
                                       MessageFilter(recipient="48500100102"), None, 10)
    assert [m["id"] for m in page + rest] == [m.message_id for m in reversed(mine)]
    assert end is None
    assert [m["id"] for m in one] == [mine[2].message_id]


def test_ten_thousand_receipts_are_not_ten_thousand_transactions(
        store: Store, reactor_running: Any) -> None:
    """The writer groups what queued up while it was committing into one batch."""
    from smppd.store.writer import Writer

    messages = [accept(store, account="bulk") for _ in range(10_000)]
    for start in range(0, len(messages), 2000):
        store.apply(*messages[start:start + 2000])
    store.apply(*[ops.PartSubmitted(m.message_id, 1, "smsc", str(i), str(i))
                  for i, m in enumerate(messages)])
    # A batch of thousands may take seconds on a busy machine: that is not the stall
    # this test is about (tests/daemon/test_store_faults.py has those).
    writer = Writer(store.engine, store.applier, reactor_running, stall_timeout=120)
    writer.start()
    done: list[Any] = []

    def burst() -> None:
        for i in range(len(messages)):
            writer.put(ops.ReceiptSeen("smsc", str(i), "delivered", None)).addBoth(done.append)

    call(burst)
    wait_for(lambda: len(done) == len(messages), timeout=60, what="10,000 receipts written")
    writer.stop()
    assert all(result is None for result in done)
    assert writer.batches <= 20, f"{writer.batches} transactions for 10,000 receipts"
    assert store.scalar("SELECT count(*) FROM messages WHERE status = 'delivered'") == 10_000


def test_long_vendor_error_texts_are_cut_not_fatal(store: Store) -> None:
    """A receipt's free-form err: text longer than the column must not make the
    write fail (PostgreSQL enforces lengths), or the SMSC would redeliver forever."""
    message = accept(store)
    store.apply(message)
    store.apply(ops.PartSubmitted(message.message_id, 1, "smsc", "e1", "e1"))
    store.apply(ops.ReceiptSeen("smsc", "e1", "undelivered", "subscriber absent " * 10))
    found = store.message(message.message_id)
    assert found["status"] == "undelivered" and len(found["error_code"]) == 32
    other = accept(store)
    store.apply(other)
    store.apply(ops.PartUnknown(other.message_id, 1, "smsc", "connection lost: " + "x" * 200))
    assert store.message(other.message_id)["status"] == "unknown"


def test_receipts_that_never_match_are_purged_after_their_age(store: Store) -> None:
    store.apply(ops.ReceiptSeen("smsc", "orphan-1", "delivered", None),
                ops.ReceiptSeen("smsc", "orphan-2", "delivered", None))
    assert store.apply(ops.PurgePending(3600.0)) == [0]  # too young
    assert store.apply(ops.PurgePending(-1.0)) == [2]
    assert store.scalar("SELECT count(*) FROM pending_receipts") == 0
    assert store.applier.pending_receipts == 0


def test_overlong_peer_values_are_cut_to_their_columns(store: Store) -> None:
    """A 100-character receipt id or MO address from a misbehaving SMSC must not fail
    the write (PostgreSQL enforces lengths): the SMSC would redeliver it for ever."""
    message = accept(store)
    store.apply(message)
    long_id = "7" * 100
    store.apply(ops.PartSubmitted(message.message_id, 1, "smsc", long_id, long_id))
    store.apply(ops.ReceiptSeen("smsc", long_id, "delivered", None))
    assert store.message(message.message_id)["status"] == "delivered"
    store.apply(ops.ReceiptSeen("smsc", "9" * 100, "delivered", None))  # no such id: kept
    assert store.scalar("SELECT count(*) FROM pending_receipts") == 1
    fragment = ops.FragmentSeen("smsc", "4" * 40, "1" * 40, 0, None, None, None, b"hi", None,
                                "k-long")
    assert store.apply(fragment)[0]


def test_ledger_entries_change_the_balance_with_a_reason(store: Store) -> None:
    account = store.accounts["other"]
    assert store.apply(ops.LedgerEntry(account, "topup", 90, note="invoice 7",
                                       created_by="operator")) == [100]
    refused = store.apply(ops.LedgerEntry(account, "fee", -101, reference="+48500"))[0]
    assert isinstance(refused, ops.InsufficientBalance) and store.balance("other") == 100
    assert store.apply(ops.LedgerEntry(account, "fee", -30, reference="+48500")) == [70]
    with store.engine.connect() as conn:
        entries = queries.ledger(conn, account)
    assert [(e["kind"], e["points"], e["balance_after"]) for e in entries] == [
        ("fee", -30, 70), ("topup", 90, 100)]
    assert entries[1]["note"] == "invoice 7" and entries[1]["created_by"] == "operator"
