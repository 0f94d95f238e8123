"""How fast one bind sends: a rate controller drives the bind's token bucket from
what the SMSC answers, the way aioquic's congestion controllers drive a QUIC
sender. The dispatcher reports events and reads the bucket; the policy is here.

`AdaptiveRate` (the default) is the carrier's contract plus what ESME_RTHROTTLED
and ESME_RMSGQFUL say: halve the rate (from the measured rate when the contract
sets no limit), pause the bind a growing while during a burst of refusals, then
win back a tenth of the way every second without refusals. `FixedRate` keeps the
contract whatever the SMSC says, for carriers whose throttling errors are noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .backoff import Backoff
from .bucket import RELEASES_PER_SECOND, TokenBucket
from .meter import RateMeter


@dataclass(frozen=True)
class Pacing:
    """The adaptive rate's timing (config `throttle:`). The defaults suit carriers,
    whose throttling windows are seconds long; a test shrinks them so that a bind
    throttled every few submits is not paced at one submit per second for real."""

    pause_base: float = 0.1  # holds are base * 2**n for the n-th refusal in a row
    pause_max: float = 60.0  # the longest hold
    recovery_interval: float = 1.0  # seconds between steps back up (the daemon's tick)
    floor: float = 1.0  # submit_sm per second the rate never halves below


class RateController(Protocol):
    bucket: TokenBucket
    meter: RateMeter

    def on_ok(self, now: float) -> None: ...

    def on_throttled(self, now: float) -> None: ...

    def on_queue_full(self, now: float, pause: float) -> None: ...

    def tick(self, now: float) -> bool: ...

    def at_rest(self, now: float) -> bool: ...

    def set_contract(self, rate: float) -> None: ...


class FixedRate:
    """The configured rate, no adaptation (refused parts are still retried)."""

    def __init__(self, rate: float, now: float = 0.0,
                 releases: float = RELEASES_PER_SECOND) -> None:
        self.bucket = TokenBucket(rate, now=now, releases=releases)
        self.meter = RateMeter(now)

    def on_ok(self, now: float) -> None:
        pass

    def on_throttled(self, now: float) -> None:
        pass

    def on_queue_full(self, now: float, pause: float) -> None:
        pass

    def tick(self, now: float) -> bool:
        self.meter.update(now)
        return False

    def at_rest(self, now: float) -> bool:
        """A tick would change nothing: the meter is idle."""
        return self.meter.idle

    def set_contract(self, rate: float) -> None:
        self.bucket.set_rate(rate)


class AdaptiveRate:
    def __init__(self, rate: float, now: float = 0.0, pacing: Pacing | None = None,
                 releases: float = RELEASES_PER_SECOND) -> None:
        self.contract = rate  # 0 = no limit
        self.pacing = pacing = pacing or Pacing()
        self.bucket = TokenBucket(rate, now=now, releases=releases)
        self.meter = RateMeter(now)
        self.pauses = Backoff(pacing.pause_base, pacing.pause_max, 2.0, jitter=False)
        self.streak = 0  # refusals in a row
        self.ceiling = 0.0  # with no contract: the rate at which the SMSC refused us

    def on_ok(self, now: float) -> None:
        self.streak = 0

    def on_throttled(self, now: float) -> None:
        """ESME_RTHROTTLED: slow down once per burst of refusals (not per PDU: a
        window's worth of refusals arrives together), and hold the bind a growing
        while."""
        self.streak += 1
        if self.streak == 1 or self.streak % 10 == 0:
            self._halve(now)
        self.bucket.pause(self.pauses.ceiling(self.streak), now)

    def on_queue_full(self, now: float, pause: float) -> None:
        """ESME_RMSGQFUL: the SMSC's queue is slower than its contract; slow down once
        per burst and hold the bind as long as the refused part waits."""
        self.streak += 1
        if self.streak == 1:
            self._halve(now)
        self.bucket.pause(pause, now)

    def _halve(self, now: float) -> None:
        floor = self.pacing.floor
        current = self.bucket.rate if self.bucket.rate > 0 else max(self.meter.last,
                                                                    2 * floor)
        if self.contract == 0:
            self.ceiling = max(self.ceiling, current)
        self.bucket.set_rate(max(floor, current / 2), now)

    def tick(self, now: float) -> bool:
        """Every recovery interval (a second by default): measure, and win back a
        tenth of the way towards the contract (or no limit) after a throttle. True
        when the rate rose."""
        self.meter.update(now)
        if self.bucket.rate <= 0 or now < self.bucket.paused_until:
            return False
        target = self.contract or self.ceiling
        if self.bucket.rate < target:
            self.bucket.set_rate(min(target, self.bucket.rate + max(1.0, target / 10)), now)
            return True
        if self.contract == 0:
            self.bucket.set_rate(0)  # recovered: unlimited again
            self.ceiling = 0.0
            return True
        return False

    def at_rest(self, now: float) -> bool:
        """A tick would change nothing: the meter is idle and nothing is left to win
        back (not held after a refusal, not below the contract, and an unlimited bind
        unlimited again)."""
        if not self.meter.idle:
            return False
        if self.bucket.rate <= 0:
            return True
        if now < self.bucket.paused_until:
            return False
        return self.contract != 0 and self.bucket.rate >= self.contract

    def set_contract(self, rate: float) -> None:
        self.contract = rate
        self.bucket.set_rate(rate)
