"""The callbacks' HTTP client (smppd.callbacks.client through Sender) against a raw
TCP server on 127.0.0.1 that answers what each test scripts: a connection reused
while the server keeps it alive and replaced when it does not, bodies read to their
end (by length, chunked, or to the close), a signed request the receiver verifies,
and answers that are not HTTP, or none at all, as failed attempts."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks import Webhook

from smppd.callbacks.delivery import Outcome, Sender
from smppd.callbacks.queries import Event
from tests.conftest import call

SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
OK = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


class Scripted(socketserver.ThreadingTCPServer):
    """Answers the n-th request (over all connections) with answers[n]; None closes
    the connection without an answer."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, answers: list[bytes | None]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers = answers
        self.requests: list[tuple[bytes, dict[bytes, bytes], bytes]] = []
        self.connections = 0
        self.lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request is part of these tests, not news."""


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: Scripted = self.server  # type: ignore[assignment]
        with server.lock:
            server.connections += 1
        data = b""
        while True:
            while b"\r\n\r\n" not in data:
                chunk = self.request.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, data = data.partition(b"\r\n\r\n")
            line, *fields = head.split(b"\r\n")
            headers = {name.lower(): value.strip() for name, _, value in
                       (field.partition(b":") for field in fields)}
            length = int(headers.get(b"content-length", b"0"))
            while len(data) < length:
                data += self.request.recv(65536)
            body, data = data[:length], data[length:]
            with server.lock:
                index = len(server.requests)
                server.requests.append((line, headers, body))
                answer = server.answers[index] if index < len(server.answers) else OK
            if answer is None:
                self.request.shutdown(socket.SHUT_RDWR)
                return
            self.request.sendall(answer)
            if b"Connection: close" in answer or b"HTTP/1.0" in answer:
                self.request.shutdown(socket.SHUT_RDWR)
                return


@pytest.fixture
def scripted() -> Iterator[Any]:
    servers: list[Scripted] = []

    def start(*answers: bytes | None) -> Scripted:
        server = Scripted(list(answers))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def event(port: int, seq: int = 1, path: str = "/hook?x=1") -> Event:
    return Event(seq, f"01evt{seq:027d}", 1, "ep", f"http://127.0.0.1:{port}{path}", SECRET,
                 "message.status", f'{{"n": {seq}}}', 0.0, 0)


def send(sender: Sender, port: int, seq: int = 1) -> Outcome:
    return call(sender.send, event(port, seq))


@pytest.fixture
def sender() -> Iterator[Sender]:
    from twisted.internet import reactor

    made = call(Sender, reactor, 2.0, 4)
    yield made
    call(made.close)


def test_a_kept_alive_connection_is_reused_and_the_request_is_signed(
        scripted: Any, sender: Sender) -> None:
    server = scripted(OK, OK, OK)
    assert [send(sender, server.server_address[1], n).ok for n in (1, 2, 3)] == [True] * 3
    assert server.connections == 1
    line, headers, body = server.requests[0]
    assert line == b"POST /hook?x=1 HTTP/1.1"
    assert headers[b"host"] == f"127.0.0.1:{server.server_address[1]}".encode()
    assert headers[b"content-type"] == b"application/json" and body == b'{"n": 1}'
    Webhook(SECRET).verify(body, {name.decode(): value.decode()
                                  for name, value in headers.items()})


def test_a_closed_connection_is_replaced(scripted: Any, sender: Sender) -> None:
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    server = scripted(closing, OK)
    assert send(sender, server.server_address[1], 1).ok
    assert send(sender, server.server_address[1], 2).ok
    assert server.connections == 2


@pytest.mark.parametrize("answer, error", [
    (b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbusy\r\n0\r\n\r\n",
     "HTTP 503: busy"),
    (b"HTTP/1.0 500 Oops\r\n\r\nit broke", "HTTP 500: it broke"),  # to the close
    (b"HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n", "HTTP 410"),
])
def test_a_refusal_is_an_http_error_with_its_status_and_body(
        scripted: Any, sender: Sender, answer: bytes, error: str) -> None:
    server = scripted(answer, OK)
    outcome = send(sender, server.server_address[1])
    assert (outcome.ok, outcome.result, outcome.error) == (False, "http_error", error)
    assert send(sender, server.server_address[1], 2).ok  # and the next one goes


@pytest.mark.parametrize("answer, error", [
    (b"SMTP ready\r\n\r\n", "connection failed: bad response"),
    (None, "connection failed: the connection closed before an answer"),
])
def test_no_http_answer_is_a_connection_error(scripted: Any, sender: Sender,
                                               answer: bytes | None, error: str) -> None:
    server = scripted(answer, OK)
    outcome = send(sender, server.server_address[1])
    assert (outcome.ok, outcome.result) == (False, "connection_error")
    assert outcome.error is not None and outcome.error.startswith(error), outcome.error
    assert send(sender, server.server_address[1], 2).ok


# https: the chain checked by OpenSSL, the name by service_identity after the handshake,
# no callback into Python (smppd.protocol.tls.HttpsPolicy; issue 13) --------------------

class ScriptedTls(Scripted):
    """Scripted, over TLS with a certificate for 127.0.0.1 (the handshake happens in
    the handler's thread, at its first read)."""

    def __init__(self, answers: list[bytes | None], cert: str, key: str) -> None:
        import ssl

        super().__init__(answers)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False), address


@pytest.fixture
def https(tmp_path: Any) -> Iterator[tuple[ScriptedTls, str]]:
    from tests.support.receiver import self_signed

    cert, key = self_signed(tmp_path)
    server = ScriptedTls([], str(cert), str(key))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, str(cert)
    server.shutdown()
    server.server_close()


def _tls_sender(ca_file: str | None) -> Sender:
    from twisted.internet import reactor

    return call(Sender, reactor, 2.0, 4, ca_file)


def _send_to(sender: Sender, url: str, seq: int = 1) -> Outcome:
    return call(sender.send, Event(seq, f"01evt{seq:027d}", 1, "ep", url, SECRET,
                                   "message.status", f'{{"n": {seq}}}', 0.0, 0))


def test_https_trusting_the_configured_ca_delivers_over_one_connection(
        https: tuple[ScriptedTls, str]) -> None:
    server, ca_file = https
    sender = _tls_sender(ca_file)
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/hook"
        assert [_send_to(sender, url, n).ok for n in (1, 2)] == [True, True]
        assert server.connections == 1 and len(server.requests) == 2
    finally:
        call(sender.close)


def test_https_to_a_name_the_certificate_does_not_carry_sends_nothing(
        https: tuple[ScriptedTls, str]) -> None:
    """The chain is trusted but the certificate names 127.0.0.1, not localhost: the
    attempt fails on the name, and the event is never written to that connection."""
    server, ca_file = https
    sender = _tls_sender(ca_file)
    try:
        outcome = _send_to(sender, f"https://localhost:{server.server_address[1]}/hook")
        assert (outcome.ok, outcome.result) == (False, "tls_error"), outcome
        assert outcome.error == ("TLS: the endpoint's certificate is not valid for "
                                 "'localhost' (it names 127.0.0.1)"), outcome.error
        assert server.requests == []
    finally:
        call(sender.close)


def test_https_with_an_unknown_ca_fails_the_handshake(
        https: tuple[ScriptedTls, str]) -> None:
    server, _ = https
    sender = _tls_sender(None)  # the system's store does not know the receiver's CA
    try:
        outcome = _send_to(sender, f"https://127.0.0.1:{server.server_address[1]}/hook")
        assert (outcome.ok, outcome.result) == (False, "tls_error"), outcome
        assert outcome.error is not None and "certificate verify failed" in outcome.error
        assert server.requests == []
    finally:
        call(sender.close)
