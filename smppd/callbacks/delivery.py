"""One delivery attempt: a signed JSON POST with Twisted's Agent over a persistent
connection pool (connections are reused per host, up to the per-endpoint
concurrency), https verified against the system's CAs or the configured one.

Any 2xx is delivered; everything else (another status, a refused or dropped
connection, a TLS failure, no answer within the timeout) is a failed attempt with a
short reason for the API, and a result label for the metrics.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import hyperlink
from twisted.internet import defer, error, protocol
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.ssl import Certificate
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer
from zope.interface import implementer

from . import signing
from .queries import Event

ERROR_BODY_BYTES = 200  # of a refusal's body kept in last_error


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    result: str  # metrics label: delivered | http_error | timeout | connect_error | ...
    status: int | None = None
    error: str | None = None
    seconds: float = 0.0


@implementer(IBodyProducer)
class _Bytes:
    """The whole body at once: events are small and already in memory."""

    def __init__(self, data: bytes) -> None:
        self.body = data
        self.length = len(data)

    def startProducing(self, consumer: Any) -> defer.Deferred[None]:
        consumer.write(self.body)
        return defer.succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class _Head(protocol.Protocol):
    """Reads a response body to its end (so the connection goes back to the pool),
    keeping only its first bytes."""

    def __init__(self, done: defer.Deferred[bytes]) -> None:
        self.done = done
        self.kept = b""

    def dataReceived(self, data: bytes) -> None:
        if len(self.kept) < ERROR_BODY_BYTES:
            self.kept += data[:ERROR_BODY_BYTES - len(self.kept)]

    def connectionLost(self, reason: Any = None) -> None:
        if not self.done.called:  # not cancelled by the timeout meanwhile
            self.done.callback(self.kept)

    def cancel(self, _: Any) -> None:
        """The attempt timed out while the body was coming: stop reading it."""
        abort = getattr(self.transport, "loseConnection", None) or getattr(
            self.transport, "stopProducing", None)
        if abort is not None:
            abort()


# A URL that is already what hyperlink would make of it but for the host's case:
# ASCII host labels (no IDNA, no "--" labels to check), no user or port (hyperlink
# drops a password and a default port), and a path, a non-empty query and a
# non-empty fragment of characters a URI allows as they are (RFC 3986). Such URLs
# (nearly all of them) skip hyperlink, whose parse and IDNA check cost tens of
# microseconds: the links listener makes one per code it has not seen.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PCHAR = r"(?:%[0-9A-Fa-f]{2}|[A-Za-z0-9\-._~!$&'()*+,;=:@])"
_PLAIN = re.compile(rf"(https?://)((?:{_LABEL}\.)*{_LABEL}\.?)"
                    rf"((?:/(?:{_PCHAR}|/)*)?(?:\?(?:{_PCHAR}|[/?])+)?(?:#(?:{_PCHAR}|[/?])+)?)",
                    re.IGNORECASE)


@lru_cache(maxsize=4096)
def target_uri(url: str) -> bytes:
    """The URL as the request line needs it (international host names in IDNA, other
    characters percent-encoded)."""
    plain = _PLAIN.fullmatch(url)
    if plain is not None and "--" not in plain[2]:
        return (plain[1] + plain[2].lower() + plain[3]).encode("ascii")
    return hyperlink.URL.from_text(url).to_uri().to_text().encode("ascii")


@implementer(IAgentEndpointFactory)
class _Endpoints:
    """What Agent's own factory makes (HostnameEndpoint, TLS by the policy), made once
    per scheme, host and port instead of once per request: it showed in the profile
    at a few thousand deliveries a second."""

    def __init__(self, reactor: Any, policy: Any, timeout: float) -> None:
        self.reactor = reactor
        self.policy = policy
        self.timeout = timeout
        self.cache: dict[tuple[bytes, bytes, int], Any] = {}

    def endpointForURI(self, uri: Any) -> Any:
        key = (uri.scheme, uri.host, uri.port)
        endpoint = self.cache.get(key)
        if endpoint is None:
            if len(self.cache) >= 4096:
                self.cache.clear()
            endpoint = HostnameEndpoint(self.reactor, uri.host.decode("ascii"), uri.port,
                                        timeout=self.timeout)
            if uri.scheme == b"https":
                endpoint = wrapClientTLS(self.policy.creatorForNetloc(uri.host, uri.port),
                                         endpoint)
            self.cache[key] = endpoint
        return endpoint


def _describe(failure: Any, timeout: float) -> tuple[str, str]:
    value = failure.value
    if failure.check(defer.CancelledError, defer.TimeoutError, error.TimeoutError):
        return "timeout", f"no answer within {timeout:g} s"
    if failure.check(error.DNSLookupError):
        return "connect_error", "the host name does not resolve"
    if failure.check(error.ConnectionRefusedError):
        return "connect_error", "connection refused"
    if failure.check(error.ConnectError):
        return "connect_error", f"cannot connect: {value}"
    reasons = getattr(value, "reasons", None) or []
    if any(reason.check(defer.CancelledError, defer.TimeoutError) for reason in reasons):
        return "timeout", f"no answer within {timeout:g} s"  # cancelled by the timeout
    text = "; ".join(str(reason.value) for reason in reasons) or str(value)
    if any("SSL" in type(reason.value).__module__ or "certificate" in str(reason.value)
           for reason in reasons):
        return "tls_error", f"TLS: {text}"[:250]
    return "connection_error", f"connection failed: {text}"[:250]


class Sender:
    def __init__(self, reactor: Any, timeout: float, concurrency: int,
                 ca_file: str | None = None) -> None:
        self.reactor = reactor
        self.timeout = timeout
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = concurrency
        self.pool.retryAutomatically = False  # a POST is never re-sent behind our back
        trust = None
        if ca_file is not None:
            with open(ca_file, "rb") as pem:
                trust = Certificate.loadPEM(pem.read())
        policy = BrowserLikePolicyForHTTPS(trustRoot=trust)
        self.agent = Agent.usingEndpointFactory(reactor, _Endpoints(reactor, policy, timeout),
                                                pool=self.pool)

    def send(self, event: Event) -> defer.Deferred[Outcome]:
        """Never fails: every way an attempt can end is an Outcome."""
        started = time.monotonic()
        if event.url is None or event.secret is None:
            return defer.succeed(Outcome(False, "no_target", error="no URL or key for "
                                                                   "this event"))
        try:
            uri = target_uri(event.url)
        except Exception as exc:  # a URL that slipped past the API's check
            return defer.succeed(Outcome(False, "bad_url", error=f"bad URL: {exc}"))
        signed = signing.headers(event.secret, event.id, int(time.time()), event.body)
        headers = Headers({b"content-type": [b"application/json"],
                           b"user-agent": [b"smppd-callbacks/1"]})
        for name, value in signed.items():
            headers.setRawHeaders(name.encode(), [value.encode()])
        d = self.agent.request(b"POST", uri, headers, _Bytes(event.body.encode()))
        d.addCallback(self._read)
        d.addTimeout(self.timeout, self.reactor)

        def finished(result: tuple[int, bytes]) -> Outcome:
            status, head = result
            seconds = time.monotonic() - started
            if 200 <= status < 300:
                return Outcome(True, "delivered", status, seconds=seconds)
            reason = head.decode("utf-8", "replace").strip().replace("\n", " ")[:100]
            return Outcome(False, "http_error", status,
                           f"HTTP {status}" + (f": {reason}" if reason else ""), seconds)

        def failed(failure: Any) -> Outcome:
            result, reason = _describe(failure, self.timeout)
            return Outcome(False, result, None, reason, time.monotonic() - started)

        return d.addCallbacks(finished, failed)

    @staticmethod
    def _read(response: Any) -> defer.Deferred[tuple[int, bytes]]:
        head = _Head(defer.Deferred())
        done: defer.Deferred[bytes] = defer.Deferred(head.cancel)
        head.done = done
        response.deliverBody(head)
        return done.addCallback(lambda kept: (response.code, kept))

    def close(self) -> defer.Deferred[Any]:
        return self.pool.closeCachedConnections()
