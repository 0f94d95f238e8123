"""Where a short-link code leads, for the links listener: a bounded LRU of code ->
answer in memory, and the codes it does not hold looked up on the read pool a batch
at a time (one query for every miss that came in while the previous query ran).

Why a cache: a link's URL never changes once its message is stored (links are
never edited), so a code once read can be answered from memory for as long as it
is kept, and most clicks on a campaign's links come within hours of the sending.
Codes that name no link are remembered too, briefly and in a smaller LRU of their
own, so that a flood of one bad code costs no query each while a flood of random
codes cannot evict the real ones. Built by hand on OrderedDict: the cache
libraries either lack a bounded size with a time-to-live per kind (functools) or
are another dependency (cachetools) for some twenty lines.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from twisted.internet import defer

from . import queries

log = logging.getLogger("smppd.links")

T = TypeVar("T")
CACHE_SIZE = 200_000  # codes kept (an answer of a few hundred bytes each)
UNKNOWN_SIZE = 10_000  # codes remembered as naming no link...
UNKNOWN_TTL = 60.0  # ...for this long (a link is stored before its code is sent)
BATCH = 1000  # codes per lookup query
MAX_WAITING = 20_000  # distinct codes waiting for a lookup, beyond which: Busy

Read = Callable[..., "defer.Deferred[Any]"]


class Busy(Exception):
    """Too many codes are waiting for the database: answer 503, do not queue more."""


class LinkTargets(Generic[T]):
    """`find(code)`: the answer now (a cached one, or None for a code known to name
    no link), or a Deferred of it. `make(url)` builds the answer for a URL once."""

    def __init__(self, reactor: Any, read: Read, make: Callable[[str], T],
                 size: int = CACHE_SIZE) -> None:
        self.reactor = reactor
        self.read = read
        self.make = make
        self.size = size
        self.known: OrderedDict[str, T] = OrderedDict()
        self.unknown: OrderedDict[str, float] = OrderedDict()  # code -> forgotten at
        self.waiting: dict[str, list[defer.Deferred[T | None]]] = {}
        self.reading = False
        self.lookups = 0  # queries run (for tests and the bench)

    def find(self, code: str) -> T | defer.Deferred[T | None] | None:
        answer = self.known.get(code)
        if answer is not None:
            self.known.move_to_end(code)
            return answer
        until = self.unknown.get(code)
        if until is not None:
            if until > self.reactor.seconds():
                return None
            del self.unknown[code]
        waiters = self.waiting.get(code)
        if waiters is None:
            if len(self.waiting) >= MAX_WAITING:
                return defer.fail(Busy("too many links being looked up"))
            waiters = self.waiting[code] = []
        d: defer.Deferred[T | None] = defer.Deferred()
        waiters.append(d)
        if not self.reading:
            self._lookup()
        return d

    def _lookup(self) -> None:
        codes = []
        for code in self.waiting:
            codes.append(code)
            if len(codes) >= BATCH:
                break
        if not codes:
            return
        self.reading = True
        self.lookups += 1
        self.read(queries.link_urls, codes).addCallbacks(
            self._found, self._failed, callbackArgs=(codes,), errbackArgs=(codes,))

    def _found(self, urls: dict[str, str], codes: list[str]) -> None:
        until = self.reactor.seconds() + UNKNOWN_TTL
        for code in codes:
            url = urls.get(code)
            answer = None
            if url is None:
                self.unknown[code] = until
                if len(self.unknown) > UNKNOWN_SIZE:
                    self.unknown.popitem(last=False)
            else:
                answer = self.known[code] = self.make(url)
                if len(self.known) > self.size:
                    self.known.popitem(last=False)
            for d in self.waiting.pop(code, ()):
                d.callback(answer)
        self._next()

    def _failed(self, failure: Any, codes: list[str]) -> None:
        log.warning("links: cannot look up %d code(s): %s", len(codes),
                    failure.getErrorMessage())
        for code in codes:
            for d in self.waiting.pop(code, ()):
                d.errback(failure)
        self._next()

    def _next(self) -> None:
        self.reading = False
        if self.waiting:
            self._lookup()
