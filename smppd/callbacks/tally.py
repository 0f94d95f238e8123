"""Delivery attempts counted for smppd_callback_deliveries_total and
smppd_callback_delivery_seconds, without prometheus_client: the drainer's process
counts here and reports the counts (smppd.callbacks.worker), and the daemon adds them
to its metrics in one go (CallbackMetrics.attempts); a list of every attempt's result
and seconds cost the daemon's reactor a JSON value and an observe() per attempt."""

from __future__ import annotations

from bisect import bisect_left

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def bucket(seconds: float) -> int:
    """The index of the bucket `seconds` falls in (len(BUCKETS): +Inf), as Prometheus
    counts it: the first upper bound not below it."""
    return bisect_left(BUCKETS, seconds)


class Tally:
    """Attempts counted as CallbackMetrics.attempts takes them: per result, per
    bucket, and their seconds; what the drainer's process reports to the daemon."""

    def __init__(self) -> None:
        self.results: dict[str, int] = {}
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.seconds = 0.0

    def add(self, result: str, seconds: float) -> None:
        self.results[result] = self.results.get(result, 0) + 1
        self.buckets[bucket(seconds)] += 1
        self.seconds += seconds

    def __bool__(self) -> bool:
        return bool(self.results)
