"""Metrics of callbacks and links, on the daemon's registry. Labels are a result, an
agent class or an account name: never a URL, an event id or a code.

The outbox's depth and oldest event per account come from a periodic read on the
read pool (see service.py), kept here and exported at scrape time, so a scrape
never waits on the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .tally import BUCKETS, bucket


class CallbackMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "smppd_callback_deliveries_total", "Callback delivery attempts by result "
            "(delivered, http_error, timeout, connect_error, tls_error, connection_error)",
            ["result"], registry=registry)
        # Counted here and exported at scrape time (_DurationCollector) rather than a
        # prometheus_client Histogram: the drainer's process reports its attempts as
        # counts per bucket, added here at once, where a Histogram takes one observe()
        # per attempt (2 us each on the daemon's reactor, thousands a second in a drain).
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.seconds = 0.0
        self.failed = Counter("smppd_callback_events_failed_total",
                              "Events given up after callbacks.max_age", registry=registry)
        self.redirects = Counter("smppd_link_redirects_total",
                                 "Short-link requests by result (found, unknown)",
                                 ["result"], registry=registry)
        self.clicks = Counter("smppd_link_clicks_total", "Short-link clicks by agent class",
                              ["agent"], registry=registry)
        self.unrecorded = Counter("smppd_link_clicks_unrecorded_total",
                                  "Short-link clicks answered but not recorded (the click "
                                  "queue was full, or the store refused a batch)",
                                  registry=registry)
        # (account, pending, oldest at), or None while nothing can be waiting (no
        # endpoint ever seen): then every account in `names()` shows zero, with no read.
        self.depth: list[tuple[str, int, float]] | None = None
        self.names: Callable[[], Iterable[str]] = tuple
        self._children: dict[str, Any] = {}
        registry.register(_OutboxCollector(self))
        registry.register(_DurationCollector(self))

    def attempt(self, result: str, seconds: float) -> None:
        self._child(result).inc()
        self.buckets[bucket(seconds)] += 1
        self.seconds += seconds

    def attempts(self, results: Mapping[str, int], buckets: Sequence[int],
                 seconds: float) -> None:
        """Many attempts at once, as the drainer's process counts them (Tally)."""
        for result, count in results.items():
            self._child(result).inc(count)
        for index, count in enumerate(buckets[:len(self.buckets)]):
            self.buckets[index] += count
        self.seconds += seconds

    def _child(self, result: str) -> Any:
        child = self._children.get(result)
        if child is None:
            child = self._children[result] = self.deliveries.labels(result)
        return child

    def gave_up(self) -> None:
        self.failed.inc()


class _OutboxCollector(Collector):
    def __init__(self, metrics: CallbackMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Any]:
        depth = GaugeMetricFamily("smppd_callback_outbox_depth",
                                  "Callback events not yet delivered", labels=["account"])
        oldest = GaugeMetricFamily("smppd_callback_outbox_oldest_seconds",
                                   "Age of the oldest callback event not yet delivered",
                                   labels=["account"])
        now = time.time()
        rows = self.metrics.depth
        if rows is None:
            rows = [(name, 0, now) for name in self.metrics.names()]
        for account, count, at in rows:
            depth.add_metric([account], float(count))
            oldest.add_metric([account], max(0.0, now - at) if count else 0.0)
        yield depth
        yield oldest


class _DurationCollector(Collector):
    """smppd_callback_delivery_seconds, as a Histogram would export it."""

    def __init__(self, metrics: CallbackMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Any]:
        counts, total = list(self.metrics.buckets), self.metrics.seconds
        cumulative, running = [], 0
        for bound, count in zip((*BUCKETS, float("inf")), counts, strict=True):
            running += count
            cumulative.append((floatToGoString(bound), running))
        yield HistogramMetricFamily("smppd_callback_delivery_seconds",
                                    "Time of one callback delivery attempt",
                                    buckets=cumulative, sum_value=total)

