"""Message ids: 32 hex digits, time-ordered.

The first 12 digits are the creation time in milliseconds, the rest a per-process
random start that counts up, so ids sort by creation even within one millisecond
and several smppd instances on one database do not collide. Time order is what lets
history pages and date ranges use the (account_id, id) index alone.
(Python 3.11 has no uuid7; this is the same idea in a dozen lines.)
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator

_RANDOM_BITS = 80
_state = {"ms": 0, "counter": 0}
# Seeded once from the OS: ids must not collide across processes, they need not be
# secret (an id alone gives nothing: every read is scoped to the caller's account),
# and a getrandom() system call per millisecond showed in the daemon's profile.
_random = random.Random(os.urandom(16))
_lock = threading.Lock()  # jobs are prepared on pool threads while the API makes ids


def new_id(now: float | None = None) -> str:
    with _lock:
        return _next(now)


def _next(now: float | None) -> str:
    ms = int((time.time() if now is None else now) * 1000)
    if ms > _state["ms"]:
        _state["ms"] = ms
        _state["counter"] = _random.getrandbits(_RANDOM_BITS - 16)  # room to count up
    else:
        ms = _state["ms"]  # the clock stepped back or the same ms: keep the order
        _state["counter"] += 1
    return f"{ms:012x}{_state['counter']:020x}"


class IdBlocks:
    """Ids as successive new_id(now) calls make them, for a job's rows (issue 14: the
    lock and the formatting per id were a twentieth of a CSV row's CPU): a block of
    counter values is taken under the lock, then formatted as they are asked for.
    `now` is fixed, so every id after a block's first takes the else branch of
    _next: the same millisecond, the counter plus one. Ids made meanwhile by others
    come after the block; ids of a block never used are a gap, as ids may have."""

    def __init__(self, now: float, size: int = 10_000) -> None:
        self.now = now
        self.size = size
        self._ids: Iterator[str] = iter(())

    def __call__(self) -> str:
        made = next(self._ids, None)
        if made is None:
            with _lock:
                first = _next(self.now)
                ms, counter = _state["ms"], _state["counter"]
                _state["counter"] = counter + self.size - 1
            prefix = f"{ms:012x}"
            self._ids = (f"{prefix}{value:020x}"
                         for value in range(counter + 1, counter + self.size))
            return first
        return made


def bound_for_time(moment: float, upper: bool = False) -> str:
    """The smallest (or largest) id that can have been made at `moment`."""
    ms = int(moment * 1000)
    return f"{ms:012x}" + ("f" * 20 if upper else "0" * 20)


def looks_like_id(text: str) -> bool:
    return len(text) == 32 and all(ch in "0123456789abcdef" for ch in text)
