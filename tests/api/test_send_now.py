"""smppd.api.send_now: an answer goes to the socket at once when nothing waits before
it, and otherwise through Twisted's buffer, in order, over a real TCP connection."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet import protocol, reactor

from smppd.api import send_now
from tests.conftest import call, wait_for


class _Server(protocol.Protocol):
    def connectionMade(self) -> None:
        self.factory.connections.append(self)


Pair = tuple[socket.socket, Any]  # a client socket and the server side's transport


@pytest.fixture
def pair() -> Iterator[Pair]:
    """A client socket connected to a listening port on 127.0.0.1, and the server
    side's Twisted transport; both closed afterwards."""
    factory = protocol.ServerFactory()
    factory.protocol = _Server
    factory.connections = []
    port = call(lambda: reactor.listenTCP(0, factory, interface="127.0.0.1"))
    client = socket.create_connection(("127.0.0.1", port.getHost().port), timeout=10)
    wait_for(lambda: factory.connections, what="the connection to be accepted")
    transport = factory.connections[0].transport
    try:
        yield client, transport
    finally:
        client.close()
        call(transport.abortConnection)
        call(port.stopListening)


def _read(client: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = client.recv(size - len(data))
        assert chunk, "the server closed the connection early"
        data += chunk
    return data


def test_twisted_still_has_the_buffers_it_reads(pair: Pair) -> None:
    """A Twisted upgrade that renames them would silently turn the fast path off."""
    _client, transport = pair
    for name in send_now._BUFFERS:
        assert hasattr(transport, name), name
    assert call(lambda: send_now.direct(transport))


def test_an_answer_on_an_idle_socket_is_sent_without_registering_for_writes(pair: Pair) -> None:
    client, transport = pair

    def write() -> bool:
        send_now.write(transport, b"HTTP/1.1 201 Created\r\n\r\n")
        return transport in reactor.getWriters()

    answer = b"HTTP/1.1 201 Created\r\n\r\n"
    assert call(write) is False
    assert _read(client, len(answer)) == answer


def test_bytes_queued_in_twisted_go_first(pair: Pair) -> None:
    client, transport = pair

    def write() -> bool:
        transport.write(b"first;")  # queued, not yet sent (written on the next turn)
        direct = send_now.direct(transport)
        send_now.write(transport, b"second")
        return direct

    assert call(write) is False
    assert _read(client, 12) == b"first;second"


def test_what_the_kernel_does_not_take_is_buffered_and_arrives_in_order(pair: Pair) -> None:
    """A client that does not read: the socket's send buffer fills, the rest waits in
    Twisted's buffer, and everything arrives in order once the client reads."""
    client, transport = pair
    blob = bytes(range(256)) * (64 * 1024)  # 16 MiB: more than any socket buffer

    def write() -> bool:
        send_now.write(transport, blob)
        return send_now.direct(transport)

    assert call(write) is False  # Twisted holds the rest
    assert _read(client, len(blob)) == blob
    wait_for(lambda: send_now.direct(transport), what="the buffer to drain")


def test_after_the_connection_is_lost_nothing_is_sent_and_nothing_raises(pair: Pair) -> None:
    _client, transport = pair
    call(transport.loseConnection)
    wait_for(lambda: not transport.connected, what="the connection to close")
    assert call(lambda: send_now.direct(transport)) is False
    call(lambda: send_now.write(transport, b"late"))


def test_an_aborted_connection_gets_nothing_even_before_it_is_closed(pair: Pair) -> None:
    """abortConnection() drops the socket on the next reactor turn; an answer written
    in the same turn must not reach the client (tests/api/test_idempotency.py relies
    on this to cut a connection after the commit)."""
    client, transport = pair

    def abort_then_write() -> bool:
        transport.abortConnection()
        direct = send_now.direct(transport)
        send_now.write(transport, b"HTTP/1.1 201 Created\r\n\r\n")
        return direct

    assert call(abort_then_write) is False
    try:
        received = client.recv(100)
    except ConnectionResetError:
        received = b""  # reset: nothing was delivered either
    assert received == b""  # closed (or reset) with nothing before it
