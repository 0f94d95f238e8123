"""The outbox and links in the store, on SQLite and PostgreSQL: events exist exactly
when the status change that causes them is committed, go where the endpoints say,
and attempts, expiry, links and clicks are recorded a batch at a time."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import select, text

from smppd.callbacks import queries as cq
from smppd.config import InboundNumber
from smppd.ids import new_id
from smppd.inbound.pool import Pool
from smppd.reports import queries as rq
from smppd.store import operations as ops
from smppd.store import outbox
from smppd.store import schema as t
from smppd.store.callback_operations import (
    ClickSeen,
    ClicksSeen,
    CreateEndpoint,
    DeleteEndpoint,
    DeliveryResults,
    ExpireTarget,
    ResendEvent,
    RotateSecret,
)
from smppd.store.context import BatchContext
from smppd.store.inbound_ops import SaveSettings
from smppd.store.links import Recoded
from smppd.store.sql import utc
from tests.store.conftest import Store
from tests.store.test_store import accept

SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="


def endpoint(store: Store, account: str = "acme", *, status: bool = False, final: bool = True,
             inbound: bool = False, default: bool | None = None) -> str:
    endpoint_id = new_id()
    result = store.apply(CreateEndpoint(store.accounts[account], endpoint_id,
                                        "http://127.0.0.1:1/hook", status, final, inbound,
                                        default, SECRET, time.time(), 20))[0]
    assert result["id"] == endpoint_id, result
    return endpoint_id


def events(store: Store) -> list[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(
            "SELECT id, target, type, message_id, status, state FROM callback_events "
            "ORDER BY seq"))]


def deliver(store: Store, message: ops.Accept, key: str) -> None:
    store.apply(ops.PartSubmitted(message.message_id, 1, "smsc", key.upper(), key))
    store.apply(ops.ReceiptSeen("smsc", key, "delivered", None))


def delivered(store: Store, count: int, prefix: str) -> list[Any]:
    """Accepts and delivers `count` messages (receipt keys prefix0, prefix1, ...);
    returns the events then due to every endpoint."""
    messages = [accept(store) for _ in range(count)]
    store.apply(*messages)
    for index, message in enumerate(messages):
        deliver(store, message, f"{prefix}{index}")
    with store.engine.connect() as conn:
        return cq.due_events(conn, utc(time.time() + 1), [], 10)


def test_no_endpoint_no_event_and_final_only_by_default(store: Store) -> None:
    before = accept(store)
    store.apply(before)
    deliver(store, before, "k0")
    assert events(store) == []
    target = endpoint(store)
    message = accept(store)
    store.apply(message)
    deliver(store, message, "k1")
    assert events(store) == [(f"{message.message_id}-delivered", target, "message.final",
                              message.message_id, "delivered", "pending")]


def test_status_subscribers_get_every_change_and_named_endpoints_win(store: Store) -> None:
    default = endpoint(store, status=True)
    named = endpoint(store, status=True, default=False)
    first, second = accept(store), accept(store, callback_id=named)
    store.apply(first, second)
    store.apply(ops.PartSubmitted(first.message_id, 1, "smsc", "A", "a"),
                ops.PartSubmitted(second.message_id, 1, "smsc", "B", "b"))
    store.apply(ops.ReceiptSeen("smsc", "a", "undelivered", "012"),
                ops.ReceiptSeen("smsc", "b", "delivered", None))
    found = {(row[1], row[3], row[4], row[2]) for row in events(store)}
    assert found == {
        (default, first.message_id, "submitted", "message.status"),
        (default, first.message_id, "undelivered", "message.final"),
        (named, second.message_id, "submitted", "message.status"),
        (named, second.message_id, "delivered", "message.final")}


def test_a_fast_receipt_in_the_same_batch_still_gives_submitted(store: Store) -> None:
    endpoint(store, status=True)
    message = accept(store)
    store.apply(message)
    store.apply(ops.PartSubmitted(message.message_id, 1, "smsc", "C", "c"),
                ops.ReceiptSeen("smsc", "c", "delivered", None))
    assert [row[4] for row in events(store)] == ["submitted", "delivered"]


def test_the_event_is_in_the_status_change_transaction(store: Store) -> None:
    """A batch that fails leaves neither the new status nor its event."""
    endpoint(store)
    message = accept(store)
    store.apply(message)
    store.apply(ops.PartSubmitted(message.message_id, 1, "smsc", "D", "d"))
    with pytest.raises(RuntimeError), store.engine.begin() as conn:
        store.applier.apply(conn, [ops.ReceiptSeen("smsc", "d", "delivered", None)])
        assert [row[4] for row in conn.execute(text(
            "SELECT id, target, type, message_id, status FROM callback_events"))] == \
            ["delivered"]
        raise RuntimeError("the transaction fails after the batch")
    store.applier.reset()
    assert events(store) == []
    assert store.message(message.message_id)["status"] == "submitted"


def test_deleted_endpoint_gets_nothing_and_its_pending_events_are_cancelled(
        store: Store) -> None:
    target = endpoint(store)
    message = accept(store)
    store.apply(message)
    deliver(store, message, "e")
    assert store.apply(DeleteEndpoint(store.accounts["other"], target)) == [False]
    assert store.apply(DeleteEndpoint(store.accounts["acme"], target)) == [True]
    assert [row[5] for row in events(store)] == ["cancelled"]
    later = accept(store)
    store.apply(later)
    deliver(store, later, "f")
    assert len(events(store)) == 1


def test_stopping_a_job_sends_cancelled_events(store: Store) -> None:
    target = endpoint(store)
    job_id = new_id()
    rows = tuple(accept(store, job_id=job_id) for _ in range(3))
    store.apply(ops.CreateJob(store.accounts["acme"], job_id, "j", "Acme", "t", None, None,
                              rows, time.time()))
    store.apply(ops.FinishJob(job_id, "running", 0, None))
    store.apply(ops.StopJob(job_id, store.accounts["acme"], frozenset()))
    assert sorted(row[3] for row in events(store)) == sorted(r.message_id for r in rows)
    assert {(row[1], row[4], row[2]) for row in events(store)} == {
        (target, "cancelled", "message.final")}


def test_enqueue_to_a_url_an_endpoint_or_every_subscriber(store: Store) -> None:
    inbound_a = endpoint(store, final=False, inbound=True)
    endpoint(store, final=True, default=False)
    account = store.accounts["acme"]

    def run(**kw: Any) -> list[str]:
        with store.engine.begin() as conn:
            ctx = _context(store, conn)
            return outbox.enqueue(ctx, account, kw.pop("type", "inbound.received"),
                                  {"text": "hi"}, **kw)

    assert len(run()) == 1  # only the endpoint that wants MO
    assert len(run(url="https://forward.example/mo")) == 1
    assert len(run(endpoint_id=inbound_a, type="custom.thing")) == 1
    assert run(type="custom.thing") == []  # a custom event goes only where it is sent
    rows = events(store)
    assert [row[1] for row in rows[:3]] == [inbound_a, outbox.url_target(
        "https://forward.example/mo"), inbound_a]
    # The forward is signed with the account's key, and carries the data as given.
    store.apply(RotateSecret(account, SECRET))
    with store.engine.connect() as conn:
        due = cq.due_events(conn, utc(time.time() + 1), [], 10)
    forward = next(e for e in due if e.url == "https://forward.example/mo")
    assert forward.secret == SECRET
    assert json.loads(forward.body)["data"] == {"text": "hi"}


def test_a_routed_mo_is_received_by_its_subscribers_and_its_forward_url(
        store: Store) -> None:
    """Only an MO routed to an account makes events: to its endpoints that want MO,
    and to the number's forward URL; an unknown number's MO makes none."""
    target = endpoint(store, final=False, inbound=True)
    endpoint(store, final=True, inbound=False)  # does not want MO
    runtime = store.applier.memory.inbound
    runtime.pool = Pool.of((InboundNumber("4780", "shortcode", "acme"),), store.accounts, 5)
    store.apply(SaveSettings(store.accounts["acme"], "4780", "", None, None, None, None, None,
                             "https://forward.example/mo"))
    inbound_id = store.apply(ops.InboundComplete(
        "smsc", "48600100200", "4780", 0, "VOTE A", b"VOTE A", 1, None, ()))[0].inbound_id
    store.apply(ops.InboundComplete("smsc", "48600100201", "4781", 0, "no account", b"x", 1,
                                    None, ()))
    rows = events(store)
    assert [(row[1], row[2]) for row in rows] == [
        (target, "inbound.received"),
        (outbox.url_target("https://forward.example/mo"), "inbound.received")]
    with store.engine.connect() as conn:
        due = cq.due_events(conn, utc(time.time() + 1), [], 10)
    assert len(due) == 2
    data = json.loads(due[0].body)["data"]
    assert data["id"] == str(inbound_id) and data["text"] == "VOTE A"
    assert data["from"] == "+48600100200" and data["to"] == "4780"
    assert data["route"] == "shortcode"
    assert json.loads(due[1].body)["data"] == data


def test_mo_of_one_batch_make_events_only_where_wanted_each_with_its_own_id(
        store: Store) -> None:
    """Several MO in one transaction (a vote flood): the endpoints are looked up once
    for the batch, yet each MO's event goes only to its own account's subscribers,
    carries its own message's id, and an account without one gets none."""
    first = endpoint(store, final=False, inbound=True)
    second = endpoint(store, final=False, inbound=True)
    runtime = store.applier.memory.inbound
    runtime.pool = Pool.of((InboundNumber("4780", "shortcode", "acme"),
                            InboundNumber("4781", "shortcode", "other")), store.accounts, 5)
    results = store.apply(*[ops.InboundComplete(
        "smsc", f"4860010020{n}", to, 0, f"MO {n}", b"x", 1, None, ())
        for n, to in enumerate(("4780", "4781", "4780"))])
    assert [r.account_id for r in results] == [store.accounts["acme"], store.accounts["other"],
                                               store.accounts["acme"]]
    rows = events(store)
    assert sorted((row[1], row[2]) for row in rows) == sorted(
        [(first, "inbound.received"), (second, "inbound.received")] * 2)
    with store.engine.connect() as conn:
        due = cq.due_events(conn, utc(time.time() + 1), [], 10)
    sent = sorted((json.loads(event.body)["data"]["id"], json.loads(event.body)["data"]["text"])
                  for event in due)
    assert sent == sorted([(str(results[0].inbound_id), "MO 0")] * 2
                          + [(str(results[2].inbound_id), "MO 2")] * 2)
    assert results[0].inbound_id != results[2].inbound_id


def test_results_expiry_and_the_deliveries_page(store: Store) -> None:
    target = endpoint(store)
    due = delivered(store, 3, "g")
    with store.engine.connect() as conn:
        assert cq.due_events(conn, utc(time.time() + 1), [target], 10) == []
    assert len(due) == 3
    now = time.time()
    store.apply(DeliveryResults((
        (due[0].seq, "delivered", 1, now, None, 204, now),
        (due[1].seq, "pending", 1, now + 60, "HTTP 500", 500, None))))
    with store.engine.connect() as conn:
        assert [e.seq for e in cq.due_events(conn, utc(now + 1), [], 10)] == [due[2].seq]
    assert store.apply(ExpireTarget(target, now + 1, "gave up: HTTP 500")) == [2]
    with store.engine.connect() as conn:
        account = store.accounts["acme"]
        failed, cursor = cq.deliveries(conn, account, target, "failed", None, 1)
        assert len(failed) == 1 and cursor is not None
        rest, end = cq.deliveries(conn, account, target, "failed", cursor, 1)
        assert len(rest) == 1 and end is None
        assert {failed[0]["last_error"], rest[0]["last_error"]} == {"gave up: HTTP 500"}
        assert cq.deliveries(conn, store.accounts["other"], target, None, None, 10) is None
        assert cq.outbox_depth(conn) == []
        listed = cq.failed_events(conn, account, 10)
        assert {e["id"] for e in listed} == {failed[0]["id"], rest[0]["id"]}
        assert all(e["url"] == "http://127.0.0.1:1/hook" for e in listed)
        assert cq.failed_events(conn, store.accounts["other"], 10) == []
        assert len(cq.failed_events(conn, None, 10)) == 2  # the operator sees every account
    # Resent: pending and due again, only by its own account (or the operator's None).
    assert store.apply(ResendEvent(failed[0]["id"], store.accounts["other"], now)) == [False]
    assert store.apply(ResendEvent(failed[0]["id"], account, now)) == [True]
    assert store.apply(ResendEvent(rest[0]["id"], None, now)) == [True]
    assert store.apply(ResendEvent(rest[0]["id"], None, now)) == [False]  # not failed now
    with store.engine.connect() as conn:
        assert {e.id for e in cq.due_events(conn, utc(now + 1), [], 10)} == {
            failed[0]["id"], rest[0]["id"], due[2].id}
        assert cq.failed_events(conn, None, 10) == []


def test_one_default_per_account(store: Store) -> None:
    first = endpoint(store)
    second = endpoint(store, default=True)
    with store.engine.connect() as conn:
        listed = {e["id"]: e["default"] for e in cq.list_endpoints(conn, store.accounts["acme"])}
    assert listed == {first: False, second: True}


def test_links_are_stored_and_a_taken_code_is_replaced(store: Store) -> None:
    first = accept(store, links=(("AAAAAAAAA", "https://shop.example/a"),))
    first = _with_text(first, "see https://s.example/AAAAAAAAA")
    assert store.apply(first) == [first.message_id]
    clash = _with_text(accept(store, links=(("AAAAAAAAA", "https://shop.example/b"),)),
                       "see https://s.example/AAAAAAAAA now")
    [result] = store.apply(clash)
    assert isinstance(result, Recoded) and result == clash.message_id
    assert result.text != clash.text and len(result.text) == len(clash.text)
    stored = store.message(clash.message_id)
    assert stored["text"] == result.text
    with store.engine.connect() as conn:
        links = cq.message_links(conn, clash.message_id)
    assert [link["url"] for link in links] == ["https://shop.example/b"]
    assert links[0]["code"] in result.text and links[0]["code"] != "AAAAAAAAA"


def test_clicks_first_then_repeat_and_unknown_codes(store: Store) -> None:
    job_id = new_id()
    rows = tuple(_with_text(accept(store, job_id=job_id, links=((f"C{i:08d}", "https://x.example/"),)),
                            f"go https://s.example/C{i:08d}") for i in range(4))
    store.apply(ops.CreateJob(store.accounts["acme"], job_id, "j", "Acme", "t", None, None,
                              rows, time.time()))
    now = time.time()
    results = store.apply(ClickSeen("C00000000", now, "mobile"), ClickSeen("C00000000", now,
                                                                           "mobile"),
                          ClickSeen("nosuchcod", now, "mobile"),
                          ClickSeen("C00000001", now, "bot"))
    assert results == ["https://x.example/", "https://x.example/", None, "https://x.example/"]
    store.apply(ClickSeen("C00000000", now + 1, "desktop"))
    with store.engine.connect() as conn:
        clicks = conn.execute(text("SELECT code, is_repeat, agent FROM link_clicks ORDER BY id"
                                   )).all()
        stats = rq.links_of_jobs(conn, store.accounts["acme"], [job_id])
        clicked = {message_id for message_id, flag in conn.execute(
            select(t.messages.c.id, rq.clicked_column())) if flag}
        assert rq.links_of_jobs(conn, store.accounts["other"], [job_id])["clicks"] == 0
    assert [(code, bool(repeat), agent) for code, repeat, agent in clicks] == [
        ("C00000000", False, "mobile"), ("C00000000", True, "mobile"),
        ("C00000001", False, "bot"), ("C00000000", True, "desktop")]
    # The robot's visit is a click, not a person's: CTR counts one message of four.
    assert stats == {"messages_with_links": 4, "clicked": 1, "clicks": 4, "ctr": 0.25}
    assert clicked == {rows[0].message_id}


def test_clicks_answered_before_their_commit_are_recorded_in_order(store: Store) -> None:
    """The links listener's batch (ClicksSeen): first then repeats in the order the
    clicks came, a single ClickSeen in the same batch taking its turn, an unknown
    code skipped; the result is how many were recorded."""
    job_id = new_id()
    rows = tuple(_with_text(accept(store, job_id=job_id, links=((f"D{i:08d}", "https://x.example/"),)),
                            f"go https://s.example/D{i:08d}") for i in range(2))
    store.apply(ops.CreateJob(store.accounts["acme"], job_id, "j", "Acme", "t", None, None,
                              rows, time.time()))
    now = time.time()
    results = store.apply(
        ClicksSeen((("D00000001", now, "desktop"), ("nosuchcod", now, "mobile"),
                    ("D00000000", now, "mobile"))),
        ClickSeen("D00000000", now, "bot"),
        ClicksSeen((("D00000000", now + 1, "tablet"), ("D00000001", now + 1, "mobile"))))
    assert results == [2, "https://x.example/", 2]
    with store.engine.connect() as conn:
        clicks = conn.execute(text("SELECT code, is_repeat, agent FROM link_clicks ORDER BY id"
                                   )).all()
        counts = dict(conn.execute(text("SELECT code, clicks FROM links")).all())
    assert [(code, bool(repeat), agent) for code, repeat, agent in clicks] == [
        ("D00000001", False, "desktop"), ("D00000000", False, "mobile"),
        ("D00000000", True, "bot"), ("D00000000", True, "tablet"),
        ("D00000001", True, "mobile")]
    assert counts == {"D00000000": 3, "D00000001": 2}


def _with_text(op: ops.Accept, text_: str) -> ops.Accept:
    return op._replace(text=text_)


def _context(store: Store, conn: Any) -> BatchContext:
    from smppd.store.sql import Runner
    sql = Runner(conn.dialect.name, conn.dialect.paramstyle)
    now = utc()
    return BatchContext(conn, sql, now, sql.ts(now), [], store.applier.memory)


def test_a_late_result_does_not_bring_back_a_cancelled_event(store: Store) -> None:
    target = endpoint(store)
    message = accept(store)
    store.apply(message)
    deliver(store, message, "h")
    with store.engine.connect() as conn:
        [event] = cq.due_events(conn, utc(time.time() + 1), [], 10)
    store.apply(DeleteEndpoint(store.accounts["acme"], target))
    store.apply(DeliveryResults(((event.seq, "pending", 1, time.time() + 5, "HTTP 500", 500,
                                  None),)))
    assert [row[5] for row in events(store)] == ["cancelled"]


def test_successes_are_written_as_groups_of_seqs(store: Store) -> None:
    """The drainer's successes come as (finished_at, attempts, status, seqs) groups,
    one UPDATE ... IN each (chunked), next to rows for the rest: each event gets its
    group's values, and a success never brings back a cancelled event."""
    from smppd.callbacks.drainer import compact
    from smppd.callbacks.worker import decode_op, encode_op

    target = endpoint(store)
    due = delivered(store, 5, "s")
    seqs = [event.seq for event in due]
    now = time.time()
    op = compact(((seqs[0], "delivered", 1, now - 0.01, None, 204, now - 0.01),
                  (seqs[1], "delivered", 1, now, None, 204, now),
                  (seqs[2], "delivered", 3, now, None, 200, now),
                  (seqs[3], "pending", 1, now + 60, "HTTP 500", 500, None)))
    assert op.rows == ((seqs[3], "pending", 1, now + 60, "HTTP 500", 500, None),)
    assert op.delivered == ((now, 1, 204, (seqs[0], seqs[1])), (now, 3, 200, (seqs[2],)))
    assert decode_op(json.loads(json.dumps(encode_op(op)))) == op  # over the pipe
    store.apply(DeleteEndpoint(store.accounts["acme"], target))  # cancels every pending
    with store.engine.begin() as conn:  # three of them pending again, to be delivered
        conn.execute(t.callback_events.update().where(
            t.callback_events.c.seq.in_(seqs[:3])).values(state="pending"))
    old = outbox.DELIVERED_CHUNK
    outbox.DELIVERED_CHUNK = 1  # one seq per statement: the chunks are all written
    try:
        assert store.apply(op) == [4]
    finally:
        outbox.DELIVERED_CHUNK = old
    with store.engine.connect() as conn:
        rows = {row.seq: row for row in conn.execute(select(t.callback_events))}
    assert [rows[seq].state for seq in seqs] == ["delivered"] * 3 + ["cancelled"] * 2
    assert [(rows[seq].attempts, rows[seq].last_status) for seq in seqs[:3]] == [
        (1, 204), (1, 204), (3, 200)]
    assert all(rows[seq].finished_at == rows[seq].next_at for seq in seqs[:3])
    assert abs(rows[seqs[0]].finished_at.replace(tzinfo=None)
               - utc(now).replace(tzinfo=None)).total_seconds() < 0.001
