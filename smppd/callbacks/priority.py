"""The callbacks worker's CPU priority: it runs only on CPU the daemon leaves.

Why: callbacks must never slow the sending (issue 12), and the worker's busiest time
is a backlog (an endpoint back after being down) drained while the daemon sends at
full rate. At nice 5 the worker still took about a quarter of a contested core:
bench/callbacks.py phase 3, receiver back, sent at 53-77% of its rate with the
receiver down (four runs, load 4-5 on 2 shared cores). SCHED_IDLE is the Linux
class for "only when nothing else wants the CPU": a daemon thread that wakes up
preempts the worker at once, and on a machine with a core to spare (the daemon is
one interpreter, about one core) the worker still drains at full speed.

SCHED_IDLE cannot be left again without CAP_SYS_NICE (RLIMIT_NICE is 0 for a
service user), so it is set once, at the worker's start, before any thread exists
(threads inherit it). Where it is not available (not Linux) or not permitted (a
seccomp filter answering EPERM), nice 19 is the next best; where neither is, the
worker runs at the daemon's priority and says so once. The systemd unit allows both
calls (they can only lower the service's own priority): its `~@resources` filter
would otherwise kill the worker with SIGSYS at its first breath.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("smppd.callbacks")
NICENESS = 19  # when SCHED_IDLE cannot be had


def lower() -> str:
    """Lower the calling thread's (at the worker's start: the process's) priority as
    far as allowed; returns what was applied, for the log."""
    idle = getattr(os, "SCHED_IDLE", None)
    if idle is not None:
        try:
            os.sched_setscheduler(0, idle, os.sched_param(0))
            return "SCHED_IDLE"
        except OSError as exc:
            reason = f"SCHED_IDLE refused ({exc.strerror})"
    else:
        reason = "no SCHED_IDLE here"
    try:
        now = os.nice(0)
        if now < NICENESS:
            os.nice(NICENESS - now)
        return f"nice {NICENESS} ({reason})"
    except OSError as exc:
        log.warning("callbacks worker: runs at the daemon's CPU priority: %s, and nice "
                    "refused (%s); a backlog of callbacks may then slow the sending",
                    reason, exc.strerror)
        return "unchanged"
