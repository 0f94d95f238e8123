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


def bound_for_time(moment: float, upper: bool = False) -> str:
    """The smallest (or largest) id that can have been made at `moment`."""
    ms = int(moment * 1000)
    return f"{ms:012x}" + ("f" * 20 if upper else "0" * 20)


def looks_like_id(text: str) -> bool:
    return len(text) == 32 and all(ch in "0123456789abcdef" for ch in text)
