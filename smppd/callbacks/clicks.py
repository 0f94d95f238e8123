"""Clicks on their way to the store: the links listener answers the 302 at once and
hands the click here; clicks go to the writer as one operation per FLUSH_DELAY (or
per FLUSH_ROWS), which records them all with one lookup and two statements.

Why not wait for the commit before answering: the browser would wait for a group
commit (tens of milliseconds, more under load) for a record it does not need, and
every click would be a writer operation of its own. The price is that a click
answered just before a crash (kill -9) may be lost; a click is a statistic, the
redirect is what the person is waiting for.

Bounded: clicks waiting (queued here, or handed to the writer and not yet written)
are at most MAX_WAITING. Past that, or when the store refuses a batch, clicks are
counted in `smppd_link_clicks_unrecorded_total` and dropped, so a stalled database
costs the listener neither memory nor its answers.
"""

from __future__ import annotations

import logging
from typing import Any

from twisted.internet import defer

from ..store.callback_operations import ClicksSeen

log = logging.getLogger("smppd.links")

FLUSH_DELAY = 0.05
FLUSH_ROWS = 5000
MAX_WAITING = 100_000


class ClickQueue:
    def __init__(self, reactor: Any, put: Any, unrecorded: Any,
                 limit: int = MAX_WAITING) -> None:
        self.reactor = reactor
        self.put = put
        self.unrecorded = unrecorded  # a prometheus Counter (or anything with inc(n))
        self.limit = limit
        self.queued: list[tuple[str, float, str]] = []
        self.writing = 0  # clicks handed to the writer, not yet written
        self._call: Any = None
        self._puts: list[defer.Deferred[Any]] = []

    def add(self, code: str, at: float, agent: str) -> bool:
        """False when the click is dropped (counted as unrecorded)."""
        if len(self.queued) + self.writing >= self.limit:
            self.unrecorded.inc()
            return False
        self.queued.append((code, at, agent))
        if len(self.queued) >= FLUSH_ROWS:
            self.flush()
        elif self._call is None:
            self._call = self.reactor.callLater(FLUSH_DELAY, self.flush)
        return True

    def flush(self) -> None:
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None
        if not self.queued:
            return
        clicks, self.queued = tuple(self.queued), []
        self.writing += len(clicks)
        d = self.put(ClicksSeen(clicks))
        self._puts.append(d)

        def done(result: Any) -> None:
            self.writing -= len(clicks)
            self._puts.remove(d)
            if hasattr(result, "getErrorMessage"):
                self.unrecorded.inc(len(clicks))
                log.warning("links: %d click(s) not recorded: %s", len(clicks),
                            result.getErrorMessage())

        d.addBoth(done)

    def stop(self) -> defer.Deferred[Any]:
        """Hand what is queued to the writer, and wait for every batch to be written
        (the daemon stops the writer after this)."""
        self.flush()
        return defer.DeferredList(list(self._puts), consumeErrors=True)
