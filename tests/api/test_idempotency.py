"""Idempotency-Key end to end: replays, mismatches, requests in progress, restarts,
and kill -9 between commit and answer (the daemon as a process)."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer

from tests.conftest import call, wait_for
from tests.support.process import DaemonProcess, free_port, post_all, query, write_config
from tests.support.running import TOKEN_A, TOKEN_B

BODY = {"to": "+48500100200", "from": "Acme", "text": "only once"}


def _post(client: Any, path: str, body: Any, key: str | None,
          content_type: str = "application/json", raw: bytes | None = None,
          token: str = TOKEN_A) -> tuple[int, bytes, Any]:
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    client.conn.request("POST", path, body=raw if raw is not None else json.dumps(body),
                        headers=headers)
    response = client.conn.getresponse()
    return response.status, response.read(), response


def test_a_retry_with_the_same_key_is_answered_the_same_and_makes_nothing(
        start_daemon: Any) -> None:
    running = start_daemon()
    client = running.client
    _, before = client.request("GET", "/v1/account")
    status, first, response = _post(client, "/v1/messages", BODY, "order-1")
    assert status == 201 and response.getheader("Idempotent-Replayed") is None
    # Key order and spacing are not the request: the same JSON value is the same.
    again = json.dumps(dict(reversed(list(BODY.items()))), indent=2)
    status, second, response = _post(client, "/v1/messages", None, "order-1", raw=again.encode())
    assert (status, second) == (201, first)
    assert response.getheader("Idempotent-Replayed") == "true"
    _, page = client.request("GET", "/v1/messages")
    assert [m["id"] for m in page["messages"]] == [json.loads(first)["id"]]
    _, after = client.request("GET", "/v1/account")
    assert before["balance"] - after["balance"] == json.loads(first)["points"]
    wait_for(lambda: len(running.smsc.submits) == 1, what="one submit")
    # A quoted (structured-field) key is the same key.
    status, third, _ = _post(client, "/v1/messages", BODY, '"order-1"')
    assert (status, third) == (201, first)
    # Another account's key of the same name is its own.
    other = running.other_client(TOKEN_B)
    status, theirs, _ = _post(other, "/v1/messages", BODY, "order-1", token=TOKEN_B)
    assert status == 201 and json.loads(theirs)["id"] != json.loads(first)["id"]
    other.close()


def test_the_same_key_with_another_body_is_422(start_daemon: Any) -> None:
    running = start_daemon()
    client = running.client
    assert _post(client, "/v1/messages", BODY, "k-2")[0] == 201
    status, body, _ = _post(client, "/v1/messages", dict(BODY, text="something else"), "k-2")
    assert status == 422
    assert json.loads(body)["field"] == "Idempotency-Key"
    _, page = client.request("GET", "/v1/messages")
    assert len(page["messages"]) == 1


def test_bad_keys_are_400_naming_the_header(start_daemon: Any) -> None:
    running = start_daemon()
    for key in ("x" * 256, '""', "  "):
        status, body, _ = _post(running.client, "/v1/messages", BODY, key)
        assert status == 400 and json.loads(body)["field"] == "Idempotency-Key", key
    running.client.conn.putrequest("POST", "/v1/messages")
    payload = json.dumps(BODY).encode()
    for name, value in (("Authorization", f"Bearer {TOKEN_A}"), ("Content-Length",
                        str(len(payload))), ("Idempotency-Key", "ключ".encode())):
        running.client.conn.putheader(name, value)
    running.client.conn.endheaders(payload)
    response = running.client.conn.getresponse()
    assert response.status == 400 and json.loads(response.read())["field"] == "Idempotency-Key"


def test_a_retry_while_the_first_is_in_progress_is_409(start_daemon: Any) -> None:
    running = start_daemon()
    daemon = running.daemon
    held: list[defer.Deferred[Any]] = []
    lookup = daemon.find_idempotency_key

    def slow_lookup(account: Any, key: str) -> defer.Deferred[Any]:
        gate: defer.Deferred[Any] = defer.Deferred()
        held.append(gate)
        return gate.addCallback(lambda _: lookup(account, key))

    daemon.find_idempotency_key = slow_lookup
    first_client = running.client
    answers: list[Any] = []
    first = threading.Thread(target=lambda: answers.append(
        _post(first_client, "/v1/messages", BODY, "slow")))
    first.start()
    wait_for(lambda: held, what="the first request in progress")
    second = running.other_client(TOKEN_A)
    status, body, _ = _post(second, "/v1/messages", BODY, "slow")
    assert status == 409 and json.loads(body)["field"] == "Idempotency-Key"
    call(lambda: held[0].callback(None))
    first.join(10)
    assert answers[0][0] == 201
    daemon.find_idempotency_key = lookup
    status, replay, _ = _post(second, "/v1/messages", BODY, "slow")  # free again: a replay
    assert (status, replay) == (201, answers[0][1])
    second.close()


def test_the_key_outlives_a_restart(start_daemon: Any) -> None:
    running = start_daemon()
    status, first, _ = _post(running.client, "/v1/messages", BODY, "restart-1")
    assert status == 201
    running.client.close()
    call(running.daemon.stop, drain_timeout=2.0)
    again = start_daemon()
    status, second, response = _post(again.client, "/v1/messages", BODY, "restart-1")
    assert (status, second) == (201, first)
    assert response.getheader("Idempotent-Replayed") == "true"


def test_an_answer_lost_after_the_commit_is_replayed_to_the_retry(start_daemon: Any) -> None:
    """The message is committed, then the connection dies before the 201 is written
    (what a kill -9 or a network cut does): the retry gets that 201, not a twin."""
    import http.client

    from smppd.store import operations as ops

    running = start_daemon()
    daemon = running.daemon
    put = daemon.writer.put

    def commit_then_cut(op: Any) -> defer.Deferred[Any]:
        d = put(op)
        if isinstance(op, ops.Accept):
            def cut(result: Any) -> Any:
                for connection in list(daemon.port.factory.connections):
                    connection.transport.abortConnection()
                return result
            d.addCallback(cut)
        return d

    daemon.writer.put = commit_then_cut
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        _post(running.client, "/v1/messages", BODY, "lost-1")
    daemon.writer.put = put
    retry = running.other_client(TOKEN_A)
    status, body, response = _post(retry, "/v1/messages", BODY, "lost-1")
    assert status == 201 and response.getheader("Idempotent-Replayed") == "true"
    _, page = retry.request("GET", "/v1/messages")
    assert [m["id"] for m in page["messages"]] == [json.loads(body)["id"]]
    retry.close()


def _form(boundary: str, csv: bytes, name: str = "spring") -> bytes:
    b = boundary.encode()
    return (b"--" + b + b'\r\nContent-Disposition: form-data; name="name"\r\n\r\n'
            + name.encode() + b"\r\n--" + b + b'\r\nContent-Disposition: form-data; '
            b'name="from"\r\n\r\nAcme\r\n--' + b + b'\r\nContent-Disposition: form-data; '
            b'name="text"\r\n\r\nHi {name}\r\n--' + b + b'\r\nContent-Disposition: form-data;'
            b' filename="list.csv"; name="file"\r\n\r\n' + csv + b"\r\n--" + b + b"--\r\n")


def test_jobs_take_keys_too_json_and_form_uploads(start_daemon: Any) -> None:
    running = start_daemon()
    client = running.client
    job = {"name": "j", "from": "Acme", "text": "Hi {name}",
           "recipients": [{"to": "+48500100201", "name": "Ann"}], "start_at":
           "2099-01-01T00:00:00Z"}
    status, first, _ = _post(client, "/v1/jobs", job, "job-1")
    assert status == 201
    status, second, response = _post(client, "/v1/jobs", job, "job-1")
    assert (status, second) == (201, first)
    assert response.getheader("Idempotent-Replayed") == "true"
    status, body, _ = _post(client, "/v1/jobs", dict(job, name="other"), "job-1")
    assert status == 422 and json.loads(body)["field"] == "Idempotency-Key"
    # A form upload: a retry writes another boundary; the fields and file are the same.
    csv = b"to,name\r\n+48500100202,Bo\r\n+48500100203,Cy\r\n"
    status, made, _ = _post(client, "/v1/jobs", None, "job-2", "multipart/form-data; "
                            "boundary=one", _form("one", csv))
    assert status == 201 and json.loads(made)["messages"] == 2
    status, replay, response = _post(client, "/v1/jobs", None, "job-2", "multipart/form-data;"
                                     " boundary=two", _form("two", csv))
    assert (status, replay) == (201, made) and response.getheader("Idempotent-Replayed")
    status, _, _ = _post(client, "/v1/jobs", None, "job-2", "multipart/form-data; "
                         "boundary=two", _form("two", csv + b"+48500100204,Di\r\n"))
    assert status == 422
    # The message key space is the same: a job's key on /v1/messages is another request.
    assert _post(client, "/v1/messages", BODY, "job-1")[0] == 422
    jobs = query(running.path / "smppd.db", "SELECT count(*) FROM jobs")
    assert jobs == [(2,)]


# kill -9 between commit and answer -----------------------------------------------


def _post_keyed(port: int, bodies: dict[str, bytes], answers: dict[str, Any],
                stop: threading.Event) -> None:
    """POST every body with its key; key -> (id, replayed?) for each 201."""
    keys = list(bodies)

    def answered(index: int, status: bytes, head: bytes, data: bytes) -> bool:
        if b" 201 " in status:
            answers[keys[index]] = (json.loads(data)["id"], b"idempotent-replayed:" in head)
        return stop.is_set()

    asyncio.run(post_all(port, [(bodies[key], b"Idempotency-Key: " + key.encode() + b"\r\n")
                                for key in keys], 20, answered))


def test_kill_9_between_commit_and_answer_then_retries_make_nothing_twice(
        smsc: Any, tmp_path: Path) -> None:
    http_port = free_port()
    config = write_config(tmp_path, smsc.port, http_port, log_level="warning")
    db = tmp_path / "smppd.db"
    bodies = {f"k-{uuid.uuid4().hex}": json.dumps({"to": f"+4850{i:07d}", "from": "Acme",
                                                  "text": f"kill {i}"}).encode()
              for i in range(3000)}
    first: dict[str, Any] = {}
    daemon, restarted = DaemonProcess(config, http_port), DaemonProcess(config, http_port)
    stop = threading.Event()
    sender = threading.Thread(target=_post_keyed, args=(http_port, bodies, first, stop))
    try:
        daemon.start()
        sender.start()
        wait_for(lambda: len(first) >= 500, timeout=60, what="the burst under way")
        daemon.kill()
        stop.set()
        sender.join(60)
        restarted.start()
        retried: dict[str, Any] = {}
        _post_keyed(http_port, bodies, retried, threading.Event())
    finally:
        stop.set()
        daemon.stop()
        restarted.stop()
    assert len(retried) == len(bodies)  # every retry answered 201
    for key, (message_id, _) in first.items():
        assert retried[key] == (message_id, True)  # answered before: the same answer
    lost_answers = [key for key in bodies if key not in first and retried[key][1]]
    print(f"{len(first)} answered before the kill; {len(lost_answers)} committed without "
          "their answer reaching the client, then replayed")
    rows = query(db, "SELECT count(*), count(DISTINCT text), sum(points) FROM messages")
    assert rows == [(len(bodies), len(bodies), len(bodies))]  # each once, charged once
    assert query(db, "SELECT balance FROM accounts") == [(10_000_000 - len(bodies),)]
