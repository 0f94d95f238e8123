"""Whatever arrives over HTTP, the daemon answers 2xx or 4xx: never a 500, never a
503 while its store is up. Hypothesis writes the requests; one running daemon
answers them over one keep-alive connection. Plus the cases that once failed."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as s

from tests.support.running import TOKEN_A


class RawClient:
    """Sends requests byte for byte (http.client refuses some of what a fuzzer
    writes) and reads each answer with http.client's parser."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None

    def request(self, method: bytes, target: bytes, body: bytes = b"",
                headers: dict[bytes, bytes] | None = None) -> tuple[int, bytes]:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=15)
        head = [method + b" " + target + b" HTTP/1.1", b"Host: t",
                b"Content-Length: %d" % len(body)]
        head.extend(name + b": " + value for name, value in (headers or {}).items())
        self.sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
        response = http.client.HTTPResponse(self.sock, method=method.decode())
        response.begin()
        data = response.read()
        if response.will_close:
            self.close()
        return response.status, data

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _nested(depth: int, key: str = "params") -> bytes:
    return (b'{"to": "+48500100200", "from": "Acme", "text": "x", "' + key.encode()
            + b'": ' + b'{"a": [' * depth + b"1" + b"]}" * depth + b"}")


def test_the_cases_that_once_failed(start_daemon: Any) -> None:
    running = start_daemon()
    client = RawClient(running.daemon.http_port)
    auth = {b"Authorization": b"Bearer " + TOKEN_A.encode()}
    for depth in (100, 1000, 5000, 7000):  # up to 63 KB, under max_body_bytes
        status, body = client.request(b"POST", b"/v1/messages", _nested(depth), auth)
        assert status == 400 and json.loads(body)["field"] == "params", body
    job = (b'{"name": "n", "from": "Acme", "text": "t", "recipients": ' + b"[" * 20_000
           + b"]" * 20_000 + b"}")
    status, body = client.request(b"POST", b"/v1/jobs", job, auth)
    assert status == 400 and json.loads(body)["field"] == "recipients", body
    for limit in ("²", "١", "٣٠", "１"):
        status, body = client.request(b"GET", b"/v1/messages?limit=" + quote(limit).encode(),
                                      headers=auth)
        assert status == 400 and json.loads(body)["field"] == "limit", (limit, body)
    status, body = client.request(b"GET", b"/v1/messages?limit=1", headers=auth)
    assert status == 200
    client.close()


_SEGMENT = (s.sampled_from(["v1", "messages", "jobs", "account", "pause", "resume", "stop",
                            "healthz", "readyz", "", "..", "0" * 32, "%2F", "%00", "%ff"])
            | s.text(max_size=12).map(lambda t: quote(t, safe="")))
_QUERY_KEY = s.sampled_from(["limit", "cursor", "status", "since", "until", "recipient",
                             "sender", "job", "x"])
_QUERY_VALUE = s.text(max_size=12) | s.sampled_from(["²", "١", "0", "1001", "nan", "1e9",
                                                     "2026-11-01T00:00:00Z", "+48500100200"])
_LEAF = s.none() | s.booleans() | s.integers() | s.floats() | s.text(max_size=16)
_JSON = s.recursive(_LEAF, lambda inner: s.lists(inner, max_size=3)
                    | s.dictionaries(s.text(max_size=6), inner, max_size=3), max_leaves=10)
_FIELDS = s.sampled_from(["to", "from", "text", "ref_id", "params", "name", "recipients",
                          "start_at", "throughput"])
_BODY = (s.dictionaries(_FIELDS, _JSON | s.just("+48500100200") | s.just("Acme"), max_size=6)
         .map(lambda d: json.dumps(d).encode())
         | s.binary(max_size=200)
         | s.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n + b"]" * n))


@given(method=s.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"HEAD"]),
       segments=s.lists(_SEGMENT, max_size=4),
       query=s.lists(s.tuples(_QUERY_KEY, _QUERY_VALUE), max_size=3),
       body=_BODY, authorised=s.booleans(),
       content_type=s.sampled_from([b"application/json", b"multipart/form-data",
                                    b"multipart/form-data; boundary=x", b"text/plain"]))
@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def _fuzz(client: RawClient, method: bytes, segments: list[str], query: list[Any],
          body: bytes, authorised: bool, content_type: bytes) -> None:
    target = ("/" + "/".join(segments)).encode()
    if query:
        target += b"?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in query).encode()
    headers = {b"Content-Type": content_type}
    if authorised:
        headers[b"Authorization"] = b"Bearer " + TOKEN_A.encode()
    status, answer = client.request(method, target, body, headers)
    assert 200 <= status < 500, (method, target, body[:100], status, answer[:300])
    if status >= 400 and method != b"HEAD":
        assert "error" in json.loads(answer)


def test_no_request_gets_a_5xx(start_daemon: Any) -> None:
    running = start_daemon(http={"listen": "127.0.0.1:0", "auth_failures": 1_000_000})
    client = RawClient(running.daemon.http_port)
    try:
        _fuzz(client)
    finally:
        client.close()
