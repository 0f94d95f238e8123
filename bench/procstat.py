"""CPU and wake-ups of a process, per thread from /proc, precise enough for an idle one.

The usual utime/stime (psutil's cpu_times) count 10 ms ticks: a daemon that idles
well uses a few ticks a minute, so its figure would be mostly rounding. schedstat
gives each thread's run time in nanoseconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple


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


def with_children(pids: list[int]) -> list[int]:
    """These processes and their live descendants: the daemon's writer process
    (smppd.store.child) is part of the daemon, and its CPU is not in the daemon's
    own figures until it ends."""
    import psutil

    found = list(pids)
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            found += [child.pid for child in psutil.Process(pid).children(recursive=True)]
    return found


class Tree:
    """A daemon and its live child processes, measured as one where psutil.Process
    measures one (cpu_times, memory_info, num_ctx_switches; threads of the daemon
    itself): see `with_children`."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.pid = pid

    def _all(self) -> list[Any]:
        import psutil

        members = [self.root]
        with contextlib.suppress(psutil.Error):
            members += self.root.children(recursive=True)
        return members

    def cpu_times(self) -> Times:
        user = system = 0.0
        for member in self._all():
            with contextlib.suppress(Exception):
                times = member.cpu_times()
                user, system = user + times.user, system + times.system
        return Times(user, system)

    def memory_info(self) -> Any:
        rss = sum(member.memory_info().rss for member in self._all())
        return Memory(rss)

    def num_ctx_switches(self) -> tuple[int, int]:
        voluntary = involuntary = 0
        for member in self._all():
            switches = member.num_ctx_switches()
            voluntary, involuntary = voluntary + switches[0], involuntary + switches[1]
        return voluntary, involuntary

    def threads(self) -> Any:
        return self.root.threads()

    def peak_rss(self) -> int:
        """The sum of each member's own peak (VmHWM), bytes."""
        total = 0
        for member in self._all():
            with contextlib.suppress(OSError), open(f"/proc/{member.pid}/status") as status:
                total += next((int(line.split()[1]) * 1024 for line in status
                               if line.startswith("VmHWM")), 0)
        return total


class Times(NamedTuple):
    user: float
    system: float


class Memory(NamedTuple):
    rss: int
