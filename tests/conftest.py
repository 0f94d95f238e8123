"""Shared fixtures: one Twisted reactor in a background thread for the whole run.

Tests are plain functions; they act on the reactor with `call` (which waits for a
Deferred) and wait for conditions with `wait_for`, so everything the daemon does
runs on the reactor thread exactly as in production.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from smppd.fake_smsc import Behaviour, FakeSmsc
from twisted.internet import defer, reactor
from twisted.internet.threads import blockingCallFromThread

from smppd.daemon.app import reconnect_backoff
from smppd.protocol.connector import (
    BindKind,
    Connector,
    ConnectorConfig,
    ConnectorListener,
    Link,
    ReconnectPolicy,
    TlsConfig,
)
from smppd.protocol.session import SessionConfig
from tests.support.polling import until

# The running-daemon fixtures (start_daemon, Client) serve every test package.
pytest_plugins = ("tests.support.running",)

_thread: threading.Thread | None = None


def _ensure_reactor() -> None:
    global _thread
    if _thread is not None:
        return
    _thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False},
                               name="reactor", daemon=True)
    _thread.start()
    until(lambda: reactor.running, 10, "the reactor to start", interval=0.005)


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run fn on the reactor thread; wait for its result (or its Deferred's)."""
    _ensure_reactor()
    return blockingCallFromThread(reactor, lambda: defer.maybeDeferred(fn, *args, **kwargs))


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll predicate on the reactor thread until truthy; fail with `what` on timeout."""
    return until(lambda: call(predicate), timeout, what or getattr(predicate, "__name__", ""),
                 interval=0.01)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


class RecordingListener(ConnectorListener):
    """Records every connector callback; deliver answers `deliver_status`."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.results: dict[Any, Any] = {}
        self.unknown: dict[Any, Any] = {}
        self.late: list[Any] = []
        self.delivers: list[Any] = []
        self.bind_failures: list[tuple[Any, bool]] = []
        self.protocol_errors: list[str] = []
        self.bound_count = 0
        self.unbound_count = 0
        self.deliver_status: int | Callable[[Any], Any] = 0

    def bound(self, link: Link) -> None:
        self.bound_count += 1
        self.events.append(("bound", link.name))

    def unbound(self, link: Link, reason: str) -> None:
        self.unbound_count += 1
        self.events.append(("unbound", reason))

    def bind_failed(self, link: Link, event: Any, permanent: bool) -> None:
        self.bind_failures.append((event, permanent))

    def submit_result(self, link: Link, event: Any) -> None:
        self.results[event.token] = event

    def submit_unknown(self, link: Link, event: Any) -> None:
        self.unknown[event.token] = event

    def late_response(self, link: Link, event: Any) -> None:
        self.late.append(event)

    def deliver(self, link: Link, event: Any) -> Any:
        self.delivers.append(event.pdu)
        status = self.deliver_status
        return status(event) if callable(status) else status

    def protocol_error(self, link: Link, event: Any) -> None:
        self.protocol_errors.append(event.description)


@pytest.fixture(scope="session")
def reactor_running() -> Iterator[Any]:
    _ensure_reactor()
    yield reactor


@pytest.fixture
def smsc(reactor_running: Any) -> Iterator[FakeSmsc]:
    fake = FakeSmsc(Behaviour())
    port = call(fake.listen)
    fake.port = port.getHost().port
    yield fake
    call(port.stopListening)
    call(fake.drop_all)


def session_config(**overrides: Any) -> SessionConfig:
    values: dict[str, Any] = {"system_id": "acme", "password": "secret", "window": 10,
                              "response_timeout": 5.0, "enquire_link_interval": 30.0}
    values.update(overrides)
    return SessionConfig(**values)


@pytest.fixture
def connect(smsc: FakeSmsc) -> Iterator[Callable[..., tuple[Connector, RecordingListener]]]:
    """Start a connector to the fake SMSC; stopped (without waiting) at teardown."""
    started: list[Connector] = []

    def start(bind: BindKind = BindKind.TRANSCEIVER, port: int | None = None,
              tls: TlsConfig | None = None, reconnect: ReconnectPolicy | None = None,
              wait_bound: bool = True, **session: Any) -> tuple[Connector, RecordingListener]:
        listener = RecordingListener()
        config = ConnectorConfig("carrier-a", "127.0.0.1", port or smsc.port,
                                 session_config(**session), bind, tls,
                                 reconnect or ReconnectPolicy(initial=0.05, maximum=0.5))
        connector = Connector(config, listener, reactor, reconnect_backoff)
        started.append(connector)
        call(connector.start)
        if wait_bound:
            wait_for(lambda: connector.bound, what="connector bound")
        return connector, listener

    yield start
    for connector in started:
        call(connector.abort)
