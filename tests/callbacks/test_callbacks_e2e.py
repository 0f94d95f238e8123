"""Callbacks end to end: messages sent over real HTTP and SMPP, their events POSTed to
real HTTP receivers on 127.0.0.1, verified as Standard Webhooks; failures, back-off,
isolation between accounts and endpoints, and what the API shows of it."""

from __future__ import annotations

import http.client
import os
import signal
import time
from typing import Any

from standardwebhooks import Webhook

from tests.conftest import call
from tests.support.polling import until
from tests.support.receiver import Receiver, raw_signature, self_signed
from tests.support.running import Client

FAST = {"retry": {"initial": 0.2, "max": 0.5}, "timeout": 2, "concurrency": 4}


def register(client: Client, url: str, **body: Any) -> dict[str, Any]:
    status, answer = client.request("POST", "/v1/callbacks", {"url": url, **body})
    assert status == 201, answer
    return answer


def wait_accepted(receiver: Receiver, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.accepted) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(receiver.accepted)} of {count} events arrived; "
                                 f"refused: {receiver.refused[:2]}")
        time.sleep(0.02)


def post_raw(port: int, headers: dict[str, str], body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/hook", body=body, headers=headers)
    status = conn.getresponse().status
    conn.close()
    return status


def test_final_status_is_pushed_signed_and_a_replay_is_refused(start_daemon: Any) -> None:
    receiver = Receiver(tolerance=1.0).start()
    try:
        running = start_daemon(callbacks=FAST)
        endpoint = register(running.client, receiver.url, events=["final"])
        assert endpoint["secret"].startswith("whsec_") and endpoint["default"] is True
        receiver.secret = endpoint["secret"]
        status, sent = running.client.send(text="hello", ref_id="order-77",
                                           params={"shop": "north", "cart": "ł€"},
                                           partner="retail-12")
        assert status == 201, sent
        wait_accepted(receiver, 1)
        delivery = next(iter(receiver.accepted.values()))
        headers = delivery.headers
        # The signature checks out with the standardwebhooks package and by hand.
        event = Webhook(endpoint["secret"]).verify(delivery.body, headers)
        assert headers["webhook-signature"] == raw_signature(
            endpoint["secret"], headers["webhook-id"], headers["webhook-timestamp"],
            delivery.body)
        assert headers["webhook-id"] == f"{sent['id']}-delivered"
        assert event["type"] == "message.final"
        data = event["data"]
        assert data["id"] == sent["id"] and data["status"] == "delivered"
        assert data["ref_id"] == "order-77" and data["partner"] == "retail-12"
        assert data["params"] == {"shop": "north", "cart": "ł€"}
        assert data["parts"] == 1 and data["to"] == "+48500100200" and data["at"]
        assert data["error"] is None
        # A replay of the same request once its timestamp is old is refused.
        time.sleep(1.5)
        assert post_raw(receiver.port, headers, delivery.body) == 400
        assert receiver.refused[-1][1] == "timestamp outside the tolerance: a replay"
        # A body changed in transit is refused too.
        tampered = delivery.body.replace(b"delivered", b"expired!!")
        fresh = dict(headers, **{"webhook-timestamp": str(int(time.time()))})
        assert post_raw(receiver.port, fresh, tampered) == 400
        assert len(receiver.accepted) == 1
    finally:
        receiver.stop()


def test_status_subscription_gets_every_change_and_a_named_endpoint_wins(
        start_daemon: Any) -> None:
    default, named = Receiver().start(), Receiver().start()
    try:
        running = start_daemon(callbacks=FAST)
        register(running.client, default.url, events=["status"], default=True)
        other = register(running.client, named.url, events=["status"], default=False)
        _, first = running.client.send(text="to the default")
        _, second = running.client.send(text="to the named one", callback=other["id"])
        wait_accepted(default, 2)
        wait_accepted(named, 2)
        def kinds(receiver: Receiver) -> list[tuple[str, str]]:
            return sorted((d.event["data"]["id"], d.event["data"]["status"])
                          for d in receiver.accepted.values())
        assert kinds(default) == [(first["id"], "delivered"), (first["id"], "submitted")]
        assert kinds(named) == [(second["id"], "delivered"), (second["id"], "submitted")]
        types = {d.event["data"]["status"]: d.event["type"] for d in default.accepted.values()}
        assert types == {"submitted": "message.status", "delivered": "message.final"}
        # A message naming an endpoint that is not the account's is refused.
        status, body = running.client.send(callback="0" * 32)
        assert status == 400 and body["field"] == "callback"
    finally:
        default.stop()
        named.stop()


def test_failing_endpoint_is_retried_then_visible_as_failed(start_daemon: Any) -> None:
    receiver = Receiver(status=500).start()
    try:
        running = start_daemon(callbacks={**FAST, "max_age": 2})
        endpoint = register(running.client, receiver.url, events=["final"])
        _, sent = running.client.send()
        path = f"/v1/callbacks/{endpoint['id']}/deliveries?state=failed"
        failed = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status, body = running.client.request("GET", path)
            assert status == 200, body
            if body["deliveries"]:
                failed = body["deliveries"][0]
                break
            time.sleep(0.1)
        assert failed is not None, "the event never became failed"
        assert failed["message_id"] == sent["id"] and failed["state"] == "failed"
        assert failed["attempts"] >= 2, failed  # retried with back-off before giving up
        assert failed["last_error"].startswith("gave up: HTTP 500"), failed
        assert failed["last_http_status"] == 500
        assert len(receiver.requests) == failed["attempts"]
        status, listed = running.client.request("GET", "/v1/callbacks")
        assert listed["callbacks"][0]["failed"] == 1 and "secret" not in listed["callbacks"][0]
    finally:
        receiver.stop()


def test_receiver_down_then_back_gets_every_event(start_daemon: Any) -> None:
    receiver = Receiver().start()
    port = receiver.port
    try:
        running = start_daemon(callbacks=FAST)
        register(running.client, receiver.url, events=["final"])
        receiver.stop()  # down: connection refused
        ids = [running.client.send(to=f"+4850010{i:04d}")[1]["id"] for i in range(30)]
        for message_id in ids:
            running.client.wait_status(message_id, "delivered")
        time.sleep(1.0)  # a few failed probes and back-off while it is down
        receiver = Receiver(port=port).start()  # back, on the same URL
        wait_accepted(receiver, len(ids))
        assert {d.event["data"]["id"] for d in receiver.accepted.values()} == set(ids)
    finally:
        receiver.stop()


def test_accounts_and_endpoints_are_isolated(start_daemon: Any) -> None:
    mine, theirs = Receiver().start(), Receiver(delay=1.5).start()
    try:
        running = start_daemon(callbacks=FAST)
        other = running.other_client()
        endpoint = register(running.client, mine.url, events=["final"])
        their_endpoint = register(other, theirs.url, events=["final"])
        # Another account's endpoints are invisible and untouchable.
        _, listed = other.request("GET", "/v1/callbacks")
        assert [e["id"] for e in listed["callbacks"]] == [their_endpoint["id"]]
        status, _ = other.request("GET", f"/v1/callbacks/{endpoint['id']}/deliveries")
        assert status == 404
        status, _ = other.request("DELETE", f"/v1/callbacks/{endpoint['id']}")
        assert status == 404
        status, body = other.send(callback=endpoint["id"])
        assert status == 400 and body["field"] == "callback"
        # A slow customer endpoint does not hold back another's callbacks.
        for i in range(8):
            other.send(to=f"+4850020{i:04d}")
        started = time.monotonic()
        ids = [running.client.send(to=f"+4850030{i:04d}")[1]["id"] for i in range(10)]
        wait_accepted(mine, len(ids), timeout=10)
        mine_took = time.monotonic() - started
        assert {d.event["data"]["id"] for d in mine.accepted.values()} == set(ids)
        assert len(theirs.accepted) < 8, "the slow receiver should still be busy"
        print(f"\nisolation: 10 events to a fast receiver in {mine_took:.2f} s while a "
              f"1.5 s receiver had {len(theirs.accepted)} of 8")
        # Each account sees only its own events.
        _, mine_listed = running.client.request(
            "GET", f"/v1/callbacks/{endpoint['id']}/deliveries")
        assert {d["message_id"] for d in mine_listed["deliveries"]} == set(ids)
    finally:
        mine.stop()
        theirs.stop()


def test_endpoint_api_refuses_bad_input_and_deletes(start_daemon: Any) -> None:
    running = start_daemon(callbacks=FAST)
    client = running.client
    for body, field in [({"url": "ftp://x.example/"}, "url"), ({}, "url"),
                        ({"url": "https://x.example/", "events": ["nope"]}, "events"),
                        ({"url": "https://x.example/", "events": []}, "events"),
                        ({"url": "https://x.example/", "secret": "abc"}, "secret"),
                        ({"url": "https://x.example/", "secret": "whsec_!!"}, "secret"),
                        ({"url": "https://x.example/", "default": "yes"}, "default"),
                        ({"url": "https://x.example/", "extra": 1}, "extra"),
                        ({"url": "http:///nohost"}, "url")]:
        status, answer = client.request("POST", "/v1/callbacks", body)
        assert status == 400 and answer["field"] == field, (body, answer)
    mine = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
    created = register(client, "https://x.example/hook", secret=mine)
    assert created["secret"] == mine
    status, answer = client.request("DELETE", f"/v1/callbacks/{created['id']}")
    assert status == 200 and answer == {"id": created["id"], "deleted": True}
    status, _ = client.request("DELETE", f"/v1/callbacks/{created['id']}")
    assert status == 404
    status, answer = client.request("GET", "/v1/callbacks")
    assert answer == {"callbacks": []}
    status, answer = client.request("POST", "/v1/callbacks/secret")
    assert status == 201 and answer["secret"].startswith("whsec_")
    status, answer = client.request("GET", "/v1/callbacks/" + "0" * 32 + "/deliveries?state=x")
    assert status == 400 and answer["field"] == "state"


def test_metrics_show_deliveries_and_depth_without_urls(start_daemon: Any) -> None:
    receiver = Receiver().start()
    try:
        running = start_daemon(callbacks=FAST)
        register(running.client, receiver.url, events=["final"])
        running.client.send()
        wait_accepted(receiver, 1)

        def metrics() -> str:
            conn = http.client.HTTPConnection("127.0.0.1", running.daemon.http_port,
                                              timeout=5)
            try:
                conn.request("GET", "/metrics")
                return conn.getresponse().read().decode()
            finally:
                conn.close()

        # The receiver has the POST; the daemon counts it once it has read the answer.
        delivered = 'smppd_callback_deliveries_total{result="delivered"} 1.0'
        until(lambda: delivered in metrics(), 20, "the delivery counted")
        text = metrics()
        assert 'smppd_callback_outbox_depth{account="acme"}' in text
        assert "127.0.0.1" not in text and "/hook" not in text
    finally:
        receiver.stop()


def test_https_is_verified_against_the_system_or_the_configured_ca(
        start_daemon: Any, tmp_path: Any) -> None:
    cert, key = self_signed(tmp_path)
    receiver = Receiver().start(tls=(cert, key))
    url = f"https://127.0.0.1:{receiver.port}/hook"
    try:
        # The system's trust store does not know the receiver's certificate.
        running = start_daemon(callbacks=FAST)
        endpoint = register(running.client, url, events=["final"])
        running.client.send()
        path = f"/v1/callbacks/{endpoint['id']}/deliveries?state=pending"
        deadline = time.monotonic() + 20
        while True:
            _, body = running.client.request("GET", path)
            tried = [d for d in body["deliveries"] if d["attempts"]]
            if tried:
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.1)
        assert tried[0]["last_error"].startswith("TLS"), tried[0]
        assert receiver.accepted == {}
        running.client.close()
        call(running.daemon.stop, drain_timeout=1.0)
        # Trusting its CA (callbacks.ca_file), the same event goes through.
        again = start_daemon(callbacks={**FAST, "ca_file": cert})
        wait_accepted(receiver, 1)
        assert again.daemon.readiness()[0]
    finally:
        receiver.stop()


def test_an_endpoint_slower_than_the_timeout_is_a_failed_attempt(start_daemon: Any) -> None:
    receiver = Receiver(delay=3.0).start()
    try:
        running = start_daemon(callbacks={**FAST, "timeout": 0.5})
        endpoint = register(running.client, receiver.url, events=["final"])
        running.client.send()
        path = f"/v1/callbacks/{endpoint['id']}/deliveries?state=pending"
        deadline = time.monotonic() + 20
        while True:
            _, body = running.client.request("GET", path)
            tried = [d for d in body["deliveries"] if d["attempts"]]
            if tried:
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.1)
        assert tried[0]["last_error"] == "no answer within 0.5 s", tried[0]
    finally:
        receiver.stop()


def test_a_worker_that_dies_is_replaced_and_its_events_still_arrive(start_daemon: Any) -> None:
    """The drainer's process (callbacks.process, the default) killed with -9: the daemon
    starts another, which sends what is pending; sending never depended on it."""
    receiver = Receiver().start()
    try:
        running = start_daemon(callbacks=FAST)
        worker = running.daemon.callbacks.worker
        assert worker is not None
        register(running.client, receiver.url, events=["final"])
        until(lambda: worker.running and worker.pid is not None, 10, "the worker spawned")
        first = worker.pid
        # Once ready, it runs on the CPU the daemon leaves (smppd.callbacks.priority).
        until(lambda: os.sched_getscheduler(first) == os.SCHED_IDLE
              and os.getpriority(os.PRIO_PROCESS, first) == 19, 10, "SCHED_IDLE, nice 19")
        os.kill(first, signal.SIGKILL)
        ids = [running.client.send(to=f"+4850020{i:04d}")[1]["id"] for i in range(5)]
        for message_id in ids:
            running.client.wait_status(message_id, "delivered")
        wait_accepted(receiver, len(ids))
        assert {d.event["data"]["id"] for d in receiver.accepted.values()} == set(ids)
        assert worker.pid != first and worker.running
    finally:
        receiver.stop()


def test_no_endpoint_no_drainer_process_until_the_first_is_made(start_daemon: Any) -> None:
    """A daemon without callback endpoints spawns no drainer process (its start is a CPU
    second, its reads a quarter of a CPU second an idle minute); the first endpoint
    made starts it, and its events arrive."""
    receiver = Receiver().start()
    try:
        running = start_daemon(callbacks=FAST)
        worker = running.daemon.callbacks.worker
        assert worker is not None
        _, before = running.client.send()  # no endpoint: no event is written for it
        running.client.wait_status(before["id"], "delivered")
        assert not worker.running and worker.pid is None
        register(running.client, receiver.url, events=["final"])
        until(lambda: worker.running, 10, "the worker spawned for the first endpoint")
        _, sent = running.client.send()
        wait_accepted(receiver, 1)
        assert [d.event["data"]["id"] for d in receiver.accepted.values()] == [sent["id"]]
    finally:
        receiver.stop()


def test_callbacks_can_run_in_the_daemon(start_daemon: Any) -> None:
    """callbacks.process: false keeps the drainer in the daemon's process."""
    receiver = Receiver().start()
    try:
        running = start_daemon(callbacks={**FAST, "process": False})
        assert running.daemon.callbacks.worker is None
        register(running.client, receiver.url, events=["final"])
        _, sent = running.client.send()
        wait_accepted(receiver, 1)
        assert next(iter(receiver.accepted.values())).event["data"]["id"] == sent["id"]
    finally:
        receiver.stop()
