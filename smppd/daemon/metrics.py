"""Prometheus metrics. A registry per daemon (tests run several in one process).

Hot-path counts that change thousands of times a second (PDUs by command, queue
depth, window in use, binds) are not pushed into prometheus-client objects on every
event: a collector reads them from the connectors and the dispatcher at scrape
time. Labels are low-cardinality only: smsc, command, status, result.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from ..protocol import constants as c

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Observed once per submit_sm: kept as plain counts and exported at scrape
        # time (prometheus-client's Histogram.observe took a lock and a bucket scan,
        # 2% of the daemon's CPU on the job path).
        self.latency: dict[str, _Latency] = {}
        self.receipts = Counter("smppd_receipts_total", "Delivery receipts by status",
                                ["smsc", "status"], registry=r)
        self.receipts_unparsable = Counter(
            "smppd_receipts_unparsable_total", "Receipts without an id or a state (acked)",
            ["smsc"], registry=r)
        self.inbound = Counter("smppd_inbound_messages_total", "MO messages kept",
                               ["smsc"], registry=r)
        self.inbound_expired = Counter(
            "smppd_inbound_expired_total", "MO messages whose parts never all arrived",
            registry=r)
        self.inbound_duplicates = Counter(
            "smppd_inbound_duplicates_total", "Redelivered MO parts dropped", ["smsc"],
            registry=r)
        self.api_messages = Counter("smppd_api_messages_total",
                                    "POST /v1/messages by result", ["result"], registry=r)
        self.throttled_total = Counter("smppd_throttled_total",
                                       "ESME_RTHROTTLED answers", ["smsc"], registry=r)
        self.resent_total = Counter(
            "smppd_resent_total", "Parts sent again after no response (cause: connection, "
            "unbound, timeout); each may be a duplicate at the SMSC", ["smsc", "cause"],
            registry=r)
        self.unknown_total = Counter("smppd_submit_unknown_total",
                                     "Submits without a response (outcome unknown)",
                                     ["smsc"], registry=r)
        self.store_batch = Histogram(
            "smppd_store_batch_seconds", "Time to write one batch", buckets=LATENCY_BUCKETS,
            registry=r)
        self.store_operations = Counter("smppd_store_operations_total",
                                        "Operations written to the store", registry=r)
        # Labelled children looked up once (see `_child`); their label values come from
        # fixed vocabularies (route templates, statuses, SMSC names), so this stays small.
        self._children: dict[tuple[Any, ...], Any] = {}
        self._add_operations(r)

    # Operations (issue 13): what an operator's dashboard and alerts are built on.
    def _add_operations(self, r: CollectorRegistry) -> None:
        # process_* (CPU, memory, file descriptors, start time) and python_info: the
        # library's own collectors, registered on this daemon's registry too.
        r.register(PROCESS_COLLECTOR)
        r.register(PLATFORM_COLLECTOR)
        Info("smppd_build", "The running smppd's version", registry=r).info(
            {"version": _version()})
        self.reload_ok = Gauge("smppd_config_last_reload_successful",
                               "1 when the last configuration (re)load was applied, 0 when "
                               "it was refused", registry=r)
        self.reload_time = Gauge("smppd_config_last_reload_success_timestamp_seconds",
                                 "When the configuration was last applied (Unix time)",
                                 registry=r)
        self.reloads = Counter("smppd_config_reloads_total", "Reloads (SIGHUP) by result",
                               ["result"], registry=r)
        self.http_requests = Counter("smppd_http_requests_total",
                                     "HTTP requests by route template and status class",
                                     ["route", "status_class"], registry=r)
        self.reload_ok.set(1)
        self.reload_time.set_to_current_time()

    def reloaded(self, applied: bool) -> None:
        self.reloads.labels("success" if applied else "failure").inc()
        self.reload_ok.set(1 if applied else 0)
        if applied:
            self.reload_time.set_to_current_time()

    def _child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, kept: prometheus-client takes a lock and checks
        the values on every labels() call, and the API counted two per message."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def http_request(self, route: str, status: int) -> None:
        self._child(self.http_requests, route, f"{status // 100}xx").inc()

    def api_message(self, result: str) -> None:
        """POST /v1/messages answered: accepted, replayed, invalid, insufficient_balance
        or unavailable."""
        self._child(self.api_messages, result).inc()

    def response(self, smsc: str, status: int, seconds: float) -> None:
        latency = self.latency.get(smsc)
        if latency is None:
            latency = self.latency[smsc] = _Latency()
        latency.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        latency.total += seconds

    def throttled(self, smsc: str) -> None:
        self.throttled_total.labels(smsc).inc()

    def resent(self, smsc: str, cause: str) -> None:
        self.resent_total.labels(smsc, cause).inc()

    def unknown(self, smsc: str) -> None:
        self.unknown_total.labels(smsc).inc()

    def receipt(self, smsc: str, status: str) -> None:
        self._child(self.receipts, smsc, status).inc()

    def batch(self, operations: int, seconds: float) -> None:
        self.store_batch.observe(seconds)
        self.store_operations.inc(operations)

    def add_state(self, read: Callable[[], dict[str, Any]]) -> None:
        self.registry.register(_StateCollector(read, self.latency))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("smppd")
    except PackageNotFoundError:  # run from a source tree without installing
        return "unknown"


class _Latency:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0


class _StateCollector(Collector):
    """Reads the daemon's live state at scrape time."""

    def __init__(self, read: Callable[[], dict[str, Any]],
                 latency: dict[str, _Latency]) -> None:
        self.read = read
        self.latency = latency

    def collect(self) -> Iterable[Any]:
        state = self.read()
        bound = GaugeMetricFamily("smppd_smsc_bound", "1 when every transmitting bind is up",
                                  labels=["smsc"])
        window = GaugeMetricFamily("smppd_window_in_use", "submit_sm awaiting a response",
                                   labels=["smsc"])
        capacity = GaugeMetricFamily("smppd_window_capacity",
                                     "submit_sm that may await a response at once (the "
                                     "window times the transmitting binds)", labels=["smsc"])
        transitions = CounterMetricFamily("smppd_bind_transitions",
                                          "Binds coming up and going down",
                                          labels=["smsc", "direction"])
        sent = CounterMetricFamily("smppd_pdus_sent", "PDUs sent", labels=["smsc", "command"])
        received = CounterMetricFamily("smppd_pdus_received", "PDUs received",
                                       labels=["smsc", "command", "status"])
        for name, connector in state["connectors"].items():
            bound.add_metric([name], 1.0 if connector.bound else 0.0)
            window.add_metric([name], float(sum(link.in_flight for link in connector.links)))
            capacity.add_metric([name], float(connector.config.session.window
                                              * sum(1 for _ in connector.transmitters)))
            for direction in ("up", "down"):
                transitions.add_metric([name, direction], connector.transitions[direction])
            for command, count in list(connector.counters.sent.items()):
                sent.add_metric([name, command], count)
            for (command, status), count in list(connector.counters.received.items()):
                received.add_metric([name, command, c.status_name(status)], count)
        yield from (bound, window, capacity, transitions, sent, received)
        histogram = HistogramMetricFamily(
            "smppd_submit_duration_seconds", "submit_sm to submit_sm_resp round trip",
            labels=["smsc"])
        for name, latency in list(self.latency.items()):
            cumulative, buckets = 0, []
            for bound_value, count in zip((*LATENCY_BUCKETS, float("inf")), latency.counts,
                                          strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound_value == float("inf") else str(bound_value),
                                cumulative))
            histogram.add_metric([name], buckets, latency.total)
        yield histogram
        modes = GaugeMetricFamily(
            "smppd_receipt_id_mode", "1 for how each SMSC's receipt ids read (learning: not "
            "learnt yet; configured: an explicit id_format)", labels=["smsc", "source", "mode"])
        for name, ids in state.get("id_modes", {}).items():
            learners = getattr(ids, "learners", None)
            if learners is None:
                modes.add_metric([name, "any", "configured"], 1.0)
                continue
            for source, learner in learners.items():
                modes.add_metric([name, source.value,
                                  learner.mode.value if learner.mode else "learning"], 1.0)
        yield modes
        yield GaugeMetricFamily("smppd_queue_depth", "Messages waiting to be sent (in memory)",
                                value=state["queue_depth"])
        yield GaugeMetricFamily("smppd_store_backlog", "Operations waiting for the writer",
                                value=state["store_backlog"])
        # Store faults (issue 8): what /readyz says of the store, and for how long
        # work has waited with nothing committed (0 while idle or writing).
        yield GaugeMetricFamily("smppd_store_available",
                                "1 while the store commits what it is given",
                                value=1.0 if state.get("store_available", True) else 0.0)
        yield GaugeMetricFamily("smppd_store_stalled_seconds",
                                "Seconds work has waited with no commit",
                                value=state.get("store_stalled", 0.0))
        yield GaugeMetricFamily("smppd_parts_unsettled",
                                "Parts sent whose outcome is not yet committed",
                                value=state["unsettled"])
