"""One delivery attempt: a signed JSON POST over a keep-alive connection of the pool
in client.py (connections are reused per origin, up to the per-endpoint
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
from twisted.internet import defer, error

from ..protocol.tls import HttpsPolicy, TlsError
from . import signing
from .client import Pool, target_of
from .queries import Event


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    result: str  # metrics label: delivered | http_error | timeout | connect_error | ...
    status: int | None = None
    error: str | None = None
    seconds: float = 0.0


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
    if failure.check(TlsError):  # the name check after the handshake
        return "tls_error", str(value)[:250]
    text = str(value) or type(value).__name__
    if "SSL" in type(value).__module__ or "certificate" in text:
        return "tls_error", f"TLS: {text}"[:250]
    return "connection_error", f"connection failed: {text}"[:250]


class Sender:
    def __init__(self, reactor: Any, timeout: float, concurrency: int,
                 ca_file: str | None = None) -> None:
        self.reactor = reactor
        self.timeout = timeout
        # Not Twisted's BrowserLikePolicyForHTTPS: see smppd.protocol.tls (issue 13).
        self.pool = Pool(reactor, HttpsPolicy(ca_file), timeout, concurrency)

    def send(self, event: Event) -> defer.Deferred[Outcome]:
        """Never fails: every way an attempt can end is an Outcome."""
        started = time.monotonic()
        if event.url is None or event.secret is None:
            return defer.succeed(Outcome(False, "no_target", error="no URL or key for "
                                                                   "this event"))
        try:
            target = target_of(target_uri(event.url))
        except Exception as exc:  # a URL that slipped past the API's check
            return defer.succeed(Outcome(False, "bad_url", error=f"bad URL: {exc}"))
        body = event.body.encode()
        event_id = event.id.encode()
        timestamp = int(time.time())
        data = b"".join((
            b"POST ", target.path, b" HTTP/1.1\r\nHost: ", target.host,
            b"\r\nContent-Type: application/json\r\nUser-Agent: smppd-callbacks/1\r\n"
            b"Content-Length: %d\r\nwebhook-id: %s\r\nwebhook-timestamp: %d\r\n"
            b"webhook-signature: " % (len(body), event_id, timestamp),
            signing.signature(event.secret, event.id, timestamp, body), b"\r\n\r\n", body))
        d = self.pool.request(target, data)
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

    def close(self) -> defer.Deferred[Any]:
        self.pool.close()
        return defer.succeed(None)
