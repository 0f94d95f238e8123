"""CPU and wake-ups of a process, per thread from /proc, precise enough for an idle one.

The usual utime/stime (psutil's cpu_times) count 10 ms ticks: a daemon that idles
well uses a few ticks a minute, so its figure would be mostly rounding. schedstat
gives each thread's run time in nanoseconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path


def _per_task(pids: list[int], read: Callable[[Path], int]) -> int:
    """Sum `read(task folder)` over every thread of these processes."""
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total += read(task)  # else a thread ended between listing and reading
    return total


def cpu_ns(pids: list[int]) -> int:
    """Run time of every thread of these processes, in nanoseconds."""
    return _per_task(pids, lambda task: int((task / "schedstat").read_text().split()[0]))


def wakeups(pids: list[int]) -> int:
    """Voluntary context switches of every thread: one per sleep that ended."""
    def switches(task: Path) -> int:
        return next(int(line.split()[1]) for line in (task / "status").read_text().splitlines()
                    if line.startswith("voluntary_ctxt_switches"))
    return _per_task(pids, switches)
