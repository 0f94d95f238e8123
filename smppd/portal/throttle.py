"""Failed logins throttled per login and per client address.

In memory, on the caller's clock: a window of the last failures per key. After
`limit` failures within `window` seconds the key is refused until the oldest of
them leaves the window; a correct password does not get through meanwhile (or the
throttle would only slow a guesser down). A success clears the login's count.
Memory is bounded: at most `max_keys` keys per kind, the stalest dropped first.
Kept in memory rather than in the store because it is a guard against a burst,
not a record: a restart forgets it, as it forgets the burst.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable


class _Window:
    def __init__(self, limit: int, window: float, max_keys: int) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self.failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self.failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self.failures[key]
            return None
        return times

    def wait(self, key: str, now: float) -> float:
        """Seconds until `key` may try again (0: now)."""
        times = self._recent(key, now)
        if times is None or len(times) < self.limit:
            return 0.0
        return times[0] + self.window - now

    def fail(self, key: str, now: float) -> None:
        times = self._recent(key, now)
        if times is None:
            times = self.failures[key] = deque(maxlen=self.limit)
            while len(self.failures) > self.max_keys:
                self.failures.popitem(last=False)
        self.failures.move_to_end(key)
        times.append(now)

    def clear(self, key: str) -> None:
        self.failures.pop(key, None)


class LoginThrottle:
    def __init__(self, clock: Callable[[], float], per_login: int = 5,
                 per_address: int = 20, window: float = 900.0, max_keys: int = 100_000) -> None:
        self.clock = clock
        self.logins = _Window(per_login, window, max_keys)
        self.addresses = _Window(per_address, window, max_keys)

    def wait(self, login: str, address: str) -> float:
        """Seconds before this login from this address may be tried (0: now)."""
        now = self.clock()
        return max(self.logins.wait(login.lower(), now), self.addresses.wait(address, now))

    def failed(self, login: str, address: str) -> None:
        now = self.clock()
        self.logins.fail(login.lower(), now)
        self.addresses.fail(address, now)

    def succeeded(self, login: str) -> None:
        self.logins.clear(login.lower())
