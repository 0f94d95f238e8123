"""The callbacks service on an idle daemon (issue 13): alone and with no endpoint it
reads nothing from the store after its start; the outbox depth is read once something
can wait, and the endpoint registry is re-read only where another instance shares the
store. Simulated time (task.Clock), a recording store."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet import defer, task

from smppd.callbacks import queries
from smppd.callbacks.endpoints import EndpointSpec
from smppd.callbacks.metrics import CallbackMetrics
from smppd.callbacks.service import DEPTH_EVERY, REGISTRY_EVERY, CallbackService
from smppd.config import CallbackSettings


class RecordingStore:
    """read/put as the daemon's: answers at once, remembers what was asked."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    def read(self, query: Any, *args: Any) -> defer.Deferred[Any]:
        self.reads.append(query.__name__)
        return defer.succeed([])

    def put(self, op: Any) -> defer.Deferred[Any]:
        if type(op).__name__ == "CreateEndpoint":
            return defer.succeed({"id": op.endpoint_id, "url": op.url, "default": True,
                                  "created_at": datetime(2026, 11, 30)})
        return defer.succeed(0)


def _service(clock: task.Clock, store: RecordingStore,
             registry: CollectorRegistry) -> CallbackService:
    return CallbackService(clock, store.read, store.put, CallbackSettings(process=False),
                           CallbackMetrics(registry), lambda: {1: "acme", 2: "beta"})


def test_alone_with_no_endpoint_the_service_reads_nothing_after_its_start() -> None:
    clock, store, registry = task.Clock(), RecordingStore(), CollectorRegistry()
    service = _service(clock, store, registry)
    service.start()
    assert store.reads == ["all_endpoints", "outbox_depth"]
    for _ in range(240):  # an idle hour
        clock.advance(15)
    assert store.reads == ["all_endpoints", "outbox_depth"]
    scraped = generate_latest(registry).decode()
    assert 'smppd_callback_outbox_depth{account="acme"} 0.0' in scraped
    assert 'smppd_callback_outbox_oldest_seconds{account="beta"} 0.0' in scraped

    # The first endpoint starts the drain, and with it the depth's reads.
    service.create(1, EndpointSpec("http://127.0.0.1:9/hook", True, True, True, None, None))
    store.reads.clear()
    for _ in range(4):
        clock.advance(DEPTH_EVERY)
    assert store.reads.count(queries.outbox_depth.__name__) >= 4
    assert queries.all_endpoints.__name__ not in store.reads
    service.stop()


def test_shared_with_other_instances_the_registry_is_read_again() -> None:
    clock, store = task.Clock(), RecordingStore()
    service = _service(clock, store, CollectorRegistry())
    service.set_duty(lambda: True)
    service.start()
    store.reads.clear()
    for _ in range(3):
        clock.advance(REGISTRY_EVERY)
    assert store.reads.count(queries.all_endpoints.__name__) == 3
    service.stop()


def test_an_endpoint_whose_write_failed_is_looked_for_again() -> None:
    """The store may have committed an endpoint whose outcome was lost: alone, nothing
    else reads the registry again, so the failure does."""
    clock, store = task.Clock(), RecordingStore()
    service = _service(clock, store, CollectorRegistry())
    service.start()
    service.put = lambda op: defer.fail(ConnectionError("the connection was lost"))
    store.reads.clear()
    failed = service.create(1, EndpointSpec("http://127.0.0.1:9/hook", True, True, True,
                                            None, None))
    failures: list[Any] = []
    failed.addErrback(failures.append)
    assert failures and failures[0].check(ConnectionError)
    assert store.reads == ["all_endpoints"]
    service.stop()
