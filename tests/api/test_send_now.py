"""smppd.api.send_now: an answer goes to the socket at once when nothing waits before
it, and otherwise through Twisted's buffer, in order, over a real TCP connection."""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import protocol, reactor

from smppd.api import send_now
from tests.conftest import call, wait_for


class _Server(protocol.Protocol):
    def connectionMade(self) -> None:
        self.factory.connections.append(self)


def _pair() -> tuple[Any, socket.socket, Any]:
    """A listening port, a client socket connected to it, and the server side's
    Twisted transport."""
    factory = protocol.ServerFactory()
    factory.protocol = _Server
    factory.connections = []
    port = call(lambda: reactor.listenTCP(0, factory, interface="127.0.0.1"))
    client = socket.create_connection(("127.0.0.1", port.getHost().port), timeout=10)
    wait_for(lambda: factory.connections, what="the connection to be accepted")
    return port, client, factory.connections[0].transport


def _read(client: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = client.recv(size - len(data))
        assert chunk, "the server closed the connection early"
        data += chunk
    return data


def _close(port: Any, client: socket.socket, transport: Any) -> None:
    client.close()
    call(transport.abortConnection)
    call(port.stopListening)


def test_twisted_still_has_the_buffers_it_reads() -> None:
    """A Twisted upgrade that renames them would silently turn the fast path off."""
    port, client, transport = _pair()
    try:
        for name in send_now._BUFFERS:
            assert hasattr(transport, name), name
        assert call(lambda: send_now.direct(transport))
    finally:
        _close(port, client, transport)


def test_an_answer_on_an_idle_socket_is_sent_without_registering_for_writes() -> None:
    port, client, transport = _pair()
    try:
        def write() -> bool:
            send_now.write(transport, b"HTTP/1.1 201 Created\r\n\r\n")
            return transport in reactor.getWriters()

        answer = b"HTTP/1.1 201 Created\r\n\r\n"
        assert call(write) is False
        assert _read(client, len(answer)) == answer
    finally:
        _close(port, client, transport)


def test_bytes_queued_in_twisted_go_first() -> None:
    port, client, transport = _pair()
    try:
        def write() -> bool:
            transport.write(b"first;")  # queued, not yet sent (written on the next turn)
            direct = send_now.direct(transport)
            send_now.write(transport, b"second")
            return direct

        assert call(write) is False
        assert _read(client, 12) == b"first;second"
    finally:
        _close(port, client, transport)


def test_what_the_kernel_does_not_take_is_buffered_and_arrives_in_order() -> None:
    """A client that does not read: the socket's send buffer fills, the rest waits in
    Twisted's buffer, and everything arrives in order once the client reads."""
    port, client, transport = _pair()
    try:
        blob = bytes(range(256)) * (64 * 1024)  # 16 MiB: more than any socket buffer

        def write() -> bool:
            send_now.write(transport, blob)
            return send_now.direct(transport)

        assert call(write) is False  # Twisted holds the rest
        assert _read(client, len(blob)) == blob
        wait_for(lambda: send_now.direct(transport), what="the buffer to drain")
    finally:
        _close(port, client, transport)


def test_after_the_connection_is_lost_nothing_is_sent_and_nothing_raises() -> None:
    port, client, transport = _pair()
    try:
        call(transport.loseConnection)
        wait_for(lambda: not transport.connected, what="the connection to close")
        assert call(lambda: send_now.direct(transport)) is False
        call(lambda: send_now.write(transport, b"late"))
    finally:
        _close(port, client, transport)


def test_an_aborted_connection_gets_nothing_even_before_it_is_closed() -> None:
    """abortConnection() drops the socket on the next reactor turn; an answer written
    in the same turn must not reach the client (tests/api/test_idempotency.py relies
    on this to cut a connection after the commit)."""
    port, client, transport = _pair()
    try:
        def abort_then_write() -> bool:
            transport.abortConnection()
            direct = send_now.direct(transport)
            send_now.write(transport, b"HTTP/1.1 201 Created\r\n\r\n")
            return direct

        assert call(abort_then_write) is False
        assert client.recv(100) == b""  # closed (or reset) with nothing before it
    except ConnectionResetError:
        pass
    finally:
        _close(port, client, transport)
