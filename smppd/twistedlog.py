"""Twisted's own log events, into the daemon's logging (they went nowhere before).

The one that matters most: when the process runs out of file descriptors, Twisted's
TCP port accepts each new client only to close it at once, and says so through
twisted.logger ("EMFILE recovery: Closed socket from ..."), one event per client.
Unbridged, 21,000 idle sockets locked every new client out with nothing in the log;
bridged one line each, a flood of connects would flood the log. So accept failures
become a rate-limited warning with a count, and /metrics counts them; Twisted's
other warnings and errors (an unhandled error in a Deferred, say) are passed on as
they are, and its informational chatter is left out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from twisted.logger import LogLevel, formatEvent, globalLogBeginner

from .ratelog import RateLimitedLog

_LEVELS = {LogLevel.debug: logging.DEBUG, LogLevel.info: logging.INFO,
           LogLevel.warn: logging.WARNING, LogLevel.error: logging.ERROR,
           LogLevel.critical: logging.CRITICAL}
_PORT_NAMESPACE = "twisted.internet.tcp.Port"


class TwistedLogBridge:
    """A twisted.logger observer that writes to Python logging."""

    def __init__(self, clock: Any, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("smppd.twisted")
        self.accept_log = RateLimitedLog(logging.getLogger("smppd.api"), clock, burst=3,
                                         interval=60.0)
        self.accept_failures = 0

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("log_namespace") == _PORT_NAMESPACE and self._accept_failure(event):
            return
        level = event.get("log_level")
        if level is None or _LEVELS.get(level, logging.ERROR) < logging.WARNING:
            return
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text = f"{text}\n{failure.getTraceback()}"
        self.logger.log(_LEVELS.get(level, logging.ERROR), "%s", text)

    def _accept_failure(self, event: dict[str, Any]) -> bool:
        form = event.get("log_format") or ""
        if form.startswith("EMFILE recovery: Closed socket"):
            self.accept_failures += 1
            address = event.get("address")
            host = address[0] if isinstance(address, tuple) else getattr(address, "host",
                                                                          address)
            self.accept_log.warning(
                "http-emfile", "http: out of file descriptors: a new connection from %s was "
                "closed unanswered (raise LimitNOFILE, or lower http.max_connections)", host)
            return True
        if form.startswith("Could not accept new connection"):
            self.accept_failures += 1
            self.accept_log.warning("http-accept", "http: could not accept a new connection "
                                    "(%s)", event.get("acceptError"))
            return True
        return form.startswith(("EMFILE encountered", "Re-reserving EMFILE"))


class AcceptFailures(Collector):
    def __init__(self, bridge: TwistedLogBridge) -> None:
        self.bridge = bridge

    def collect(self) -> Iterable[Any]:
        yield CounterMetricFamily(
            "smppd_http_accept_failures_total",
            "New connections the listener could not take (out of file descriptors)",
            value=self.bridge.accept_failures)


_installed: TwistedLogBridge | None = None


def install(clock: Any) -> TwistedLogBridge:
    """Twisted logs through the bridge from now on. Once per process: Twisted buffers
    its events until logging begins and replays them then, and a second beginning
    would send every event twice; later calls return the bridge already installed."""
    global _installed
    if _installed is None:
        _installed = TwistedLogBridge(clock)
        globalLogBeginner.beginLoggingTo([_installed], redirectStandardIO=False)
    return _installed
