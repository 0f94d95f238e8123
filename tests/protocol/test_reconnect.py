"""Reconnects on a simulated clock: links get their endpoint and back-off from the
caller, so a storm of 20 binds is driven in simulated seconds (checklist 14)."""

from __future__ import annotations

import itertools
import random
from typing import Any

from twisted.internet import defer
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock

from smppd.protocol.connector import Connector, ConnectorConfig, LinkState, ReconnectPolicy
from smppd.throttle.backoff import Backoff
from tests.conftest import RecordingListener, session_config


class RefusingEndpoint:
    """Nothing listens: every connect fails at once; attempt times are recorded."""

    def __init__(self, clock: Clock, attempts: list[float]) -> None:
        self.clock = clock
        self.attempts = attempts

    def connect(self, factory: Any) -> defer.Deferred[Any]:
        self.attempts.append(self.clock.seconds())
        return defer.fail(ConnectionRefusedError())


def test_reconnect_attempts_spread_and_are_capped() -> None:
    """Checklist 14: attempt times grow, spread, and stay under the cap."""
    clock = Clock()
    attempts: dict[int, list[float]] = {i: [] for i in range(20)}
    delays: dict[int, list[float]] = {i: [] for i in range(20)}
    connectors = []
    for index in range(20):
        def backoff(policy: ReconnectPolicy, index: int = index) -> Backoff:
            real = Backoff(policy.initial, policy.maximum, policy.factor,
                           rng=random.Random(index))  # deterministic jitter per bind
            next_delay = real.next_delay

            def traced() -> float:
                delays[index].append(next_delay())
                return delays[index][-1]

            real.next_delay = traced  # type: ignore[method-assign]
            return real

        config = ConnectorConfig(f"c{index}", "127.0.0.1", 9, session_config(),
                                 reconnect=ReconnectPolicy(1.0, 8.0, 2.0))
        connectors.append(Connector(
            config, RecordingListener(), clock, backoff,
            lambda _config, _reactor, _tls, index=index: RefusingEndpoint(clock, attempts[index])))
    for connector in connectors:
        connector.start()
    for _ in range(400):
        clock.advance(0.1)
    assert all(len(times) >= 6 for times in attempts.values())
    assert all(c.links[0].state is LinkState.BACKOFF for c in connectors)
    every_delay = [d for per_link in delays.values() for d in per_link]
    assert max(every_delay) <= 8.0  # capped
    assert min(every_delay) >= 0.5  # never a tight loop
    for per_link in delays.values():  # exponential until the cap
        assert per_link[0] <= 1.0 < per_link[2] and per_link[4] > 4.0
    # Where each bind stands after its 3rd retry: all different, spread over >= 1 s.
    third = sorted(sum(per_link[:3]) for per_link in delays.values())
    assert min(b - a for a, b in itertools.pairwise(third)) > 0
    assert third[-1] - third[0] > 1.0
    for times, per_link in zip(attempts.values(), delays.values(), strict=False):
        for gap, delay in zip(itertools.pairwise(times), per_link, strict=False):
            assert gap[1] - gap[0] >= delay - 0.1 - 1e-9  # waited (to the clock's step)
    for connector in connectors:
        connector.abort()
