"""The callbacks as the daemon runs them: the endpoints' API, the drainer and its
HTTP client, the outbox metrics, and the hourly purge of old events. Given the
store's reader and writer, not the daemon, so that it can be started alone."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task

from ..checks import ApiError
from ..config import CallbackSettings
from ..ids import looks_like_id, new_id
from ..store.callback_operations import (
    CreateEndpoint,
    DeleteEndpoint,
    PurgeEvents,
    ResendEvent,
    RotateSecret,
    TooManyEndpoints,
)
from . import queries, signing
from .delivery import Sender
from .drainer import Drainer, DrainSettings
from .endpoints import Endpoint, EndpointSpec, Registry
from .metrics import CallbackMetrics
from .payload import iso
from .process import DrainerProcess

log = logging.getLogger("smppd.callbacks")
DEPTH_EVERY = 15.0  # seconds between reads of the outbox's depth for the metrics
REGISTRY_EVERY = 30.0  # ...and of every endpoint (changes by another instance)
PURGE_EVERY = 3600.0

Read = Callable[..., "defer.Deferred[Any]"]
Put = Callable[[Any], "defer.Deferred[Any]"]


class CallbackService:
    def __init__(self, reactor: Any, read: Read, put: Put, settings: CallbackSettings,
                 metrics: CallbackMetrics, account_names: Callable[[], dict[int, str]],
                 worker_spec: Callable[[bool], str] | None = None) -> None:
        self.reactor = reactor
        self.read = read
        self.put = put
        self.settings = settings
        self.metrics = metrics
        self.account_names = account_names
        self.registry = Registry()
        self.sender = Sender(reactor, settings.timeout, settings.concurrency, settings.ca_file)
        self.drainer = Drainer(reactor, read, put, self.sender.send, DrainSettings(
            settings.concurrency, settings.max_age, settings.retry_initial,
            settings.retry_max), metrics)
        # With `worker_spec` (see worker.spec) the drainer runs in a process of its
        # own (smppd.callbacks.worker explains why) and the one above stays idle.
        self.worker: DrainerProcess | None = None
        if worker_spec is not None:
            self.worker = DrainerProcess(reactor, worker_spec, metrics, put,
                                         stop_timeout=settings.timeout + 20.0)
        self._draining = False
        self._stopping = False
        self.shared = False  # other instances share the store (set_duty)
        self._loops: list[task.LoopingCall] = []

    def set_duty(self, duty: Callable[[], bool]) -> None:
        """Several instances (issue 14): drain only while `duty()` is true."""
        self.shared = True
        self.drainer.duty = duty
        if self.worker is not None:
            self.worker.duty = duty

    @defer.inlineCallbacks
    def start(self) -> Any:
        self.registry.replace((yield self.read(queries.all_endpoints)))
        # The drainer starts once there is something to drain (see _drain_when_needed):
        # most daemons have no callback endpoint, and the worker process's start costs
        # a CPU second and the drainer's reads a quarter of a CPU second an idle minute
        # (issue 13). Events still waiting with no endpoint left are drained too.
        self.metrics.names = lambda: sorted(self.account_names().values())
        if self.registry.has_endpoints() or (yield self.read(queries.outbox_depth)):
            yield self._start_draining()
        # An idle daemon should idle (issue 13): the depth is read only once something
        # can be waiting, and the registry is read again only where another instance
        # can change it; on one instance every change goes through this object.
        if self.shared:
            self._every(REGISTRY_EVERY, self._refresh, now=False)
        self._every(PURGE_EVERY, self._purge, now=True)

    def _every(self, seconds: float, job: Callable[[], Any], now: bool) -> None:
        loop = task.LoopingCall(job)
        loop.clock = self.reactor
        loop.start(seconds, now=now)
        self._loops.append(loop)

    def _start_draining(self) -> defer.Deferred[None]:
        self._draining = True
        self._every(DEPTH_EVERY, self._measure, now=True)
        if self.worker is not None:
            return self.worker.start()
        self.drainer.start()
        return defer.succeed(None)

    @property
    def wants_nudges(self) -> bool:
        return self._draining and self.worker is not None

    def nudge(self) -> None:
        """The daemon's writer committed a batch (reactor thread): the drainer's
        process reads new events now rather than at its next slow poll."""
        if self.wants_nudges:
            assert self.worker is not None
            self.worker.nudge()

    def _drain_when_needed(self) -> None:
        """The drainer starts with the first endpoint (made here, or found by the
        registry's refresh: made through another instance)."""
        if not self._draining and not self._stopping and self.registry.has_endpoints():
            self._start_draining().addErrback(self._log("start the drainer"))

    @defer.inlineCallbacks
    def stop(self) -> Any:
        self._stopping = True
        for loop in self._loops:
            if loop.running:
                loop.stop()
        if self.worker is not None:
            yield self.worker.stop()
        else:
            yield self.drainer.stop()
        yield self.sender.close()

    # Periodic -------------------------------------------------------------------------

    def _measure(self) -> None:
        def measured(rows: list[tuple[int, int, float]]) -> None:
            names = self.account_names()
            pending = {account_id: (count, at) for account_id, count, at in rows}
            now = self.reactor.seconds()
            self.metrics.depth = [(name, *pending.get(account_id, (0, now)))
                                  for account_id, name in sorted(names.items())]

        self.read(queries.outbox_depth).addCallbacks(measured, self._log("measure"))

    def _refresh(self) -> None:
        def found(endpoints: list[Endpoint]) -> None:
            self.registry.replace(endpoints)
            self._drain_when_needed()

        self.read(queries.all_endpoints).addCallbacks(found, self._log("read endpoints"))

    def _purge(self) -> None:
        self.put(PurgeEvents(self.settings.keep_days * 86400.0)).addCallbacks(
            lambda removed: removed and log.info("callbacks: %d old events purged", removed),
            self._log("purge"))

    @staticmethod
    def _log(what: str) -> Callable[[Any], None]:
        return lambda failure: log.error("callbacks: cannot %s: %s", what,
                                         failure.getErrorMessage())

    # The API ----------------------------------------------------------------------------

    def check_callback(self, account_id: int, endpoint_id: str | None) -> None:
        self.registry.check(account_id, endpoint_id)

    def create(self, account_id: int, spec: EndpointSpec) -> defer.Deferred[Any]:
        secret = spec.secret or signing.new_secret()
        endpoint_id = new_id(self.reactor.seconds())
        op = CreateEndpoint(account_id, endpoint_id, spec.url, spec.on_status, spec.on_final,
                            spec.on_inbound, spec.default, secret, self.reactor.seconds(),
                            self.settings.max_endpoints)

        def created(endpoint: dict[str, Any]) -> dict[str, Any]:
            self.registry.add(Endpoint(endpoint_id, account_id, spec.url, endpoint["default"]))
            self._drain_when_needed()
            log.info("callbacks: account %d registered endpoint %s", account_id, endpoint_id)
            # The key is shown this once; it is never rendered again.
            return {**endpoint, "created_at": iso(endpoint["created_at"]), "secret": secret}

        def refused(failure: Any) -> Any:
            if failure.check(TooManyEndpoints):
                raise ApiError(409, str(failure.value), "url")
            # The store may have committed it all the same (an outcome lost with its
            # connection); alone, nothing else would read the registry again.
            self._refresh()
            return failure

        return self.put(op).addCallbacks(created, refused)

    def list(self, account_id: int) -> defer.Deferred[Any]:
        return self.read(queries.list_endpoints, account_id).addCallback(
            lambda endpoints: {"callbacks": endpoints})

    def delete(self, account_id: int, endpoint_id: str) -> defer.Deferred[Any]:
        if not looks_like_id(endpoint_id):
            return defer.succeed(None)

        def deleted(found: bool) -> Any:
            if not found:
                return None
            self.registry.remove(account_id, endpoint_id)
            return {"id": endpoint_id, "deleted": True}

        return self.put(DeleteEndpoint(account_id, endpoint_id)).addCallback(deleted)

    def deliveries(self, account_id: int, endpoint_id: str, state: str | None,
                   cursor: int | None, limit: int) -> defer.Deferred[Any]:
        if not looks_like_id(endpoint_id):
            return defer.succeed(None)
        return self.read(queries.deliveries, account_id, endpoint_id, state, cursor,
                         limit).addCallback(
            lambda page: None if page is None else {"deliveries": page[0],
                                                    "next_cursor": page[1]})

    def failed(self, account_id: int | None, limit: int = 100) -> defer.Deferred[Any]:
        """Failed deliveries, newest first; None: every account's (the console)."""
        return self.read(queries.failed_events, account_id, limit)

    def resend(self, account_id: int | None, event_id: str) -> defer.Deferred[Any]:
        """A failed event pending again, due now; the drainer's sweep takes it.
        False when it is not a failed event (of that account)."""
        if not event_id or len(event_id) > 64:
            return defer.succeed(False)
        def resent(found: bool) -> bool:
            if found:
                if self.worker is not None:
                    self.worker.sweep_soon()  # the drainer here stays idle
                else:
                    self.drainer.sweep_soon()
            return found

        return self.put(ResendEvent(event_id, account_id, self.reactor.seconds())).addCallback(
            resent)

    def rotate_secret(self, account_id: int) -> defer.Deferred[Any]:
        return self.put(RotateSecret(account_id, signing.new_secret())).addCallback(
            lambda secret: {"secret": secret})
