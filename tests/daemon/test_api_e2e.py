"""End to end over real HTTP, a real SQLite file and real SMPP over TCP: messages
sent through the API reach their final status, read back through the API."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from smppd import config
from smppd.protocol import constants as c
from tests.conftest import call, wait_for
from tests.support.peer import record_commands
from tests.support.running import TOKEN_B, Client, settings_dict


def test_message_reaches_delivered_and_history_is_readable(start_daemon: Any) -> None:
    running = start_daemon()
    status, body = running.client.send(text="Hello € [world]", ref_id="order-7",
                                       params={"campaign": "x"})
    assert status == 201, body
    assert body["status"] == "queued" and body["parts"] == 1 and body["encoding"] == "gsm"
    assert body["points"] == 1
    final = running.client.wait_status(body["id"], "delivered")
    assert final["ref_id"] == "order-7"
    assert final["part_list"][0]["smsc"] == "carrier-a"
    assert final["part_list"][0]["smsc_id"] == running.smsc.submits[0].message_id
    assert [h["status"] for h in final["history"]] == ["queued", "submitted", "delivered"]
    assert final["submitted_at"] and final["final_at"]
    # The SMSC got exactly the text, once.
    assert [m.text for m in running.smsc.messages] == ["Hello € [world]"]


def test_every_kind_of_text_is_split_sent_and_delivered(start_daemon: Any) -> None:
    running = start_daemon()
    texts = ["plain", "Zażółć gęślą jaźń", "emoji 😀 " * 20, "long " * 100, "{}[]~€^|" * 30]
    ids = []
    for index, text in enumerate(texts):
        status, body = running.client.send(to=f"+4850010020{index}", text=text)
        assert status == 201, body
        ids.append((body["id"], body["parts"]))
    for message_id, parts in ids:
        final = running.client.wait_status(message_id, "delivered")
        assert len(final["part_list"]) == parts
        assert all(p["status"] == "delivered" for p in final["part_list"])
    wait_for(lambda: len(running.smsc.messages) == len(texts), what="all assembled")
    assert sorted(m.text for m in running.smsc.messages) == sorted(texts)


def test_undelivered_and_expired_receipts(start_daemon: Any) -> None:
    running = start_daemon()
    running.smsc.behaviour.receipt_status_by_prefix = {"4860": "UNDELIV", "4869": "EXPIRED"}
    _, a = running.client.send(to="+48601000001")
    _, b = running.client.send(to="+48691000001")
    assert running.client.wait_status(a["id"], "undelivered")["status"] == "undelivered"
    assert running.client.wait_status(b["id"], "expired")["status"] == "expired"


def test_receipt_before_response_is_matched_once(start_daemon: Any) -> None:
    """Checklist 1: the receipt comes 50 ms before submit_sm_resp."""
    running = start_daemon()
    running.smsc.behaviour.receipt_before_response = 0.05
    ids = [running.client.send(to=f"+4850010030{i}")[1]["id"] for i in range(5)]
    for message_id in ids:
        final = running.client.wait_status(message_id, "delivered")
        assert [h["status"] for h in final["history"]].count("delivered") == 1


def test_hex_response_decimal_receipt_matched_under_id_policy(start_daemon: Any) -> None:
    """Checklist 2: ids in hex in the response and decimal in the receipt."""
    running = start_daemon(smsc={"id_format": {"response": "hex", "receipt": "dec"}})
    running.smsc.behaviour.id_format = "hexpad"
    running.smsc.behaviour.receipt_id_format = "dec"
    _, body = running.client.send()
    final = running.client.wait_status(body["id"], "delivered")
    assert final["part_list"][0]["smsc_id"].startswith("0")  # kept exactly as written


def test_permanent_error_rejects_and_refunds(start_daemon: Any) -> None:
    """Checklist 6: 0x0B is never retried; the message is rejected and refunded."""
    running = start_daemon()
    running.smsc.behaviour.submit_status_by_prefix = {"4879": c.ESME_RINVDSTADR}
    _, before = running.client.request("GET", "/v1/account")
    _, body = running.client.send(to="+48790000001", text="long " * 80)
    final = running.client.wait_status(body["id"], "rejected")
    assert final["error_code"] == "ESME_RINVDSTADR"
    assert final["refunded"] == body["points"]
    _, after = running.client.request("GET", "/v1/account")
    assert after["balance"] == before["balance"]
    # Never retried: each part (all three went out inside the window before the first
    # answer) reached the SMSC once.
    bodies = [s.pdu.fields["short_message"] for s in running.smsc.submits]
    assert len(bodies) == len(set(bodies)) == body["parts"] == 3


def test_retries_that_run_out_fail_the_message_and_refund_it(start_daemon: Any) -> None:
    """An SMSC that answers ESME_RSYSERR (temporary) for ever: a part is sent
    `max_attempts` times (never more), no more even well past the longest retry delay,
    then the message is `failed` and refunded; a message to another number is not
    held up by it."""
    attempts, longest_delay = 4, 0.05
    running = start_daemon(retry={"initial": 0.01, "max": longest_delay,
                                  "max_attempts": attempts})
    running.smsc.behaviour.submit_status_by_prefix = {"4879": c.ESME_RSYSERR}
    _, before = running.client.request("GET", "/v1/account")
    _, doomed = running.client.send(to="+48790000001", text="long " * 40)
    _, fine = running.client.send(to="+48500100200", text="goes through")
    running.client.wait_status(fine["id"], "delivered")
    final = running.client.wait_status(doomed["id"], "failed")
    assert final["error_code"] == "ESME_RSYSERR"
    assert final["refunded"] == doomed["points"] and doomed["parts"] == 2
    time.sleep(10 * longest_delay)  # well past the longest retry delay: no more tries
    to_doomed = [s for s in running.smsc.submits
                 if s.pdu.fields["destination_addr"] == "48790000001"]
    per_part = Counter(bytes(s.pdu.fields["short_message"]) for s in to_doomed)
    # The part that runs out first fails the message; a retry of the other part still
    # waiting then is dropped (the message is settled), so it may see one try fewer.
    assert len(per_part) == doomed["parts"]
    assert max(per_part.values()) == attempts
    assert min(per_part.values()) >= attempts - 1
    assert {s.status for s in to_doomed} == {c.ESME_RSYSERR}
    _, after = running.client.request("GET", "/v1/account")
    assert before["balance"] - after["balance"] == fine["points"]


def test_throttling_is_retried_and_counted(start_daemon: Any) -> None:
    """Checklist 4: every 3rd submit is throttled; everything is delivered."""
    running = start_daemon()
    running.smsc.behaviour.throttle_every = 3
    ids = [running.client.send(to=f"+485001004{i:02d}")[1]["id"] for i in range(12)]
    for message_id in ids:
        running.client.wait_status(message_id, "delivered")
    _, metrics = running.client.request("GET", "/metrics")
    throttled = [line for line in metrics.splitlines()
                 if line.startswith('smppd_throttled_total{smsc="carrier-a"}')]
    assert throttled and float(throttled[0].split()[-1]) >= 4


def test_swallowed_response_is_resent_after_a_rebind_and_billed_once(
        start_daemon: Any) -> None:
    """Checklist 7, the default (wait_ack_expire: reconnect, as Kannel's 0x00): no
    response within the timeout drops the bind, and the part goes out again after
    the next bind; the history says so, the balance is charged once."""
    running = start_daemon(smsc={"response_timeout": 0.3})
    running.smsc.behaviour.swallow = {1}
    _, before = running.client.request("GET", "/v1/account")
    _, body = running.client.send()
    final = running.client.wait_status(body["id"], "delivered")
    assert len(running.smsc.submits) == 2 and len(running.smsc.binds) == 2
    resent = [h for h in final["history"] if (h["error_code"] or "").startswith("resent")]
    assert [(h["status"], h["part"]) for h in resent] == [("queued", 1)]
    assert resent[0]["error_code"] == "resent: no response within 0.3 s" and resent[0]["at"]
    _, after = running.client.request("GET", "/v1/account")
    assert before["balance"] - after["balance"] == body["points"]
    assert _metric(running, 'smppd_resent_total{cause="timeout",smsc="carrier-a"}') == 1


def test_never_resend_leaves_unknown_even_past_the_longest_retry_delay(
        start_daemon: Any) -> None:
    """Checklist 7 with wait_ack_expire: never: `unknown`, charged once, and never
    sent again: checked after the longest retry and reconnect delays have passed."""
    import time

    running = start_daemon(smsc={"response_timeout": 0.3, "wait_ack_expire": "never"})
    running.smsc.behaviour.swallow = {1}
    running.smsc.behaviour.receipts = False
    _, before = running.client.request("GET", "/v1/account")
    _, body = running.client.send()
    final = running.client.wait_status(body["id"], "unknown")
    assert final["refunded"] == 0
    _, after = running.client.request("GET", "/v1/account")
    assert before["balance"] - after["balance"] == body["points"]
    time.sleep(2 * 0.5 + 0.5)  # retry max and reconnect max are 0.5 s here
    assert len(running.smsc.submits) == 1 and len(running.smsc.binds) == 1


def _metric(running: Any, sample: str) -> float:
    _, text = running.client.request("GET", "/metrics")
    for line in text.splitlines() if isinstance(text, str) else []:
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


def test_messages_wait_while_unbound_and_go_at_bind(start_daemon: Any) -> None:
    """Checklist 15: no SMSC bound: messages are accepted and wait; the dispatcher
    does not run at all while unbound (no requeue loop); they go out at bind."""
    import time

    running = start_daemon()
    dispatcher = running.daemon.dispatcher
    call(running.smsc.drop_all)
    running.smsc.behaviour.bind_status = c.ESME_RBINDFAIL
    wait_for(lambda: not running.daemon.readiness()[0], what="not ready")
    submits_before = len(running.smsc.submits)
    ids = [running.client.send(to=f"+485001005{i:02d}")[1]["id"] for i in range(5)]
    passes = call(lambda: dispatcher.passes)
    time.sleep(1.0)  # unbound, with work waiting
    assert call(lambda: dispatcher.passes) == passes  # nothing woke the dispatcher
    assert call(lambda: dispatcher.depth) == 5
    assert len(running.smsc.submits) == submits_before
    status, ready = running.client.request("GET", "/readyz")
    assert status == 503 and ready["ready"] is False
    running.smsc.behaviour.bind_status = None
    for message_id in ids:
        running.client.wait_status(message_id, "delivered", timeout=15)
    assert len(running.smsc.submits) == submits_before + 5


def test_mo_is_stored_before_ack_and_redelivery_is_deduped(start_daemon: Any) -> None:
    """Checklist 25/32: deliver_sm_resp only after the write; a redelivered part is
    dropped, not stored twice."""
    from sqlalchemy import create_engine, text

    running = start_daemon()
    smsc = running.smsc
    body = "two parts of text " * 12
    call(smsc.inject_mo, "48500100200", "1234", body, order=[2, 1])
    wait_for(lambda: len(smsc.deliver_responses) >= 2, what="MO acked")
    call(smsc.inject_mo, "48500100200", "1234", body)  # the SMSC redelivers both parts
    wait_for(lambda: len(smsc.deliver_responses) >= 4, what="redelivery acked")
    assert set(smsc.deliver_responses.values()) == {0}
    engine = create_engine(f"sqlite:///{running.path / 'smppd.db'}")

    def stored() -> list[Any]:
        with engine.connect() as conn:
            return conn.execute(text("SELECT text, parts FROM inbound_messages")).all()

    wait_for(stored, what="MO stored")
    call(lambda: None)  # let the redelivery's writes land too
    assert stored() == [(body, 2)]
    engine.dispose()


def test_bad_requests_name_the_field(start_daemon: Any) -> None:
    running = start_daemon()
    client = running.client
    cases = [
        ({"to": "+48500100200", "from": "Acme"}, "text"),
        ({"to": "48500100200", "from": "Acme", "text": "x"}, "to"),
        ({"to": "+4850010020", "from": "Acme", "text": "x"}, "to"),
        ({"to": "+48500100200", "from": "Shop@1", "text": "x"}, "from"),
        ({"to": "+48500100200", "from": "VeryLongSenderName", "text": "x"}, "from"),
        ({"to": "+48500100200", "from": "Acme", "text": ""}, "text"),
        ({"to": "+48500100200", "from": "Acme", "text": 5}, "text"),
        ({"to": "+48500100200", "from": "Acme", "text": "x" * 2000}, "text"),
        ({"to": "+48500100200", "from": "Acme", "text": "x", "colour": 1}, "colour"),
        ({"to": "+48500100200", "from": "Acme", "text": "x", "params": [1]}, "params"),
        ({"to": "+48500100200", "from": "Acme", "text": "x", "ref_id": 7}, "ref_id"),
    ]
    for body, field in cases:
        status, answer = client.request("POST", "/v1/messages", body)
        assert (status, answer.get("field")) == (400, field), (body, answer)
    status, answer = client.request("POST", "/v1/messages", raw=b"{not json")
    assert status == 400 and "JSON" in answer["error"]
    status, answer = client.request("POST", "/v1/messages", raw=b"[1, 2]")
    assert status == 400
    status, answer = client.request("POST", "/v1/messages", raw=b"x" * 200_000)
    assert status == 413
    status, answer = client.request("GET", "/v1/messages?status=lost")
    assert (status, answer["field"]) == (400, "status")
    status, answer = client.request("GET", "/v1/messages?since=yesterday")
    assert (status, answer["field"]) == (400, "since")
    status, _ = client.request("DELETE", "/v1/messages")
    assert status == 405
    assert running.smsc.submits == []


def test_authentication_and_account_isolation(start_daemon: Any) -> None:
    running = start_daemon()
    status, _ = running.client.request("POST", "/v1/messages", {}, token=None)
    assert status == 401
    status, _ = running.client.request("GET", "/v1/messages", token="wrong-token-123456789")
    assert status == 401
    _, mine = running.client.send()
    other = running.other_client(TOKEN_B)
    status, _ = other.request("GET", f"/v1/messages/{mine['id']}")
    assert status == 404  # not 403: another account's id does not exist for you
    _, page = other.request("GET", "/v1/messages")
    assert page["messages"] == []
    other.close()


def test_insufficient_balance_is_refused_and_nothing_stored(start_daemon: Any) -> None:
    running = start_daemon()
    other = running.other_client(TOKEN_B)  # balance 100
    status, body = other.send(text="x" * 1000)  # 7 parts
    assert status == 201
    for _ in range(13):
        other.send(text="x" * 1000)
    status, body = other.send(text="x" * 1000)
    assert (status, body["field"]) == (402, "balance")
    _, account = other.request("GET", "/v1/account")
    assert account["balance"] == 100 - 14 * 7
    other.close()


def test_list_filters_and_cursor_pages(start_daemon: Any) -> None:
    running = start_daemon()
    client = running.client
    ids = []
    for index in range(7):
        sender = "Shop" if index % 2 else "Bank"
        ids.append(client.send(to=f"+4850010060{index}", sender=sender)[1]["id"])
    seen: list[str] = []
    cursor = None
    while True:
        path = "/v1/messages?limit=3" + (f"&cursor={cursor}" if cursor else "")
        status, page = client.request("GET", path)
        assert status == 200
        seen.extend(m["id"] for m in page["messages"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))  # newest first, no gaps, no repeats
    _, shop = client.request("GET", "/v1/messages?sender=Shop")
    assert {m["from"] for m in shop["messages"]} == {"Shop"} and len(shop["messages"]) == 3
    _, one = client.request("GET", "/v1/messages?recipient=%2B48500100603")
    assert [m["id"] for m in one["messages"]] == [ids[3]]
    _, future = client.request("GET", "/v1/messages?since=2099-01-01T00:00:00Z")
    assert future["messages"] == []
    _, past = client.request("GET", "/v1/messages?until=2000-01-01T00:00:00Z")
    assert past["messages"] == []
    for message_id in ids:
        client.wait_status(message_id, "delivered")
    _, delivered = client.request("GET", "/v1/messages?status=delivered")
    assert len(delivered["messages"]) == 7


def test_health_ready_and_metrics(start_daemon: Any) -> None:
    running = start_daemon()
    client = Client(running.daemon.http_port, token=None)
    assert client.request("GET", "/healthz")[0] == 200
    status, ready = client.request("GET", "/readyz")
    assert status == 200 and ready["smscs"] == {"carrier-a": "bound"}
    _, body = running.client.send()
    running.client.wait_status(body["id"], "delivered")
    status, metrics = client.request("GET", "/metrics")
    assert status == 200
    for name in ('smppd_smsc_bound{smsc="carrier-a"} 1.0',
                 'smppd_pdus_sent_total{command="submit_sm",smsc="carrier-a"} 1.0',
                 'smppd_receipts_total{smsc="carrier-a",status="delivered"} 1.0',
                 'smppd_api_messages_total{result="accepted"} 1.0',
                 "smppd_submit_duration_seconds_count", "smppd_queue_depth",
                 "smppd_window_in_use"):
        assert name in metrics, name
    assert "48500100200" not in metrics  # never a number as a label
    client.close()


def test_smsc_unbind_mid_burst_sends_the_unanswered_again(start_daemon: Any) -> None:
    """Checklist 12: the SMSC unbinds with submits unanswered: unbind_resp is sent,
    nothing is submitted on that bind afterwards, and the unanswered messages go out
    again after the next bind, ending delivered."""
    running = start_daemon()
    smsc = running.smsc
    smsc.behaviour.response_delay = 0.3
    ids = [running.client.send(to=f"+485001007{i:02d}", text=f"burst {i}")[1]["id"]
           for i in range(10)]
    wait_for(lambda: len(smsc.received) >= 10, what="submits in flight")
    first = smsc.connections[0]
    seen = record_commands(first, "submit_sm", "unbind_resp")
    # More work arrives while the SMSC unbinds: it must not go out on that bind.
    more = [running.client.send(to=f"+485001008{i:02d}", text=f"more {i}")[1]["id"]
            for i in range(5)]
    call(smsc.unbind_all)
    smsc.behaviour.response_delay = 0.0
    for message_id in ids + more:
        assert running.client.wait_status(message_id, "delivered", timeout=15)
    assert "unbind_resp" in seen
    after = seen[seen.index("unbind_resp") + 1:]
    assert "submit_sm" not in after, f"submits on the unbound bind: {after}"
    assert first not in smsc.connections


def test_end_to_end_on_postgresql(start_daemon: Any) -> None:
    """The same path with the store on PostgreSQL (where SMPPD_TEST_POSTGRES_URL is set)."""
    from tests.support.faults import fresh_postgres

    running = start_daemon(database=fresh_postgres())
    sent = [running.client.send(to=f"+485001009{i:02d}", text="long text " * 20 * (i % 2 + 1))
            for i in range(6)]
    assert all(status == 201 for status, _ in sent)
    for _, body in sent:
        final = running.client.wait_status(body["id"], "delivered")
        assert len(final["part_list"]) == body["parts"]
    _, page = running.client.request("GET", "/v1/messages?status=delivered&limit=3")
    assert len(page["messages"]) == 3 and page["next_cursor"]


def test_routes_fail_over_and_unrouted_numbers_are_refused(start_daemon: Any) -> None:
    """Two SMSCs on one route, in order of preference: while the first is down the
    second carries the traffic; a number no route covers is refused by name."""
    from smppd.fake_smsc import Behaviour, FakeSmsc

    backup = FakeSmsc(Behaviour())
    port = call(backup.listen)
    try:
        second = {"name": "carrier-b", "host": "127.0.0.1", "port": port.getHost().port,
                  "system_id": "acme", "password": "secret", "window": 20}
        running = start_daemon(extra_smscs=[second],
                               routes=[{"prefix": "+48", "smscs": ["carrier-a", "carrier-b"]}])
        wait_for(lambda: running.daemon.connectors["carrier-b"].bound, what="backup bound")
        _, first = running.client.send(text="via primary")
        running.client.wait_status(first["id"], "delivered")
        assert [m.text for m in running.smsc.messages] == ["via primary"]
        running.smsc.behaviour.bind_status = c.ESME_RBINDFAIL
        call(running.smsc.drop_all)
        wait_for(lambda: not running.daemon.connectors["carrier-a"].bound, what="primary down")
        _, second_message = running.client.send(text="via backup")
        final = running.client.wait_status(second_message["id"], "delivered")
        assert final["part_list"][0]["smsc"] == "carrier-b"
        assert [m.text for m in backup.messages] == ["via backup"]
        status, answer = running.client.send(to="+12025550123")
        assert (status, answer["field"]) == (400, "to") and "no route" in answer["error"]
    finally:
        call(port.stopListening)
        call(backup.drop_all)


def test_an_smsc_a_reload_adds_gets_its_receipt_policy(start_daemon: Any) -> None:
    """It used to get "all" until a restart, whatever its configuration said: the
    policy was set for SMSCs present at start and for those a reload changed only."""
    running = start_daemon()
    daemon = running.daemon
    database = str(daemon.settings.database)
    added = {"name": "carrier-b", "host": "127.0.0.1", "port": running.smsc.port,
             "system_id": "acme", "password": "secret", "receipt_policy": "first"}
    settings = config.parse(settings_dict(database, running.smsc.port, extra_smscs=[added]),
                            "test.yaml")
    changes = call(daemon.reload, settings)
    assert "smsc carrier-b: added" in changes
    assert daemon.applier.receipt_policy["carrier-b"] == "first"
    assert daemon.applier.receipt_policy["carrier-a"] == "all"
