"""Job feeding: a running job's messages are read from the store a page at a time in
id order, so a million-message job costs a page of memory, and the writer learns
each page's messages as it is read (their outcomes then need no read)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from twisted.internet import defer

from ..store import operations as ops
from ..store.queries import QueuedMessage
from ..throttle.fairness import CappedSource, Serves
from ..throttle.meter import RateMeter
from .outgoing import Outgoing

log = logging.getLogger("smppd.jobs")

PageLoad = Callable[[str, str, int], "defer.Deferred[tuple[list[QueuedMessage], str | None]]"]


class JobFeeder(CappedSource):
    """One running job's turn at the dispatcher: a page of its messages, its cap, its
    pause, and where the next page starts."""

    PAGE = 2000

    def __init__(self, job_id: str, account_id: int, cap: float | None, now: float,
                 paused: bool = False, pages: PageReader | None = None) -> None:
        super().__init__(cap, now, paused)
        self.job_id = job_id
        self.account_id = account_id
        self.pages = pages
        self.cursor = ""
        self.exhausted = False
        self.loading = False
        self.meter = RateMeter(now)

    @property
    def buffered(self) -> int:
        return self.size

    def take(self, serves: Serves, now: float) -> Any | None:
        item = super().take(serves, now)
        if item is not None:
            self.meter.add()
            if self.size < self.PAGE // 2 and self.pages is not None:
                self.pages.read(self)
        return item


class PageReader:
    """Reads feeders' next pages."""

    def __init__(self, reactor: Any, load: PageLoad,
                 put: Callable[[Any], defer.Deferred[Any]],
                 route: Callable[[QueuedMessage], str], wake: Callable[[], None],
                 live: Callable[[JobFeeder], bool]) -> None:
        """`route` gives a loaded message its route, `wake` is called when a page has
        arrived, `live` says whether a feeder is still fed (not stopped meanwhile)."""
        self.reactor = reactor
        self.load = load
        self.put = put
        self.route = route
        self.wake = wake
        self.live = live
        self.stopped = False

    def read(self, feeder: JobFeeder) -> None:
        if feeder.loading or feeder.exhausted or self.stopped:
            return
        feeder.loading = True

        def loaded(result: tuple[list[QueuedMessage], str | None]) -> None:
            messages, last_id = result
            feeder.loading = False
            if not self.live(feeder):
                return  # stopped meanwhile
            for message in messages:
                route = self.route(message)
                feeder.push(route, Outgoing.from_queued(message, route))
            # Untouched messages only: the writer then needs no read for their outcomes.
            warm = tuple((m.id, m.account_id, m.points, m.smsc, m.parts) for m in messages
                         if len(m.unsent) == m.parts)
            if warm:
                self.put(ops.Warm(warm)).addErrback(lambda _: None)
            if last_id is None:
                feeder.exhausted = True
            else:
                feeder.cursor = last_id
            self.wake()

        def failed(failure: Any) -> None:
            feeder.loading = False
            log.error("job=%s cannot read its messages: %s; retrying in 5 s", feeder.job_id,
                      failure.getErrorMessage())
            self.reactor.callLater(5.0, self.read, feeder)

        self.load(feeder.job_id, feeder.cursor, JobFeeder.PAGE).addCallbacks(loaded, failed)
