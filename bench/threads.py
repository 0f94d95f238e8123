"""CPU and wake-ups per thread, second by second, of the processes whose command line
matches a pattern: where a run's CPU goes (reactor, writer thread, writer process,
pool threads), and how often each thread is woken. Prints figures; asserts nothing.

Why a sampler of /proc/<pid>/task/<tid>/schedstat and not a profiler: at 100 messages
a second most of the cost is small (tens of milliseconds a second) and spread over
threads that sleep in between; schedstat counts each thread's time on a CPU and its
context switches exactly, whatever it runs (Python, SQLite, the kernel's work for it).

    python bench/threads.py 'smppd|bearerbox|smsbox' --seconds 60   # beside a bench run

Each line: the second, the total in ms of CPU, then per thread
`process:thread-id=ms/switches` (threads that used under 0.1 ms are left out). The
thread with the process's own id is its main thread (smppd's reactor).
"""

from __future__ import annotations

import argparse
import os
import re
import time

Key = tuple[str, int]  # (process name, thread id)


def _name(cmdline: list[str]) -> str:
    """`python -m smppd.store.child ...` -> smppd.store.child; `/usr/sbin/bearerbox`
    -> bearerbox; `.../bin/smppd run` -> smppd."""
    if "-m" in cmdline[:2]:
        return cmdline[cmdline.index("-m") + 1]
    program = cmdline[1] if len(cmdline) > 1 and os.path.basename(cmdline[0]).startswith(
        "python") else cmdline[0]
    return os.path.basename(program)


def snapshot(pattern: re.Pattern[str]) -> dict[Key, tuple[float, int]]:
    """(ms on a CPU, context switches) of every thread of the matching processes."""
    found: dict[Key, tuple[float, int]] = {}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as raw:
                cmdline = raw.read().decode(errors="replace").split("\0")[:-1]
            threads = os.listdir(f"/proc/{entry}/task")
        except OSError:
            continue
        if not cmdline or not pattern.search(" ".join(cmdline)):
            continue
        name = _name(cmdline)
        for tid in threads:
            try:
                with open(f"/proc/{entry}/task/{tid}/schedstat") as stat:
                    on_cpu, _, switches = stat.read().split()
            except (OSError, ValueError):
                continue
            found[(name, int(tid))] = (int(on_cpu) / 1e6, int(switches))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pattern", help="a regular expression for the command lines")
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    pattern = re.compile(args.pattern)
    before = snapshot(pattern)
    for second in range(args.seconds):
        time.sleep(1)
        now = snapshot(pattern)
        deltas = {key: (ms - before.get(key, (0.0, 0))[0], switches - before.get(key, (0, 0))[1])
                  for key, (ms, switches) in now.items()}
        before = now
        total = sum(ms for ms, _ in deltas.values())
        shown = " ".join(f"{name}:{tid}={ms:.1f}/{switches}"
                         for (name, tid), (ms, switches) in sorted(deltas.items()) if ms >= 0.1)
        print(f"{second:3d} {total:7.1f} ms  {shown}", flush=True)


if __name__ == "__main__":
    main()
