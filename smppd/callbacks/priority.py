"""The callbacks worker's CPU priority: it runs on the CPU the daemon leaves.

Why: callbacks must never slow the sending (issue 12), and the worker's busiest time
is a backlog (an endpoint back after being down) drained while the daemon sends at
full rate. At nice 5 the worker still took about a quarter of a contested core:
bench/callbacks.py phase 3 sent with the receiver back at 53-77% of its rate with
the receiver down (load 4-5 on 2 shared cores).

nice 19 and SCHED_BATCH: against the daemon (nice 0, weight 1024) the worker weighs
15, about 1.5% of a core both want; SCHED_BATCH keeps its wake-ups (an HTTP answer
back) from preempting a daemon thread. On a machine with a core to spare (the daemon
is one interpreter, about one core) it drains at full speed all the same.
SCHED_IDLE (weight 3) was tried: on a saturated machine the worker then all but
stops, and a daemon's start waited for its first answer (with four CPU hogs,
tests/callbacks/test_callbacks_process.py timed out at SCHED_IDLE; it passed in
21 s at nice 5, 47 s at nice 19 lowered once ready, 5 s without the hogs).

Lowered for every thread of the worker, once it has told the daemon it is ready:
its start (imports, engine) is a CPU second the daemon's own start waits for, and
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
    batch = getattr(os, "SCHED_BATCH", None)
    threads = _threads()
    if batch is not None:
        try:
            for tid in threads:
                with contextlib.suppress(ProcessLookupError):  # a thread that ended
                    os.sched_setscheduler(tid, batch, os.sched_param(0))
            applied.append("SCHED_BATCH")
        except OSError as exc:
            refused.append(f"SCHED_BATCH ({exc.strerror})")
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
