"""The dispatcher with a simulated clock and a stand-in connector: throughput
pacing, window credit held until outcomes are committed, routing."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from smppd import config
from smppd.daemon.dispatcher import Channel, Dispatcher
from smppd.daemon.router import ANY_SMSC, NO_ROUTE, Router
from smppd.protocol.session import NoResponse, SubmitResult, SubmitUnknown
from smppd.store import operations as ops
from smppd.store.queries import QueuedMessage


class StandInConnector:
    def __init__(self, window: int) -> None:
        self.window = window
        self.bound = True
        self.in_flight: list[Any] = []
        self.transmitters = [self]
        self.rebinds: list[str] = []

    @property
    def window_available(self) -> int:
        return self.window - len(self.in_flight)

    def submit(self, fields: dict[str, Any], token: Any, flush: bool = True) -> Any:
        self.in_flight.append(token)
        return self

    def flush(self) -> None:
        pass

    def rebind(self, reason: str) -> None:
        self.rebinds.append(reason)


def _smsc(name: str, throughput: float = 0, window: int = 5,
          **kw: Any) -> config.SmscSettings:
    return config.SmscSettings(name=name, host="127.0.0.1", port=2775, system_id="a",
                               password="b", window=window, throughput=throughput, **kw)


def _dispatcher(clock: Clock, routes: dict[str, str] | None = None,
                ) -> tuple[Dispatcher, list[Any], list[defer.Deferred[Any]]]:
    written: list[Any] = []
    pending: list[defer.Deferred[Any]] = []

    def put(op: Any) -> defer.Deferred[Any]:
        written.append(op)
        d: defer.Deferred[Any] = defer.Deferred()
        pending.append(d)
        return d

    def load(after: str, limit: int) -> defer.Deferred[Any]:
        return defer.succeed(([], None))

    def load_job(job_id: str, after: str, limit: int) -> defer.Deferred[Any]:
        return defer.succeed(([], None))

    router = Router.of(routes or {}, [_smsc("x"), _smsc("a"), _smsc("b")])
    dispatcher = Dispatcher(clock, put, load, load_job, router)
    dispatcher.refill()
    return dispatcher, written, pending


def _message(number: int, recipient: str = "48500100200") -> QueuedMessage:
    return QueuedMessage(f"{number:032x}", "Acme", recipient, f"text {number}", "gsm", 1, 0,
                         None, (1,))


def test_throughput_paces_submits_on_the_simulated_clock() -> None:
    clock = Clock()
    dispatcher, _, _ = _dispatcher(clock)
    connector = StandInConnector(window=1000)
    dispatcher.add_channel(Channel(_smsc("a", throughput=20, window=1000), connector,
                                   clock.seconds()))
    for number in range(100):
        dispatcher.accepted(_message(number))
    clock.advance(0)
    assert len(connector.in_flight) == 20  # the bucket's burst (a second's), not the queue
    sent = []
    for _ in range(3):
        for _ in range(100):
            clock.advance(0.01)  # one simulated second
        sent.append(len(connector.in_flight))
    assert sent == [20, 40, 60]  # 20 per second, at .5 of each


@pytest.mark.parametrize("releases", [1, 4])
def test_a_contract_rate_is_sent_in_a_few_releases_a_second(releases: int) -> None:
    """Issues 13 and 14: at 100/s the dispatcher wakes `releases_per_second` times a
    second (once by default) and sends 100 / releases parts each time (one flush
    each), and commits in between do not send the odd part the bucket refilled
    meanwhile."""
    clock = Clock()
    dispatcher, _, pending = _dispatcher(clock)
    connector = StandInConnector(window=1000)
    dispatcher.add_channel(Channel(_smsc("a", throughput=100, window=1000,
                                         releases_per_second=releases),
                                   connector, clock.seconds()))
    for number in range(500):
        dispatcher.accepted(_message(number))
    clock.advance(0)
    sizes = [len(connector.in_flight)]
    for _ in range(300):  # three simulated seconds, outcomes committed as they come
        clock.advance(0.01)
        while pending:
            pending.pop().callback(None)
        clock.advance(0)
        sizes.append(len(connector.in_flight))
    steps = [b - a for a, b in itertools.pairwise(sizes) if b != a]
    # 99-101 in each simulated second from between two releases to between two
    # releases (the carry of a fraction of a token).
    between = 100 // releases
    assert all(99 <= sizes[s + 100] - sizes[s] <= 101
               for s in range(between, 200, between))
    # `releases` a second of about 100 / releases each (the clock's steps are a hair
    # late or early, and what a late release takes, the next one does not); the
    # first, at the first grid point after the initial burst, takes what accrued.
    per = 100 // releases
    assert set(steps[1:]) <= {per - 1, per, per + 1}
    assert 3 * releases - 1 <= len(steps) <= 3 * releases + 1


def test_window_slots_return_only_when_outcomes_are_committed() -> None:
    clock = Clock()
    dispatcher, written, pending = _dispatcher(clock)
    connector = StandInConnector(window=5)
    dispatcher.add_channel(Channel(_smsc("a", window=5), connector, clock.seconds()))
    for number in range(12):
        dispatcher.accepted(_message(number))
    clock.advance(0)
    assert len(connector.in_flight) == 5
    # The SMSC answers all five; the session frees its window at once...
    tokens, connector.in_flight = connector.in_flight, []
    for index, token in enumerate(tokens):
        dispatcher.submit_result(SubmitResult(token, 0, f"id{index}"))
    clock.advance(0)
    # ...but nothing more is sent until those outcomes are durable.
    assert connector.in_flight == [] and len(written) == 5
    assert all(isinstance(op, ops.PartSubmitted) for op in written)
    for d in pending[:3]:
        d.callback(None)
    clock.advance(0)
    assert len(connector.in_flight) == 3


def test_routes_take_the_longest_prefix_and_refuse_the_unrouted() -> None:
    clock = Clock()
    dispatcher, _, _ = _dispatcher(clock, routes={"48": ("a",), "4860": ("b", "a")})
    router = dispatcher.router
    assert router.route_for("48601234567") == "b|a"
    assert router.route_for("48501234567") == "a"
    assert router.route_for("12025550123") == NO_ROUTE
    anything, _, _ = _dispatcher(clock)
    assert anything.router.route_for("12025550123") == ANY_SMSC  # no routes: any SMSC


def test_a_route_fails_over_in_order_of_preference() -> None:
    clock = Clock()
    dispatcher, _, _ = _dispatcher(clock, routes={"48": ("a", "b")})
    first, second = StandInConnector(window=5), StandInConnector(window=5)
    a = Channel(_smsc("a"), first, 0.0)
    b = Channel(_smsc("b"), second, 0.0)
    dispatcher.add_channel(a)
    dispatcher.add_channel(b)
    for number in range(4):
        dispatcher.accepted(_message(number))
    clock.advance(0)
    assert (len(first.in_flight), len(second.in_flight)) == (4, 0)
    assert dispatcher.serves(a)("a|b") and not dispatcher.serves(b)("a|b")
    first.bound = False  # the preferred SMSC goes down
    assert dispatcher.serves(b)("a|b")
    for number in range(4, 7):
        dispatcher.accepted(_message(number))
    first.window = 4  # and takes nothing more
    clock.advance(0)
    assert len(second.in_flight) == 3


def test_throttling_halves_the_rate_and_it_recovers_gradually() -> None:
    clock = Clock()
    dispatcher, _, _ = _dispatcher(clock)
    connector = StandInConnector(window=1000)
    channel = Channel(_smsc("a", throughput=100, window=1000), connector, clock.seconds())
    dispatcher.add_channel(channel)
    dispatcher.accepted(_message(1))
    clock.advance(0)
    token = connector.in_flight.pop()
    dispatcher.submit_result(SubmitResult(token, 0x58, None))  # ESME_RTHROTTLED
    assert channel.bucket.rate == 50
    rates = []
    for _ in range(8):
        clock.advance(1.0)
        dispatcher.tick()
        rates.append(channel.bucket.rate)
    assert rates == [60, 70, 80, 90, 100, 100, 100, 100]


def test_an_unlimited_smsc_that_throttles_is_slowed_then_unlimited_again() -> None:
    clock = Clock()
    dispatcher, _, _ = _dispatcher(clock)
    connector = StandInConnector(window=1000)
    channel = Channel(_smsc("a", throughput=0, window=1000), connector, clock.seconds())
    dispatcher.add_channel(channel)
    channel.rate.meter.last = 400.0  # measured before the SMSC objected
    dispatcher.accepted(_message(1))
    clock.advance(0)
    dispatcher.submit_result(SubmitResult(connector.in_flight.pop(), 0x58, None))
    assert channel.bucket.rate == 200
    for _ in range(6):
        clock.advance(1.0)
        dispatcher.tick()
    assert channel.bucket.rate == 0  # back to no limit


def test_status_overrides_and_a_broken_bind() -> None:
    """A vendor code configured as `retry` is retried; ESME_RINVBNDSTS (the SMSC thinks
    we are not bound) rebinds and retries instead of failing the message."""
    clock = Clock()
    dispatcher, written, _ = _dispatcher(clock)
    connector = StandInConnector(window=10)
    channel = Channel(_smsc("a", window=10, status_overrides=((0x45, "retry"),)), connector,
                      clock.seconds())
    dispatcher.add_channel(channel)
    dispatcher.accepted(_message(1))
    clock.advance(0)
    dispatcher.submit_result(SubmitResult(connector.in_flight.pop(), 0x45, None))
    dispatcher.submit_result(SubmitResult(_resubmitted(clock, connector), 0x04, None))
    assert connector.rebinds == ["ESME_RINVBNDSTS on a submit"]
    token = _resubmitted(clock, connector)
    dispatcher.submit_result(SubmitResult(token, 0, "id-1"))
    assert [type(op).__name__ for op in written] == ["PartSubmitted"]


def _resubmitted(clock: Clock, connector: StandInConnector) -> Any:
    for _ in range(100):  # the retry back-off: 0.05 s steps, up to 5 simulated seconds
        clock.advance(0.05)
        if connector.in_flight:
            return connector.in_flight.pop()
    raise AssertionError("the part was not submitted again")


def test_a_fixed_rate_policy_keeps_the_contract_when_throttled() -> None:
    clock = Clock()
    dispatcher, _, _ = _dispatcher(clock)
    connector = StandInConnector(window=1000)
    channel = Channel(_smsc("a", throughput=100, window=1000, throttle_policy="fixed"),
                      connector, clock.seconds())
    dispatcher.add_channel(channel)
    dispatcher.accepted(_message(1))
    clock.advance(0)
    dispatcher.submit_result(SubmitResult(connector.in_flight.pop(), 0x58, None))
    assert channel.bucket.rate == 100 and channel.bucket.paused_until == 0


class StoppableConnector(StandInConnector):
    """Stops as a link does on a graceful unbind: submits still unanswered come back
    as having no response."""

    def __init__(self, window: int, dispatcher: Dispatcher) -> None:
        super().__init__(window)
        self.dispatcher = dispatcher
        self.stops = 0

    def stop(self) -> defer.Deferred[None]:
        self.stops += 1
        self.bound = False
        unanswered, self.in_flight = self.in_flight, []
        for token in unanswered:
            self.dispatcher.submit_unknown(SubmitUnknown(token, "unbound", NoResponse.UNBOUND))
        return defer.succeed(None)


def test_an_smsc_removed_by_a_reload_unbinds_and_hands_its_work_to_the_new_route() -> None:
    """Its queued messages, its half-sent message and its unanswered submits all end up
    on the SMSC that now serves their numbers; nothing waits under the old route."""
    clock = Clock()
    dispatcher, written, pending = _dispatcher(clock, routes={"48": ("b",)})
    a = StandInConnector(window=100)
    b = StoppableConnector(window=2, dispatcher=dispatcher)
    dispatcher.add_channel(Channel(_smsc("a", window=100), a, clock.seconds()))
    dispatcher.add_channel(Channel(_smsc("b", window=2), b, clock.seconds()))
    for number in range(6):
        dispatcher.accepted(_message(number))
    clock.advance(0)
    assert (len(a.in_flight), len(b.in_flight)) == (0, 2)

    dispatcher.set_router(Router.of({"48": ("a",)}, [_smsc("a")]))
    retired = dispatcher.retire("b")
    clock.advance(0)
    # The four still queued moved to route "a" at once; the two b had out come back
    # once their "sent again" is committed.
    assert len(a.in_flight) == 4 and not retired.called and b.stops == 1
    resent = [op for op in written if isinstance(op, ops.PartResent)]
    assert len(resent) == 2
    for d in list(pending):
        if not d.called:
            d.callback(None)
    clock.advance(0.1)
    assert retired.called and "b" not in dispatcher.channels
    assert sorted(token.message.id for token in a.in_flight) == sorted(
        f"{number:032x}" for number in range(6))


def test_the_tick_rests_while_idle_and_wakes_with_the_next_send() -> None:
    """Issue 13: an idle daemon does not wake every second for the tick. It runs while
    a bind sent lately (until its meter has worn down) or is winning its rate back
    after a refusal, and the next send wakes it; the throttle still recovers."""
    clock = Clock()
    dispatcher, _, _ = _dispatcher(clock)
    connector = StandInConnector(window=1000)
    channel = Channel(_smsc("a", throughput=100, window=1000), connector, clock.seconds())
    dispatcher.add_channel(channel)
    dispatcher.start_ticking(1.0)
    clock.advance(1.0)
    assert not dispatcher.ticking  # nothing sent: at rest after its first look

    dispatcher.accepted(_message(1))
    clock.advance(0)
    assert dispatcher.ticking  # the send woke it
    dispatcher.submit_result(SubmitResult(connector.in_flight.pop(), 0x58, None))
    assert channel.bucket.rate == 50  # ESME_RTHROTTLED: halved
    rates, seconds = [], 0
    while dispatcher.ticking and seconds < 120:
        clock.advance(1.0)
        seconds += 1
        rates.append(channel.bucket.rate)
    assert rates[:6] == [60, 70, 80, 90, 100, 100]  # recovered as before
    assert not dispatcher.ticking and 5 < seconds < 120  # then rests, the meter idle
    assert channel.rate.meter.rate < 0.01

    dispatcher.accepted(_message(2))
    clock.advance(0)
    assert dispatcher.ticking
    clock.advance(1.0)
    assert channel.rate.meter.last == 1.0  # the interval measured the send, not the rest
