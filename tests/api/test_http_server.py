"""The HTTP/1.1 layer against malformed and unusual input over a real socket."""

from __future__ import annotations

import json
import socket
from typing import Any

from tests.support.running import TOKEN_A


def _raw(port: int, data: bytes, read_until_close: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if not read_until_close:
                break
        return b"".join(chunks)


def _post(body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST /v1/messages HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
            + TOKEN_A.encode() + b"\r\nContent-Length: %d\r\n" % len(body) + extra
            + b"\r\n" + body)


def test_garbage_gets_400_and_the_connection_closes(start_daemon: Any) -> None:
    running = start_daemon()
    answer = _raw(running.daemon.http_port, b"\x16\x03\x01 not http at all\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in answer
    # The daemon is fine afterwards.
    assert running.client.request("GET", "/healthz")[0] == 200


def test_pipelined_requests_are_answered_in_order(start_daemon: Any) -> None:
    running = start_daemon()
    bodies = [json.dumps({"to": "+48500100200", "from": "Acme", "text": f"pipe {i}"}).encode()
              for i in range(5)]
    data = b"".join(_post(body) for body in bodies[:-1])
    data += _post(bodies[-1], b"Connection: close\r\n")
    answer = _raw(running.daemon.http_port, data)
    assert answer.count(b"HTTP/1.1 201 Created") == 5
    ids = [json.loads(part.split(b"\r\n\r\n", 1)[1].split(b"HTTP/1.1")[0])["id"]
           for part in answer.split(b"HTTP/1.1 201 Created")[1:]]
    assert ids == sorted(ids)  # ids are time-ordered: answers came in request order


def test_chunked_body_and_100_continue(start_daemon: Any) -> None:
    running = start_daemon()
    body = json.dumps({"to": "+48500100200", "from": "Acme", "text": "chunked"}).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    request = (b"POST /v1/messages HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
               + TOKEN_A.encode() + b"\r\nTransfer-Encoding: chunked\r\n"
               b"Expect: 100-continue\r\nConnection: close\r\n\r\n" + chunked)
    answer = _raw(running.daemon.http_port, request)
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created")


def test_oversized_chunked_body_is_413(start_daemon: Any) -> None:
    running = start_daemon()
    chunk = b"x" * 40_000
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
    request = (b"POST /v1/messages HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
               + TOKEN_A.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    answer = _raw(running.daemon.http_port, request)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in answer


def test_huge_headers_are_refused(start_daemon: Any) -> None:
    running = start_daemon()
    request = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    assert _raw(running.daemon.http_port, request).startswith(b"HTTP/1.1 400 ")


def test_http_1_0_closes_after_the_answer(start_daemon: Any) -> None:
    running = start_daemon()
    answer = _raw(running.daemon.http_port, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in answer
