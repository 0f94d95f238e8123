"""Throttling failed authentication per client address.

A Bearer token of 16+ random characters cannot be guessed, but 7,000 guesses a
second on one connection should still neither go unnoticed nor be served: after
`max_failures` wrong tokens from one address within `window` seconds, that address
gets 429 with Retry-After, without its token even being looked at, until the oldest
of those failures is `window` seconds old. A sliding window rather than a fixed
lockout: an address keeps a steady `max_failures` per `window` at most, and a person
who mistyped a token is back within the window.

A success does not wipe the failures: otherwise a client holding one valid token
could interleave it with guesses at another account's. IPv6 clients are counted
per /64, the block one subscriber is usually given. Behind a reverse proxy every
client shares the proxy's address; the proxy is then the place to throttle.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict, deque
from typing import Any


def address_key(address: str) -> str:
    """The unit that is throttled: the IPv4 address, or the IPv6 /64. An IPv4 client
    of a dual-stack listener shows as ::ffff:a.b.c.d: that is its IPv4 address, not
    a /64 shared with every other IPv4 client."""
    if ":" not in address:
        return address
    try:
        ip = ipaddress.IPv6Address(address.split("%")[0])
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))


class AuthLockout:
    def __init__(self, clock: Any, max_failures: int = 20, window: float = 60.0,
                 max_addresses: int = 10_000) -> None:
        self.clock = clock
        self.max_failures = max_failures
        self.window = window
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self.failures_total = 0
        self.refused_total = 0

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until `address` may try again, or None when it may now."""
        if not self._failures:
            return None
        times = self._failures.get(address_key(address))
        if times is None or len(times) < self.max_failures:
            return None
        wait = times[0] + self.window - self.clock.seconds()
        if wait <= 0:
            return None
        self.refused_total += 1
        return max(1, math.ceil(wait))

    def failed(self, address: str) -> int:
        """Record a failure; returns the failures of that address in the window."""
        self.failures_total += 1
        key = address_key(address)
        now = self.clock.seconds()
        times = self._failures.get(key)
        if times is not None and times.maxlen != self.max_failures:  # changed by a reload
            times = self._failures[key] = deque(times, maxlen=self.max_failures)
        if times is None:
            times = self._failures[key] = deque(maxlen=self.max_failures)
            if len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(key)
        while times and times[0] + self.window <= now:
            times.popleft()
        times.append(now)
        return len(times)

    def locked(self, address: str) -> bool:
        """Whether the failure just recorded closed the door on `address`."""
        times = self._failures.get(address_key(address))
        return times is not None and len(times) >= self.max_failures
