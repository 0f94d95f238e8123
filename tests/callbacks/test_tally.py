"""The drainer process's attempt counts (smppd.callbacks.tally) reach /metrics as a
prometheus_client Histogram and Counter would show each attempt observed one by one."""

from __future__ import annotations

import io
import json

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from smppd.callbacks.metrics import CallbackMetrics
from smppd.callbacks.tally import BUCKETS
from smppd.callbacks.worker import Relay

ATTEMPTS = [("delivered", 0.004), ("delivered", 0.005), ("delivered", 0.0051),
            ("timeout", 10.0), ("http_error", 31.0), ("delivered", 0.3)]


def lines(registry: CollectorRegistry, *names: str) -> list[str]:
    return sorted(line for line in generate_latest(registry).decode().splitlines()
                  if line.startswith(names) and "_created" not in line)


def reference() -> list[str]:
    registry = CollectorRegistry()
    counter = Counter("smppd_callback_deliveries_total", "x", ["result"], registry=registry)
    histogram = Histogram("smppd_callback_delivery_seconds", "x", buckets=BUCKETS,
                          registry=registry)
    for result, seconds in ATTEMPTS:
        counter.labels(result).inc()
        histogram.observe(seconds)
    return lines(registry, "smppd_callback_deliver")


def test_one_by_one_as_a_histogram_shows_them() -> None:
    registry = CollectorRegistry()
    metrics = CallbackMetrics(registry)
    for result, seconds in ATTEMPTS:
        metrics.attempt(result, seconds)
    assert lines(registry, "smppd_callback_deliver") == reference()


def test_reported_by_the_worker_as_counts_the_same() -> None:
    out = io.BytesIO()
    relay = Relay(out)
    for result, seconds in ATTEMPTS[:4]:
        relay.attempt(result, seconds)
    relay.report()
    relay.report()  # nothing new: no line
    for result, seconds in ATTEMPTS[4:]:
        relay.attempt(result, seconds)
    relay.gave_up()
    relay.report()
    reports = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(reports) == 2 and reports[1]["gave_up"] == 1
    registry = CollectorRegistry()
    metrics = CallbackMetrics(registry)
    for report in reports:  # as smppd.callbacks.process reads them
        metrics.attempts(report["results"], report["buckets"], report["seconds"])
    assert lines(registry, "smppd_callback_deliver") == reference()
