"""A token bucket driven by the caller's clock (no timers of its own, so it is
testable without a reactor and costs nothing while idle)."""

from __future__ import annotations


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; rate 0 means unlimited.

    `pause(seconds)` holds every token back for a while: what an SMSC's
    ESME_RTHROTTLED asks for.
    """

    def __init__(self, rate: float, burst: float | None = None, now: float = 0.0) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self.tokens = self.burst
        self.updated = now
        self.paused_until = 0.0

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def available(self, now: float) -> int:
        """Whole tokens that may be spent now."""
        if now < self.paused_until:
            return 0
        if self.unlimited:
            return 1 << 30
        self._refill(now)
        return int(self.tokens)

    def spend(self, count: int, now: float) -> None:
        if not self.unlimited:
            self._refill(now)
            self.tokens -= count

    def wait(self, now: float) -> float:
        """Seconds until one token is available (0 if one is now)."""
        if now < self.paused_until:
            return self.paused_until - now
        if self.unlimited:
            return 0.0
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def pause(self, seconds: float, now: float) -> None:
        self.paused_until = max(self.paused_until, now + seconds)

    def set_rate(self, rate: float) -> None:
        if self.rate <= 0 < rate:
            self.tokens = 0.0  # from unlimited: start empty, not with a free burst
        self.rate = rate
        self.burst = max(1.0, rate / 10)
        self.tokens = min(self.tokens, self.burst)
