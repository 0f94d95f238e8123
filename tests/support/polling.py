"""The one polling helper of the tests and the benchmarks: look at a condition
until it holds, and when it does not in time, say what was awaited, for how long,
and what was last seen (plus any detail the caller adds, such as a log's tail).

Plain and thread-agnostic: it calls `check` on the calling thread. Tests that must
look from the reactor thread use tests.conftest.wait_for, which is built on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def until(check: Callable[[], Any], timeout: float = 10.0, what: str = "",
          interval: float = 0.02, detail: Callable[[], str] | None = None) -> Any:
    """Call `check` every `interval` s until it returns something truthy; return it.
    After `timeout` s, AssertionError naming `what` and the last value returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            message = (f"timed out after {timeout:g} s waiting for "
                       f"{what or getattr(check, '__name__', 'a condition')}; "
                       f"last seen: {value!r}")
            if detail is not None:
                message += "\n" + detail()
            raise AssertionError(message)
        time.sleep(interval)


def holds(check: Callable[[], Any], seconds: float, interval: float = 0.05) -> bool:
    """True when `check` is truthy at every look for `seconds` (the opposite wait:
    that something does NOT happen for a while); False at the first falsy look."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not check():
            return False
        time.sleep(interval)
    return True
