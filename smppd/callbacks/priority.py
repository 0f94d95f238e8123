"""The callbacks worker's CPU priority: it runs on the CPU the daemon leaves.

Why: callbacks must never slow the sending (issue 12), and the worker's busiest time
is a backlog (an endpoint back after being down) drained while the daemon sends at
full rate. At nice 5 the worker still took about a quarter of a contested core:
bench/callbacks.py phase 3 sent with the receiver back at 54-86% of its rate with
the receiver down, median 69% (9 runs, load 2-5 on 2 shared cores); at nice 19 and
SCHED_BATCH 70-100% (4 runs); at SCHED_IDLE 55-128%, median 95% (9 runs), and
lowered once ready 87-98% (3 runs).

SCHED_IDLE: the worker runs when no other thread wants the CPU, and a daemon thread
that wakes preempts it at once. On a machine with a core to spare (the daemon is one
interpreter, about one core) it drains at full speed all the same; on a saturated
one a backlog waits until the load eases: sending first. Where SCHED_IDLE is refused,
SCHED_BATCH (its wake-ups do not preempt the daemon); and nice 19 (weight 15 against
the daemon's 1024) in any case. With four CPU hogs,
tests/callbacks/test_callbacks_process.py took 21 s at nice 5, 47 s at nice 19 and
SCHED_BATCH, 85 s at SCHED_IDLE (5 s without the hogs).

Lowered for every thread of the worker, once it has told the daemon it is ready: its
start (imports, engine) is a CPU second the daemon's own start waits for (lowered
from its first line, a starved worker held that start up to its 30 s timeout), and
threads made later inherit from the one that makes them. It cannot be raised again
without CAP_SYS_NICE (RLIMIT_NICE is 0 for a service user), hence once. Where a call
is refused (a seccomp filter answering EPERM) or missing (not Linux), the rest is
still done, and a worker left at the daemon's priority says so. The systemd unit
allows both calls (they can only lower the service's own priority): its
`~@resources` filter would otherwise kill the worker with SIGSYS.
"""

from __future__ import annotations

import contextlib
import logging
import os

log = logging.getLogger("smppd.callbacks")
NICENESS = 19
POLICIES = ("SCHED_IDLE", "SCHED_BATCH")  # the first one allowed


def _threads() -> list[int]:
    """The process's thread ids (Linux), else the calling thread (0)."""
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


def lower() -> str:
    """Lower every thread's priority as far as allowed; returns what was applied, for
    the log."""
    applied, refused = [], []
    threads = _threads()
    for name in POLICIES:
        policy = getattr(os, name, None)
        if policy is None:
            continue
        try:
            for tid in threads:
                with contextlib.suppress(ProcessLookupError):  # a thread that ended
                    os.sched_setscheduler(tid, policy, os.sched_param(0))
            applied.append(name)
            break
        except OSError as exc:
            refused.append(f"{name} ({exc.strerror})")
    try:
        for tid in threads:
            with contextlib.suppress(ProcessLookupError):
                os.setpriority(os.PRIO_PROCESS, tid, NICENESS)  # a thread id on Linux
        applied.append(f"nice {NICENESS}")
    except OSError as exc:
        refused.append(f"nice {NICENESS} ({exc.strerror})")
    if not applied:
        log.warning("callbacks worker: runs at the daemon's CPU priority (refused: %s); "
                    "a backlog of callbacks may then slow the sending", ", ".join(refused))
        return "unchanged"
    return " and ".join(applied) + (f" (refused: {', '.join(refused)})" if refused else "")
