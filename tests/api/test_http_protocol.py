"""The HTTP protocol without sockets: back-pressure, pipelining, timeouts, the
connection cap, with a Clock for time and a StringTransport for the wire."""

from __future__ import annotations

import re
from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from smppd.api.server import (
    FEED_BYTES,
    HttpFactory,
    HttpLimits,
    HttpProtocol,
    HttpRequest,
    HttpResponse,
    split_path,
)

LIMITS = HttpLimits(idle_timeout=60, header_timeout=10, body_timeout=30, body_min_rate=100,
                    max_connections=3, max_pipelined=4)
GET = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"


class Handler:
    """Answers each request with a Deferred the test fires, or at once."""

    def __init__(self, deferred: bool = True, size: int = 2) -> None:
        self.deferred = deferred
        self.size = size
        self.requests: list[HttpRequest] = []
        self.calls: list[defer.Deferred[HttpResponse]] = []

    def __call__(self, request: HttpRequest) -> Any:
        self.requests.append(request)
        response = HttpResponse(200, b"%d" % len(self.requests) + b"." * self.size)
        if not self.deferred:
            return response
        d: defer.Deferred[HttpResponse] = defer.Deferred()
        d.addCallback(lambda _: response)
        self.calls.append(d)
        return d

    def answer_all(self) -> None:
        calls, self.calls = self.calls, []
        for d in calls:
            d.callback(None)


class Transport(StringTransport):
    """A StringTransport that can half-close, as TCP can."""

    write_closed = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True
        self.disconnecting = True


def connect(handler: Any, clock: Clock, limits: HttpLimits = LIMITS,
            factory: HttpFactory | None = None) -> tuple[HttpProtocol, Transport]:
    if factory is not None:
        protocol = factory.buildProtocol(IPv4Address("TCP", "10.0.0.1", 1))
    else:
        protocol = HttpProtocol(handler, limits, clock)
    transport = Transport(peerAddress=IPv4Address("TCP", "10.0.0.1", 5555))
    protocol.makeConnection(transport)
    return protocol, transport


def statuses(transport: Transport) -> list[bytes]:
    return re.findall(rb"HTTP/1\.1 (\d{3}) ", transport.value())


def lost(protocol: Any, transport: Transport) -> None:
    """What the reactor does after loseConnection: tell the protocol."""
    assert transport.disconnecting
    protocol.connectionLost(None)


def test_a_flood_of_pipelined_requests_is_held_back_not_handled() -> None:
    clock, handler = Clock(), Handler()
    protocol, transport = connect(handler, clock)
    flood = GET * 50_000  # 1.4 MB, as one read would never be, worst case
    protocol.dataReceived(flood)
    assert len(handler.requests) == LIMITS.max_pipelined  # the rest is not even parsed
    assert len(protocol.waiting) <= FEED_BYTES // len(GET) + 1
    assert len(protocol.unparsed) < len(flood)
    assert transport.producerState == "paused"  # reading stopped: TCP pushes back
    while transport.producerState == "paused":
        handler.answer_all()  # answers drain: handling and then reading resume
        assert len(protocol.pending) <= LIMITS.max_pipelined
        assert len(protocol.waiting) <= FEED_BYTES // len(GET) + 1
    handler.answer_all()
    assert len(handler.requests) == 50_000 and not protocol.unparsed
    # Every request answered, in request order.
    bodies = [part.split(b"\r\n\r\n", 1)[1].split(b".")[0]
              for part in transport.value().split(b"HTTP/1.1 200 OK")[1:]]
    assert bodies == [b"%d" % n for n in range(1, len(bodies) + 1)]
    assert len(bodies) == 50_000


def test_a_full_send_buffer_stops_handling_and_reading() -> None:
    clock, handler = Clock(), Handler(deferred=False)
    protocol, transport = connect(handler, clock)
    protocol.pauseProducing()  # what the transport does past its buffer size
    protocol.dataReceived(GET * 100)
    assert handler.requests == []
    assert transport.producerState == "paused"
    assert len(protocol.unparsed) == len(GET * 100)
    protocol.resumeProducing()  # drained
    assert len(handler.requests) == 100
    assert transport.producerState == "producing"
    assert statuses(transport) == [b"200"] * 100


def test_a_client_that_never_reads_is_dropped_after_the_idle_timeout() -> None:
    clock, handler = Clock(), Handler(deferred=False)
    protocol, transport = connect(handler, clock)
    protocol.dataReceived(GET)
    protocol.pauseProducing()
    clock.advance(LIMITS.idle_timeout - 1)
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.disconnected  # aborted: its unsent answers are dropped


def test_a_new_connection_that_sends_nothing_is_closed_after_the_header_timeout() -> None:
    clock = Clock()
    protocol, transport = connect(Handler(), clock)
    clock.advance(LIMITS.header_timeout - 0.1)
    assert not transport.disconnecting
    clock.advance(0.1)
    assert transport.disconnecting and transport.value() == b""  # nothing to answer
    lost(protocol, transport)
    assert clock.getDelayedCalls() == []


def test_keep_alive_idles_for_the_idle_timeout_then_closes() -> None:
    clock, handler = Clock(), Handler(deferred=False)
    protocol, transport = connect(handler, clock)
    protocol.dataReceived(GET)
    clock.advance(LIMITS.idle_timeout - 1)
    protocol.dataReceived(GET)  # activity: a new idle period starts after this answer
    clock.advance(LIMITS.idle_timeout - 1)
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.disconnecting and statuses(transport) == [b"200", b"200"]


def test_a_slow_request_head_gets_408_even_while_bytes_trickle() -> None:
    clock = Clock()
    protocol, transport = connect(Handler(), clock)
    for byte in b"GET /x HTTP/1.1\r\nX-A: b":
        protocol.dataReceived(bytes([byte]))
        clock.advance(0.25)  # each byte well within any idle timeout
    protocol.dataReceived(b"c" * 100)
    clock.advance(LIMITS.header_timeout - 0.25 - clock.seconds())
    assert not transport.disconnecting
    clock.advance(0.25)
    assert statuses(transport) == [b"408"] and transport.disconnecting
    assert b"Connection: close" in transport.value()


def test_a_body_must_keep_its_minimum_rate() -> None:
    clock, handler = Clock(), Handler()
    protocol, transport = connect(handler, clock)
    protocol.dataReceived(b"POST /x HTTP/1.1\r\nContent-Length: 60000\r\n\r\n")
    for _ in range(180):  # 90 s at 120 B/s: above the 100 B/s asked for
        protocol.dataReceived(b"x" * 60)
        clock.advance(0.5)
    assert not transport.disconnecting
    protocol.dataReceived(b"x" * 100)  # then 100 bytes in 30 s: below the rate
    clock.advance(30)
    assert statuses(transport) == [b"408"]
    assert handler.requests == []


def test_upgrade_gets_exactly_one_answer_then_the_connection_closes() -> None:
    clock, handler = Clock(), Handler(deferred=False)
    protocol, transport = connect(handler, clock)
    protocol.dataReceived(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
                          b"Upgrade: websocket\r\n\r\n\x81\x85garbage" + GET)
    assert statuses(transport) == [b"200"]
    assert transport.disconnecting and len(handler.requests) == 1


def test_upgrade_while_answers_are_pending_closes_after_them() -> None:
    clock, handler = Clock(), Handler()
    protocol, transport = connect(handler, clock)
    protocol.dataReceived(GET + b"GET /y HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
    assert len(handler.requests) == 2
    handler.answer_all()
    assert statuses(transport) == [b"200", b"200"]
    assert transport.value().count(b"Connection: close") == 1 and transport.disconnecting


def test_nothing_after_a_final_request_is_handled() -> None:
    """A POST pipelined after `Connection: close` must not create a message whose
    answer the client will never get."""
    clock, handler = Clock(), Handler(deferred=False)
    protocol, transport = connect(handler, clock)
    protocol.dataReceived(b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n"
                          b"POST /v1/messages HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
    assert [r.path for r in handler.requests] == ["/x"]
    assert statuses(transport) == [b"200"] and transport.disconnecting


def test_a_parse_error_is_answered_after_the_answers_owed_before_it() -> None:
    clock, handler = Clock(), Handler()
    protocol, transport = connect(handler, clock)
    protocol.dataReceived(GET + b"\x00\x01 not http\r\n\r\n")
    assert transport.value() == b""  # the first answer is not ready: nothing jumps it
    handler.answer_all()
    assert statuses(transport) == [b"200", b"400"] and transport.disconnecting


def test_the_path_is_split_before_it_is_decoded() -> None:
    assert split_path("/v1/messages/a%2Fb") == ("v1", "messages", "a/b")
    assert split_path("/v1/jobs/x%2Fstop/") == ("v1", "jobs", "x/stop")
    assert split_path("/") == () and split_path("") == ()
    assert split_path("/v1//x") == ("v1", "", "x")
    clock, handler = Clock(), Handler(deferred=False)
    protocol, _ = connect(handler, clock)
    protocol.dataReceived(b"GET /v1/messages/a%2Fb%20c?limit=1 HTTP/1.1\r\n\r\n")
    request = handler.requests[0]
    assert request.segments == ("v1", "messages", "a/b c")
    assert request.path == "/v1/messages/a%2Fb%20c" and request.query == {"limit": ["1"]}
    assert request.peer == "10.0.0.1"


# The connection cap ------------------------------------------------------------------


def test_at_the_cap_the_longest_idle_connection_makes_room() -> None:
    clock, handler = Clock(), Handler()
    factory = HttpFactory(handler, LIMITS, clock)
    _first, first_transport = connect(handler, clock, factory=factory)
    clock.advance(1)
    second, _ = connect(handler, clock, factory=factory)
    second.dataReceived(b"GET /x HTTP/1.1\r\n")  # mid-request: not idle
    clock.advance(1)
    _third, third_transport = connect(handler, clock, factory=factory)
    fourth, _fourth_transport = connect(handler, clock, factory=factory)
    assert first_transport.disconnecting and not third_transport.disconnecting
    assert factory.stats.evicted == 1 and len(factory.connections) == 3
    fourth.dataReceived(GET)
    assert len(handler.requests) == 1


def test_at_the_cap_with_nothing_idle_a_newcomer_gets_a_clear_503() -> None:
    clock, handler = Clock(), Handler()
    factory = HttpFactory(handler, LIMITS, clock)
    for _ in range(3):
        protocol, _ = connect(handler, clock, factory=factory)
        protocol.dataReceived(b"GET /x HTTP/1.1\r\n")  # every one mid-request
    refused = factory.buildProtocol(IPv4Address("TCP", "10.0.0.9", 1))
    transport = Transport()
    refused.makeConnection(transport)
    answer = transport.value()
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"Connection: close" in answer and b"Retry-After: 1" in answer
    assert answer.endswith(b'{"error":"too many connections; retry shortly"}')
    assert factory.stats.refused == 1 and factory.lingering == 1
    clock.advance(1.0)
    assert transport.disconnected  # not held open by a client that never closes
    refused.connectionLost(None)
    assert factory.lingering == 0


def test_at_the_cap_a_head_stuck_past_the_grace_makes_room() -> None:
    clock, handler = Clock(), Handler()
    factory = HttpFactory(handler, LIMITS, clock)
    transports = []
    for _ in range(3):
        protocol, transport = connect(handler, clock, factory=factory)
        protocol.dataReceived(b"GET /x HTTP/1.1\r\n")
        transports.append(transport)
        clock.advance(0.25)
    assert not isinstance(factory.buildProtocol(None), HttpProtocol)  # 0.75 s: refused
    clock.advance(0.25)  # the first head is 1 s old
    newcomer, _ = connect(handler, clock, factory=factory)
    assert transports[0].disconnecting and not transports[1].disconnecting
    assert factory.stats.evicted == 1 and newcomer in factory.connections


@pytest.mark.parametrize("closes", ["peer", "server"])
def test_closed_connections_leave_the_books(closes: str) -> None:
    clock, handler = Clock(), Handler(deferred=False)
    factory = HttpFactory(handler, LIMITS, clock)
    protocol, _transport = connect(handler, clock, factory=factory)
    protocol.dataReceived(GET)
    assert factory.idle and factory.connections
    if closes == "server":
        clock.advance(LIMITS.idle_timeout)
    protocol.connectionLost(None)
    assert not factory.idle and not factory.connections
    assert clock.getDelayedCalls() == [] or all(not c.active()
                                                for c in clock.getDelayedCalls())


def test_after_a_last_answer_the_server_lingers_reading_then_lets_go() -> None:
    """A client still sending when it is answered (a slowloris, a pipeliner) must
    get its answer: the write side closes first, reading goes on (dropped) until
    the client closes, or for a moment."""
    clock, handler = Clock(), Handler(deferred=False)
    protocol, transport = connect(handler, clock)
    protocol.dataReceived(b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert transport.write_closed and statuses(transport) == [b"200"]
    protocol.dataReceived(b"more bytes the client had in flight")
    assert len(handler.requests) == 1
    protocol.writeConnectionLost()  # the transport flushed the answer and sent FIN
    clock.advance(1.9)
    assert not transport.disconnected
    clock.advance(0.1)
    assert transport.disconnected  # aborted: a client that never closes keeps nothing


def test_a_client_fin_after_its_request_still_gets_the_answer() -> None:
    clock, handler = Clock(), Handler()
    protocol, transport = connect(handler, clock)
    protocol.dataReceived(GET + GET)
    protocol.readConnectionLost()  # e.g. `printf ... | nc -N`
    assert not transport.disconnecting
    handler.answer_all()
    assert statuses(transport) == [b"200", b"200"]
    assert transport.disconnecting and not transport.write_closed  # a plain close now


def test_a_head_request_gets_the_headers_only() -> None:
    clock, handler = Clock(), Handler(deferred=False, size=10)
    protocol, transport = connect(handler, clock)
    protocol.dataReceived(b"HEAD /x HTTP/1.1\r\n\r\n" + GET)
    first, second = transport.value().split(b"HTTP/1.1 200 OK")[1:]
    assert b"Content-Length: 11" in first and first.endswith(b"\r\n\r\n")
    assert second.endswith(b"2" + b"." * 10)
