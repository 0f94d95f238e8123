"""One SMSC: its binds (a transceiver, or a transmitter plus a receiver), reconnects, TLS.

Why not twisted.application.internet.ClientService: it resets its retry delay as
soon as TCP connects, so a carrier that accepts TCP and then rejects every bind
would be re-bound at the initial delay for ever; and it cannot stop retrying on a
bad password, which is what keeps an account from being locked by the carrier.
A Link here resets its back-off only once a bind has carried traffic (a submit
accepted, or a deliver_sm received) or stayed up `stable_after` seconds, and parks
in `auth_failed` until the configuration is reloaded. So a peer that refuses binds
backs off to the cap, while a link that drops every few dozen submits reconnects at
the initial delay every time instead of starving (issue 8).
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from twisted.internet import defer
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.error import ConnectingCancelledError, NotConnectingError
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Factory

from . import command_status
from .constants import ESME_RX_T_APPN
from .session import (
    BindFailed,
    BindMode,
    Bound,
    DeliverReceived,
    EsmeSession,
    Event,
    LateResponse,
    PduCounters,
    ProtocolError,
    SessionConfig,
    SessionError,
    SubmitResult,
    SubmitUnknown,
    UnbindReceived,
)
from .twisted_transport import SessionProtocol

log = logging.getLogger("smppd.connector")


class BindKind(StrEnum):
    TRANSCEIVER = "transceiver"
    TRANSMITTER_RECEIVER = "transmitter+receiver"


@dataclass(frozen=True, slots=True)
class TlsConfig:
    ca_file: str | None = None  # PEM; None means the system's trust store
    server_name: str | None = None  # name to verify; defaults to the host


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    initial: float = 1.0
    maximum: float = 60.0
    factor: float = 2.0
    stable_after: float = 30.0  # a bind up this long resets the back-off
    connect_timeout: float = 10.0
    # Beyond connect_timeout: a connection attempt whose set-up never reports back
    # (an exception inside Twisted's TLS layer) is given up after this much more.
    setup_grace: float = 5.0


@dataclass(frozen=True, slots=True)
class ConnectorConfig:
    name: str
    host: str
    port: int
    session: SessionConfig
    bind: BindKind = BindKind.TRANSCEIVER
    tls: TlsConfig | None = None
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)


class Backoff(Protocol):
    """Reconnect delays (smppd.throttle.backoff.Backoff is the one smppd uses)."""

    def next_delay(self) -> float: ...

    def reset(self) -> None: ...


# (config, reactor, tls or None) -> IStreamClientEndpoint
EndpointFactory = Callable[["ConnectorConfig", Any, Any], Any]


def client_endpoint(config: ConnectorConfig, reactor: Any, tls: Any = None) -> Any:
    """TCP to the SMSC, wrapped in TLS when `tls` (a tls.ClientTls) is given."""
    timeout = config.reconnect.connect_timeout
    endpoint: Any
    if isIPAddress(config.host):  # no resolver thread for a literal address
        endpoint = TCP4ClientEndpoint(reactor, config.host, config.port, timeout=timeout)
    elif isIPv6Address(config.host):
        endpoint = TCP6ClientEndpoint(reactor, config.host, config.port, timeout=timeout)
    else:
        endpoint = HostnameEndpoint(reactor, config.host, config.port, timeout=timeout)
    return endpoint if tls is None else wrapClientTLS(tls, endpoint)


class LinkState(StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    BINDING = "binding"
    BOUND = "bound"
    BACKOFF = "backoff"
    AUTH_FAILED = "auth_failed"
    STOPPED = "stopped"


class ConnectorListener:
    """What a connector reports. Override what you need; the defaults log or ack."""

    def bound(self, link: Link) -> None:
        pass

    def unbound(self, link: Link, reason: str) -> None:
        pass

    def bind_failed(self, link: Link, event: BindFailed, permanent: bool) -> None:
        pass

    def submit_result(self, link: Link, event: SubmitResult) -> None:
        pass

    def submit_unknown(self, link: Link, event: SubmitUnknown) -> None:
        pass

    def late_response(self, link: Link, event: LateResponse) -> None:
        pass

    def deliver(self, link: Link, event: DeliverReceived) -> int | defer.Deferred[int]:
        """Return the deliver_sm_resp status, or a Deferred of it once the message is
        durably kept. A failure answers ESME_RX_T_APPN so the SMSC redelivers later."""
        return 0

    def protocol_error(self, link: Link, event: ProtocolError) -> None:
        pass


class Link:
    """One TCP connection and bind, re-established after every loss."""

    def __init__(self, connector: Connector, mode: BindMode, reactor: Any, backoff: Backoff,
                 endpoint: EndpointFactory = client_endpoint) -> None:
        self.connector = connector
        self.mode = mode
        self.reactor = reactor
        self.state = LinkState.IDLE
        self.protocol: SessionProtocol | None = None
        self.last_bind_error: str | None = None
        self.connect_attempts = 0
        self.backoff = backoff
        self.endpoint = endpoint
        self._carried_traffic = False  # this connection had a submit accepted
        self._retry_call: IDelayedCall | None = None
        self._stable_call: IDelayedCall | None = None
        self._setup_call: IDelayedCall | None = None
        self._connecting: defer.Deferred[Any] | None = None  # the endpoint's, until it answers
        self._stopped: defer.Deferred[None] | None = None

    @property
    def name(self) -> str:
        suffix = "" if self.mode is BindMode.TRANSCEIVER else f"/{self.mode.value}"
        return self.connector.config.name + suffix

    @property
    def can_transmit(self) -> bool:
        return self.mode is not BindMode.RECEIVER

    @property
    def window_available(self) -> int:
        if self.state is not LinkState.BOUND or self.protocol is None:
            return 0
        return self.protocol.session.window_available

    @property
    def in_flight(self) -> int:
        return self.protocol.session.in_flight if self.protocol is not None else 0

    # Lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        if self.state in (LinkState.IDLE, LinkState.STOPPED, LinkState.AUTH_FAILED):
            self.backoff.reset()
            self._connect()

    def stop(self) -> defer.Deferred[None]:
        """Unbind gracefully (outstanding responses are awaited up to the session's
        drain timeout) and stay down."""
        self.state = LinkState.STOPPED  # first: a cancelled attempt must not retry
        self._cancel_calls()
        if self.protocol is None:
            return defer.succeed(None)
        self._stopped = defer.Deferred()
        self.protocol.unbind()
        return self._stopped

    def abort(self) -> None:
        """Drop the connection at once, no unbind, and stay down (tests, fatal errors)."""
        self.state = LinkState.STOPPED
        self._cancel_calls()
        if self.protocol is not None:
            self.protocol.abort()

    def drop(self, reason: str) -> None:
        """Drop the connection and bind again after the back-off (the bind is broken:
        the SMSC answered as if we were not bound)."""
        if self.protocol is not None and self.state is LinkState.BOUND:
            log.warning("smsc=%s dropping the bind: %s", self.name, reason)
            self.protocol.drop(reason)

    def _tls(self) -> Any:
        """A fresh TLS set-up per attempt, so a renewed CA file is read again."""
        cfg = self.connector.config
        if cfg.tls is None:
            return None
        from .tls import ClientTls  # pyOpenSSL only when TLS is configured

        return ClientTls(cfg.tls.server_name or cfg.host, cfg.tls.ca_file)

    def _connect(self) -> None:
        self._retry_call = None
        self.state = LinkState.CONNECTING
        self.connect_attempts += 1
        session = EsmeSession(replace(self.connector.config.session, bind_mode=self.mode),
                              self.connector.counters)
        try:
            tls = self._tls()
        except Exception as exc:  # TlsError: a CA file that cannot be read or parsed
            self.last_bind_error = str(exc)
            log.error("smsc=%s TLS: %s", self.name, exc)
            self._schedule_retry(f"TLS: {exc}")
            return
        factory = Factory.forProtocol(
            lambda: SessionProtocol(session, self._events, self.reactor, self._lost, tls,
                                    self.name))
        d = self.endpoint(self.connector.config, self.reactor, tls).connect(factory)
        # The endpoint answers within connect_timeout, unless setting up the
        # connection itself failed inside Twisted (as pyOpenSSL's callbacks did
        # under MemoryDenyWriteExecute): then this keeps the link from staying
        # in "connecting" for ever.
        policy = self.connector.config.reconnect
        self._setup_call = self.reactor.callLater(policy.connect_timeout + policy.setup_grace,
                                                  self._give_up_set_up, d)
        self._connecting = d
        d.addBoth(self._set_up_done)
        d.addCallbacks(self._connected, self._connect_failed)

    def _set_up_done(self, result: Any) -> Any:
        self._connecting = None
        if self._setup_call is not None and self._setup_call.active():
            self._setup_call.cancel()
        self._setup_call = None
        return result

    def _give_up_set_up(self, d: defer.Deferred[Any]) -> None:
        self._setup_call = None
        policy = self.connector.config.reconnect
        self.last_bind_error = (f"connection set-up did not complete in "
                                f"{policy.connect_timeout + policy.setup_grace:g} s")
        log.warning("smsc=%s %s", self.name, self.last_bind_error)
        _cancel_connecting(d)

    def _connected(self, protocol: SessionProtocol) -> None:
        if self.state is LinkState.STOPPED:
            protocol.abort()
            return
        self.protocol = protocol
        self.state = LinkState.BINDING
        self._carried_traffic = False

    def _connect_failed(self, failure: Any) -> None:
        if self.state is LinkState.STOPPED:
            return
        if failure.check(defer.CancelledError, ConnectingCancelledError):
            self._schedule_retry(self.last_bind_error or "connection set-up cancelled")
            return
        self._schedule_retry(f"connect failed: {failure.getErrorMessage()}")

    def _lost(self, protocol: SessionProtocol, reason: str) -> None:
        if protocol is not self.protocol:
            return
        self.protocol = None
        was_bound = self.state is LinkState.BOUND
        if self._stable_call is not None and self._stable_call.active():
            self._stable_call.cancel()
        self._stable_call = None
        if was_bound:
            self.connector.transitions["down"] += 1
        if was_bound or self.state is LinkState.STOPPED:
            level = logging.INFO if self.state is LinkState.STOPPED else logging.WARNING
            log.log(level, "smsc=%s unbound: %s", self.name, reason)
            self.connector.listener.unbound(self, reason)
        elif protocol.tls_error is not None:
            self.last_bind_error = protocol.tls_error
            log.warning("smsc=%s %s", self.name, protocol.tls_error)
        if self.state is LinkState.STOPPED:
            if self._stopped is not None:
                stopped, self._stopped = self._stopped, None
                stopped.callback(None)
            return
        if self.state is LinkState.AUTH_FAILED:
            return
        self._schedule_retry(reason)

    def _schedule_retry(self, reason: str) -> None:
        delay = self.backoff.next_delay()
        self.state = LinkState.BACKOFF
        log.info("smsc=%s reconnecting in %.1f s (%s)", self.name, delay, reason)
        self._retry_call = self.reactor.callLater(delay, self._connect)

    def _traffic(self) -> None:
        """This bind works: a link that drops every few seconds after real traffic must
        not climb to the maximum delay."""
        if not self._carried_traffic:
            self._carried_traffic = True
            self.backoff.reset()

    def _stable(self) -> None:
        self._stable_call = None
        self.backoff.reset()

    def _cancel_calls(self) -> None:
        for call in (self._retry_call, self._stable_call, self._setup_call):
            if call is not None and call.active():
                call.cancel()
        self._retry_call = self._stable_call = self._setup_call = None
        if self._connecting is not None:  # stopped mid-attempt: drop the attempt too
            _cancel_connecting(self._connecting)

    # Traffic --------------------------------------------------------------------

    def submit(self, fields: dict[str, Any], token: Any, command: str = "submit_sm",
               flush: bool = True) -> int:
        """Send one submit; raises SessionError when not bound or the window is full."""
        if self.protocol is None:
            raise SessionError(f"{self.name} is not connected")
        return self.protocol.submit(fields, token, command, flush)

    def flush(self) -> None:
        if self.protocol is not None:
            self.protocol.pump()

    def _events(self, protocol: SessionProtocol, events: list[Event]) -> None:
        listener = self.connector.listener
        for event in events:
            if isinstance(event, SubmitResult):
                if event.status == 0:
                    self._traffic()
                listener.submit_result(self, event)
            elif isinstance(event, DeliverReceived):
                self._traffic()
                self._deliver(protocol, event)
            elif isinstance(event, SubmitUnknown):
                listener.submit_unknown(self, event)
            elif isinstance(event, Bound):
                self.state = LinkState.BOUND
                self.connector.transitions["up"] += 1
                self.last_bind_error = None
                log.info("smsc=%s bound as %s (SMSC system_id %r)", self.name,
                         self.mode.value, event.system_id)
                self._stable_call = self.reactor.callLater(
                    self.connector.config.reconnect.stable_after, self._stable)
                listener.bound(self)
            elif isinstance(event, BindFailed):
                permanent = command_status.is_auth_failure(event.status)
                self.last_bind_error = event.status_name
                if permanent:
                    self.state = LinkState.AUTH_FAILED
                    log.error("smsc=%s bind rejected with %s: credentials refused; not "
                              "retrying until the configuration is reloaded",
                              self.name, event.status_name)
                else:
                    log.warning("smsc=%s bind failed: %s (%s)", self.name,
                                event.status_name, event.reason)
                listener.bind_failed(self, event, permanent)
            elif isinstance(event, LateResponse):
                listener.late_response(self, event)
            elif isinstance(event, ProtocolError):
                log.warning("smsc=%s protocol error: %s", self.name, event.description)
                listener.protocol_error(self, event)
            elif isinstance(event, UnbindReceived):
                log.warning("smsc=%s the SMSC sent unbind", self.name)

    def _deliver(self, protocol: SessionProtocol, event: DeliverReceived) -> None:
        try:
            result = self.connector.listener.deliver(self, event)
        except Exception:
            log.exception("smsc=%s deliver handler failed", self.name)
            protocol.respond(event.handle, ESME_RX_T_APPN)
            return
        if isinstance(result, defer.Deferred):
            def answered(status: int) -> None:
                protocol.respond(event.handle, status)

            def failed(failure: Any) -> None:
                log.error("smsc=%s deliver not kept, asking for redelivery: %s",
                          self.name, failure.getErrorMessage())
                protocol.respond(event.handle, ESME_RX_T_APPN)

            result.addCallbacks(answered, failed)
        else:
            protocol.respond(event.handle, result)


class Connector:
    """All binds to one SMSC."""

    def __init__(self, config: ConnectorConfig, listener: ConnectorListener, reactor: Any,
                 backoff: Callable[[ReconnectPolicy], Backoff],
                 endpoint: EndpointFactory = client_endpoint) -> None:
        """`backoff` makes each link's reconnect back-off from the policy; `endpoint`
        makes the client endpoint (tests give a fake one and run on task.Clock)."""
        self.config = config
        self.listener = listener
        self.reactor = reactor
        self.new_backoff = backoff
        self.endpoint = endpoint
        self.links = self._links(config)
        self.counters = PduCounters()
        self.transitions: Counter[str] = Counter()  # "up" / "down", read by the metrics

    def _links(self, config: ConnectorConfig) -> list[Link]:
        return [Link(self, mode, self.reactor, self.new_backoff(config.reconnect),
                     self.endpoint) for mode in _modes(config.bind)]

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def transmitters(self) -> Iterable[Link]:
        return (link for link in self.links if link.can_transmit)

    @property
    def bound(self) -> bool:
        """Ready to send: every transmitting link is bound."""
        return all(link.state is LinkState.BOUND for link in self.transmitters)

    @property
    def window_available(self) -> int:
        return sum(link.window_available for link in self.transmitters)

    def state(self) -> str:
        states = {link.state for link in self.links}
        if LinkState.AUTH_FAILED in states:
            return LinkState.AUTH_FAILED.value
        if states == {LinkState.BOUND}:
            return LinkState.BOUND.value
        return "/".join(sorted(s.value for s in states))

    def start(self) -> None:
        for link in self.links:
            link.start()

    def stop(self) -> defer.Deferred[Any]:
        return defer.DeferredList([link.stop() for link in self.links])

    def abort(self) -> None:
        for link in self.links:
            link.abort()

    def submit(self, fields: dict[str, Any], token: Any, flush: bool = True) -> Link | None:
        """Submit on a bound transmitting link with room in its window; None if none has."""
        for link in self.transmitters:
            if link.window_available > 0:
                link.submit(fields, token, flush=flush)
                return link
        return None

    def flush(self) -> None:
        for link in self.transmitters:
            link.flush()

    def rebind(self, reason: str) -> None:
        for link in self.transmitters:
            link.drop(reason)

    def reload(self, config: ConnectorConfig) -> bool:
        """Apply a new configuration. Binds are re-established only when something
        they depend on changed (returns True then); a window change applies from the
        next bind. A link parked in auth_failed is retried on any reload: that is the
        operator's way of saying the credentials are fixed."""
        old = self.config
        self.config = config
        same_session = replace(old.session, window=config.session.window) == config.session
        if (same_session and old.host == config.host and old.port == config.port
                and old.bind == config.bind and old.tls == config.tls):
            for link in self.links:
                if link.state is LinkState.AUTH_FAILED:
                    link.start()
            return False
        stopping = self.stop()

        def restart(_: Any) -> None:
            self.links = self._links(config)
            self.start()

        stopping.addCallback(restart)
        return True


def _cancel_connecting(d: defer.Deferred[Any]) -> None:
    # A TCP endpoint's canceller fails `d` and then complains that the connector
    # is no longer connecting when it already connected; `d` is failed either way.
    with contextlib.suppress(NotConnectingError):
        d.cancel()


def _modes(kind: BindKind) -> list[BindMode]:
    if kind is BindKind.TRANSCEIVER:
        return [BindMode.TRANSCEIVER]
    return [BindMode.TRANSMITTER, BindMode.RECEIVER]
