"""Exponential, capped delays: the one back-off smppd uses, for reconnects, for
retrying a part after a temporary error, and for pausing a bind the SMSC throttles.

Reconnects draw each delay from [ceiling/2, ceiling] ("equal jitter"): fixed delays
make N binds that dropped together reconnect together for ever, while equal jitter
spreads them and still never hammers a flapping SMSC. Retries and throttle pauses
use the ceiling itself (no jitter): they are per part or per bind, already spread
by the traffic, and a test can predict them.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial: float = 1.0, maximum: float = 60.0, factor: float = 2.0,
                 jitter: bool = True, rng: random.Random | None = None) -> None:
        if initial <= 0 or maximum < initial or factor < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and factor >= 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self.attempts = 0
        self._rng = rng or random.Random()

    def ceiling(self, attempt: int) -> float:
        """The longest delay before try number `attempt + 1` (attempt 0: `initial`)."""
        return min(self.maximum, self.initial * self.factor ** min(max(attempt, 0), 64))

    def delay(self, attempt: int) -> float:
        ceiling = self.ceiling(attempt)
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2) if self.jitter else ceiling

    def next_delay(self) -> float:
        """The delay before the next try, counting this one."""
        delay = self.delay(self.attempts)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0
