"""A rate meter: events counted as they happen, the rate read when asked, smoothed
so that one quiet second does not halve the figure an operator sees."""

from __future__ import annotations


class RateMeter:
    def __init__(self, now: float = 0.0, smoothing: float = 0.3) -> None:
        self.count = 0
        self.rate = 0.0  # events per second, smoothed
        self.last = 0.0  # events per second over the last interval, raw
        self.smoothing = smoothing
        self._mark = (now, 0)

    def add(self, events: int = 1) -> None:
        self.count += events

    def update(self, now: float, interval: float = 1.0) -> float:
        """Close an interval of at least `interval` seconds; returns the smoothed rate."""
        since, count = self._mark
        if now - since >= interval:
            self.last = (self.count - count) / (now - since)
            self.rate = self.last if self.rate == 0 else \
                (1 - self.smoothing) * self.rate + self.smoothing * self.last
            self._mark = (now, self.count)
        return self.rate

    @property
    def idle(self) -> bool:
        """Nothing counted in the last interval and the smoothed figure worn down to
        nothing (under 0.01/s): further updates would change nothing a person sees."""
        return self.last == 0 and self.rate < 0.01

    def rebase(self, now: float) -> None:
        """Start the next interval at `now`, for a meter whose updates paused while it
        was idle: the first interval after then measures the traffic, not the pause."""
        self._mark = (now, self.count)
