"""Rate-limited logging: a flood becomes a few sample lines and a count.

Why: a peer that sends 14,000 bad PDUs, or a client that guesses 7,000 tokens a
second, must not turn the log into the attack's amplifier (1.9 MB of identical
WARNING lines) nor hide everything else in it. Each key (a peer, an address, a
kind of fault) may log `burst` lines per `interval`; past that, lines are only
counted, and one summary line with the count is written when the interval ends.

The clock is injected (anything with `seconds()` and `callLater()`, such as the
reactor or `twisted.internet.task.Clock`), so the summary comes on time even when
the flood stops, and tests need no sleeping.

    flood = RateLimitedLog(logging.getLogger("smppd.smpp"), reactor, burst=5, interval=60)
    flood.warning(("bad-pdu", smsc), "%s: undecodable PDU: %s", smsc, error)
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Protocol


class Clock(Protocol):
    def seconds(self) -> float: ...

    def callLater(self, delay: float, fn: Any, *args: Any) -> Any: ...


@dataclass(slots=True)
class _Window:
    started: float
    logged: int = 0
    suppressed: int = 0
    level: int = logging.WARNING
    summary_call: Any = None


class RateLimitedLog:
    """At most `burst` lines per `interval` seconds per key, then one summary line
    ("... N more suppressed in the last 60 s") at the end of that interval.

    `max_keys` bounds the memory an attacker can make us spend on keys (one per
    source address, say): past it the oldest key is forgotten, after its summary
    is written, so no count is ever lost silently.
    """

    def __init__(self, logger: logging.Logger, clock: Clock, burst: int = 5,
                 interval: float = 60.0, max_keys: int = 1000) -> None:
        if burst < 1 or interval <= 0 or max_keys < 1:
            raise ValueError("burst and max_keys must be at least 1, interval positive")
        self.logger = logger
        self.clock = clock
        self.burst = burst
        self.interval = interval
        self.max_keys = max_keys
        self._windows: OrderedDict[Hashable, _Window] = OrderedDict()
        self.total_suppressed = 0

    # The levels, as on a logging.Logger (with the key first) ------------------------

    def debug(self, key: Hashable, message: str, *args: Any) -> bool:
        return self.log(logging.DEBUG, key, message, *args)

    def info(self, key: Hashable, message: str, *args: Any) -> bool:
        return self.log(logging.INFO, key, message, *args)

    def warning(self, key: Hashable, message: str, *args: Any) -> bool:
        return self.log(logging.WARNING, key, message, *args)

    def error(self, key: Hashable, message: str, *args: Any) -> bool:
        return self.log(logging.ERROR, key, message, *args)

    def log(self, level: int, key: Hashable, message: str, *args: Any) -> bool:
        """Log the line, or count it if its key used up its burst. Returns whether
        the line was written."""
        if not self.logger.isEnabledFor(level):
            return False
        now = self.clock.seconds()
        window = self._windows.get(key)
        if window is not None and now - window.started >= self.interval:
            self._close(key)
            window = None
        if window is None:
            window = self._windows[key] = _Window(now)
            if len(self._windows) > self.max_keys:
                self._close(next(iter(self._windows)))
        if window.logged < self.burst:
            window.logged += 1
            self.logger.log(level, message, *args)
            return True
        window.suppressed += 1
        window.level = max(window.level, level)
        self.total_suppressed += 1
        if window.summary_call is None:
            remaining = max(0.0, window.started + self.interval - now)
            window.summary_call = self.clock.callLater(remaining, self._close, key)
        return False

    def flush(self) -> None:
        """Write every pending summary now (at shutdown, say) and start afresh."""
        for key in list(self._windows):
            self._close(key)

    def suppressed(self, key: Hashable) -> int:
        """Lines of `key` counted but not written in its current interval."""
        window = self._windows.get(key)
        return window.suppressed if window is not None else 0

    def _close(self, key: Hashable) -> None:
        window = self._windows.pop(key, None)
        if window is None:
            return
        if window.summary_call is not None and window.summary_call.active():
            window.summary_call.cancel()
        if window.suppressed:
            elapsed = max(self.clock.seconds() - window.started, 0.0)
            self.logger.log(window.level, "%s: %d more like this suppressed in the last %.0f s",
                            _describe(key), window.suppressed, min(elapsed, self.interval))


def _describe(key: Hashable) -> str:
    if isinstance(key, tuple):
        return " ".join(str(part) for part in key)
    return str(key)
