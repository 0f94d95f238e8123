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
from hypothesis import settings as hypothesis_settings
from smppd.fake_smsc import Behaviour, FakeSmsc
from twisted.internet import defer, reactor
from twisted.internet.threads import blockingCallFromThread

from smppd import ids
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
from smppd.twistedlog import install as install_twisted_logging
from tests.support.polling import until

# Property tests: deterministic examples (the same on every run, so CI cannot flake on
# a new random draw) and no per-example deadline (the suite runs under load).
hypothesis_settings.register_profile("smppd", derandomize=True, deadline=None,
                                     print_blob=True)
hypothesis_settings.load_profile("smppd")

# Twisted's events go to Python logging from the start, as in `smppd run`: otherwise
# Twisted buffers them and replays them all into whichever test first begins logging.
install_twisted_logging(reactor)

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


def self_signed(name: str, ip: bool = False) -> tuple[bytes, bytes]:
    """A self-signed CA certificate for `name` (a DNS name, or an IP address) and its
    key, both PEM: a test's own trust root for TLS to a server it started."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    alternative = x509.IPAddress(ipaddress.ip_address(name)) if ip else x509.DNSName(name)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([alternative]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM,
                              serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()))


@pytest.fixture(autouse=True)
def _id_clock() -> Iterator[None]:
    """Message ids never go back in time within a process (smppd.ids), so a test that
    makes ids at a fixed moment in 2030 left every later test's ids there, outside the
    "today" its reports ask for (a report test failed only after the store tests). Each
    test's ids start from where they were before it."""
    with ids._lock:
        saved = dict(ids._state)
    yield
    with ids._lock:
        ids._state.update(saved)


@pytest.fixture
def pg() -> Any:
    """A freshly emptied PostgreSQL test database at head (several instances share
    PostgreSQL only); skips with the reason when there is none."""
    from smppd.store import database
    from tests.store.conftest import POSTGRES_URL, _reset_postgres

    if not POSTGRES_URL:
        pytest.skip("needs SMPPD_TEST_POSTGRES_URL (several instances share PostgreSQL "
                    "only)")
    engine = database.make_engine(POSTGRES_URL, pool_size=4)
    _reset_postgres(engine)
    database.upgrade(engine)
    yield engine
    engine.dispose()
