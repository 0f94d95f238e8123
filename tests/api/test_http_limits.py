"""The HTTP listener under attack, over real sockets to a running daemon: unread
pipelining, slowloris, idle sockets, the connection cap, token guessing, Upgrade,
%2F in ids. Counts are bounded (a few hundred sockets) and timeouts short."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import selectors
import socket
import time
from typing import Any

import pytest

from tests.conftest import call, wait_for
from tests.support.running import TOKEN_A, Client


def _http(**limits: Any) -> dict[str, Any]:
    return {"listen": "127.0.0.1:0", **limits}


def _factory(running: Any) -> Any:
    return running.daemon.port.factory


def _connect(port: int, timeout: float = 10) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return sock


def _read_all(sock: socket.socket, timeout: float = 10) -> bytes:
    """Everything until the server closes (a reset counts as a close)."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _closed_by_server(socks: list[socket.socket], timeout: float) -> int:
    """Waits until the server closed each socket (EOF or reset); returns how many
    are still open at the timeout. What a socket received is dropped."""
    selector = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    open_ = set(socks)
    deadline = time.monotonic() + timeout
    while open_ and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.2):
            sock = key.fileobj
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, BlockingIOError):
                data = b""
            if not data:
                selector.unregister(sock)
                open_.discard(sock)
    selector.close()
    return len(open_)


def _statuses(data: bytes) -> list[int]:
    return [int(s) for s in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


def test_unread_pipelined_requests_are_held_back_then_dropped(start_daemon: Any) -> None:
    running = start_daemon(http=_http(max_pipelined=4, idle_timeout=2))
    factory = _factory(running)
    request = b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"
    attacker = socket.socket()
    attacker.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    attacker.connect(("127.0.0.1", running.daemon.http_port))
    attacker.settimeout(3)
    flood = request * (2 * 1024 * 1024 // len(request))  # 2 MB: 58,000 requests
    sent = 0
    try:
        while sent < len(flood):
            sent += attacker.send(flood[sent:sent + 65536])
    except TimeoutError:
        pass  # the daemon stopped reading: TCP pushes back on us
    wanted = len(flood) // len(request)

    def held() -> Any:
        connections = [c for c in factory.connections if c.answered or c.pending]
        return connections[0] if connections and connections[0].reading_paused else None

    protocol = wait_for(held, what="reading paused on the flooding connection")
    answered = call(lambda: protocol.answered)
    print(f"sent {sent} bytes ({wanted} requests), {answered} answered")
    assert answered < wanted // 10, (answered, wanted)
    assert call(lambda: len(protocol.pending)) <= 4
    assert call(lambda: len(protocol.unparsed)) <= 64 * 1024 + 8 * 1024
    # Meanwhile everyone else is served.
    health = Client(running.daemon.http_port, token=None)
    assert health.request("GET", "/healthz")[0] == 200
    # The attacker reads nothing: after idle_timeout it is dropped, answers and all.
    wait_for(lambda: factory.stats.closed.get("send_timeout", 0) == 1, timeout=15,
             what="the flooding connection dropped")
    wait_for(lambda: protocol not in factory.connections, what="connection forgotten")
    attacker.close()
    health.close()  # idle past idle_timeout itself: a new connection
    health = Client(running.daemon.http_port, token=None)
    assert health.request("GET", "/healthz")[0] == 200
    health.close()


def test_slowloris_connections_get_408_after_the_header_timeout(start_daemon: Any) -> None:
    running = start_daemon(http=_http(header_timeout=2))
    port = running.daemon.http_port
    socks = []
    for _ in range(200):
        socks.append(_connect(port))
        socks[-1].sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
    started = time.monotonic()
    for _ in range(3):  # a header line every 0.3 s, never the blank line
        for sock in socks:
            with contextlib.suppress(OSError):  # already closed by the server
                sock.sendall(b"X-Slow: 1\r\n")
        time.sleep(0.3)
    answers = []
    for sock in socks:
        answers.append(_read_all(sock))
        sock.close()
    held = time.monotonic() - started
    assert all(_statuses(answer) == [408] for answer in answers), answers[:3]
    assert all(b'"error":"the request head did not arrive in time"' in a for a in answers)
    assert held < 30  # bounded: they were closed, not left to the test's own timeout
    wait_for(lambda: not _factory(running).connections, what="all closed")
    assert _factory(running).stats.closed["header_timeout"] == 200


def test_idle_sockets_are_closed_and_never_lock_out_a_new_client(start_daemon: Any) -> None:
    """More idle sockets than max_connections: the longest idle make room for new
    ones, a real client is answered while they are held, and after the timeout
    none is left."""
    running = start_daemon(http=_http(max_connections=50, header_timeout=1.5))
    port = running.daemon.http_port
    socks = [_connect(port) for _ in range(300)]
    client = Client(port, token=None)
    assert client.request("GET", "/healthz")[0] == 200
    assert call(lambda: len(_factory(running).connections)) <= 50
    assert _closed_by_server(socks, timeout=15) == 0
    for sock in socks:
        sock.close()
    factory = _factory(running)
    # Each socket past the 50th made room by evicting one (or found one timed out).
    made_room = factory.stats.evicted + factory.stats.closed.get("idle_timeout", 0)
    assert made_room >= 300 - 1 and factory.stats.refused == 0
    assert client.request("GET", "/healthz")[0] == 200
    client.close()


def test_at_the_cap_with_every_connection_busy_a_newcomer_gets_503(
        start_daemon: Any) -> None:
    running = start_daemon(http=_http(max_connections=5, body_timeout=3, body_min_rate=1))
    port = running.daemon.http_port
    busy = [_connect(port) for _ in range(5)]
    for sock in busy:  # each part way through a request body: neither idle nor stuck
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n"
                     b"\r\n{")
    factory = _factory(running)
    wait_for(lambda: len(factory.connections) == 5 and not factory.idle,
             what="5 connections, each mid-request")
    newcomer = _connect(port)
    newcomer.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    answer = _read_all(newcomer)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ") and b"Connection: close" in head
    assert b"Retry-After: 1" in head
    assert json.loads(body) == {"error": "too many connections; retry shortly"}
    newcomer.close()
    for sock in busy:  # the body timeout frees the slots
        assert _statuses(_read_all(sock)) == [408]
        sock.close()
    client = Client(port, token=None)
    assert client.request("GET", "/healthz")[0] == 200
    client.close()


def test_at_the_cap_a_stuck_request_head_makes_room_for_a_new_client(
        start_daemon: Any) -> None:
    running = start_daemon(http=_http(max_connections=5, header_timeout=30))
    port = running.daemon.http_port
    slow = [_connect(port) for _ in range(5)]
    for sock in slow:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: 1\r\n")  # and never the end
    factory = _factory(running)
    wait_for(lambda: len(factory.heads) == 5, what="5 connections stuck in a head")
    time.sleep(1.2)  # past the grace a real client needs to send a head
    client = Client(port, token=None)
    assert client.request("GET", "/healthz")[0] == 200
    client.close()
    assert _closed_by_server(slow, timeout=10) == 4  # the longest stuck made room
    assert factory.stats.evicted == 1 and factory.stats.refused == 0
    for sock in slow:
        sock.close()


def test_token_guessing_is_throttled_per_address_and_logged_rate_limited(
        start_daemon: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="smppd.api")
    running = start_daemon(http=_http(auth_failures=5, auth_window=60))
    client = running.client
    guesses = [f"guess-{n:06d}-abcdefghij" for n in range(40)]
    answers = []
    for guess in guesses:
        client.conn.request("GET", "/v1/account", headers={"Authorization": f"Bearer {guess}"})
        response = client.conn.getresponse()
        answers.append((response.status, response.getheader("Retry-After"),
                        json.loads(response.read())))
    assert [status for status, _, _ in answers] == [401] * 5 + [429] * 35
    retry_after = int(answers[-1][1])
    assert 1 <= retry_after <= 60
    assert "too many failed authentications" in answers[-1][2]["error"]
    # Locked out means the token is not even looked at: the right one gets 429 too.
    status, _ = client.request("GET", "/v1/account")
    assert status == 429
    # No answer from another address was affected: the lockout is per address.
    assert call(lambda: running.daemon.port.factory.handler.__self__.lockout.retry_after(
        "127.0.0.2")) is None
    lines = [r.getMessage() for r in caplog.records if "authentication" in r.getMessage()]
    assert 2 <= len(lines) <= 6  # samples, not one line per guess
    assert not any(guess in caplog.text for guess in guesses)  # never the token
    _, metrics = Client(running.daemon.http_port, token=None).request("GET", "/metrics")
    assert "smppd_api_auth_failures_total 5.0" in metrics
    assert "smppd_api_auth_throttled_total 36.0" in metrics


def test_an_upgrade_request_gets_exactly_one_answer(start_daemon: Any) -> None:
    running = start_daemon()
    sock = _connect(running.daemon.http_port)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
                 b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n"
                 b"\x81\x85\x00\x00\x00\x00hello")
    answer = _read_all(sock)
    sock.close()
    assert _statuses(answer) == [200]
    assert answer.endswith(b'{"status":"ok"}')


def test_an_encoded_slash_stays_inside_its_segment(start_daemon: Any) -> None:
    """/v1/jobs/ID%2Fstop is a GET-only job id, never the stop action."""
    running = start_daemon()
    client = running.client
    status, job = client.request("POST", "/v1/jobs", {
        "name": "later", "from": "Acme", "text": "hi", "recipients": ["+48500100200"],
        "start_at": "2099-01-01T00:00:00Z"})
    assert status == 201, job
    status, answer = client.request("POST", f"/v1/jobs/{job['id']}%2Fstop")
    assert status == 405, answer
    status, answer = client.request("GET", f"/v1/jobs/{job['id']}%2Fstop")
    assert (status, answer.get("field")) == (404, "id")
    status, found = client.request("GET", f"/v1/jobs/{job['id']}")
    assert status == 200 and found["state"] == "scheduled"
    status, answer = client.request("GET", "/v1%2Fmessages")
    assert status == 404 and answer["error"] == "no such path"


def test_a_request_pipelined_after_connection_close_is_never_handled(
        start_daemon: Any) -> None:
    running = start_daemon()
    body = json.dumps({"to": "+48500100200", "from": "Acme", "text": "x"}).encode()
    post = (b"POST /v1/messages HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
            + TOKEN_A.encode() + b"\r\nContent-Length: %d\r\n" % len(body))
    sock = _connect(running.daemon.http_port)
    sock.sendall(post + b"Connection: close\r\n\r\n" + body + post + b"\r\n" + body)
    answer = _read_all(sock)
    sock.close()
    assert _statuses(answer) == [201]
    _, page = running.client.request("GET", "/v1/messages")
    assert len(page["messages"]) == 1


def test_a_reload_gives_new_connections_the_new_limits(start_daemon: Any) -> None:
    from smppd import config
    from tests.support.running import settings_dict

    running = start_daemon()
    daemon = running.daemon
    data = settings_dict(daemon.settings.database, running.smsc.port,
                         http=_http(header_timeout=1, auth_failures=2, max_body_bytes=2048))
    changes = call(daemon.reload, config.parse(data, "test.yaml"))
    assert "http: limits updated (new connections)" in changes
    sock = _connect(daemon.http_port)
    sock.sendall(b"GET /healthz HTTP/1.1\r\n")
    assert _statuses(_read_all(sock)) == [408]  # the new 1 s header timeout
    sock.close()
    status, _ = running.client.request("POST", "/v1/messages", raw=b"x" * 3000)
    assert status == 413
    for _ in range(2):
        running.client.request("GET", "/v1/account", token="wrong-token-0123456789")
    assert running.client.request("GET", "/v1/account")[0] == 429
