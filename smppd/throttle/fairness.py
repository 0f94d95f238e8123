"""Whose message goes next: the single messages and every running job take turns,
each job within its own cap, so one message sent through the API never waits
behind a million-message job and one job cannot starve another.

Messages wait in per-route queues because a bind takes only the routes it serves
(failover: a route's first bound SMSC); `serves` says which.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .bucket import TokenBucket

Serves = Callable[[str], bool]


class RouteQueues:
    """Items by route, first in first out within a route."""

    def __init__(self) -> None:
        self.queues: dict[str, deque[Any]] = {}
        self.size = 0

    def push(self, route: str, item: Any) -> None:
        self.queues.setdefault(route, deque()).append(item)
        self.size += 1

    def pop(self, serves: Serves) -> Any | None:
        for route, queue in self.queues.items():
            if queue and serves(route):
                self.size -= 1
                return queue.popleft()
        return None

    def has(self, serves: Serves) -> bool:
        return any(queue and serves(route) for route, queue in self.queues.items())

    def reroute(self, known: Callable[[str], bool], route_of: Callable[[Any], str]) -> int:
        """Move the items of routes the configuration no longer knows (a reload removed
        their SMSC) to the route `route_of` gives each; without this they would wait
        for ever under a key no bind serves. Returns how many moved."""
        moved = 0
        for route in [r for r in self.queues if not known(r)]:
            queue = self.queues.pop(route)
            self.size -= len(queue)
            for item in queue:
                self.push(route_of(item), item)
            moved += len(queue)
        return moved

    def take(self, serves: Serves, now: float) -> Any | None:
        return self.pop(serves)

    def wait(self, serves: Serves, now: float) -> float | None:
        return 0.0 if self.has(serves) else None


class CappedSource(RouteQueues):
    """A job's turn: its buffered messages, its own cap, and whether it is paused."""

    def __init__(self, cap: float | None, now: float, paused: bool = False) -> None:
        super().__init__()
        self.paused = paused
        self.cap = TokenBucket(cap, now=now) if cap else None

    def take(self, serves: Serves, now: float) -> Any | None:
        if self.paused or (self.cap is not None and self.cap.available(now) < 1):
            return None
        item = self.pop(serves)
        if item is not None and self.cap is not None:
            self.cap.spend(1, now)
        return item

    def wait(self, serves: Serves, now: float) -> float | None:
        """0 when it could send now, the seconds until its cap allows, None when it
        has nothing this bind may send (or is paused)."""
        if self.paused or not self.has(serves):
            return None
        return self.cap.wait(now) if self.cap is not None else 0.0


class Source(Protocol):
    def take(self, serves: Serves, now: float) -> Any | None: ...

    def wait(self, serves: Serves, now: float) -> float | None: ...


class RoundRobin:
    """Turns between sources; a source with nothing to give is skipped."""

    def __init__(self) -> None:
        self._turn = 0

    def next(self, sources: Sequence[Source], serves: Serves, now: float) -> Any | None:
        count = len(sources)
        for step in range(count):
            index = (self._turn + step) % count
            item = sources[index].take(serves, now)
            if item is not None:
                self._turn = index + 1
                return item
        return None

    @staticmethod
    def wait(sources: Sequence[Source], serves: Serves, now: float) -> float | None:
        """The soonest any source could give something; None when none has work."""
        waits = [w for w in (source.wait(serves, now) for source in sources) if w is not None]
        return min(waits) if waits else None
