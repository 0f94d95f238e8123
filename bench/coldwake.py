"""What a wake-up costs on this machine after the process slept: the same small piece
of work (touching 1,000 objects spread over a 60 MB heap, about a daemon's), timed in
thread CPU after sleeping for longer and longer. Prints figures; asserts nothing.

Why it is here: on some virtual machines the first work after a sleep runs hundreds of
times slower than the same work warm (seen on 2026-11-30: 0.07 ms warm, 5 ms after
0.1 s asleep, 60-80 ms after 4-8 s; wall time equal to CPU time, no page faults in the
guest). Such a machine charges an idle or throttled daemon for how much memory each
wake-up touches, not for the work it does: bench/idle.py and compare.py's 100/s figures
then measure the machine as much as the gateway. Run this first to know which machine
the other figures came from.

    python bench/coldwake.py [--objects 300000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

SLEEPS = (0.0, 0.01, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    heap = [{"id": n, "name": str(n)} for n in range(args.objects)]
    stride = max(1, args.objects // 1000)

    def work() -> float:
        started = time.thread_time()
        total = 0
        for item in heap[::stride]:
            total += item["id"]
        return (time.thread_time() - started) * 1e3

    for _ in range(5):
        work()  # warm
    print(f"{'asleep before':>14}  {'thread CPU of the work (ms), median of ' + str(args.repeat)}")
    for seconds in SLEEPS:
        runs = []
        for _ in range(args.repeat):
            time.sleep(seconds)
            runs.append(work())
        print(f"{seconds:12.2f} s  {statistics.median(runs):9.3f}")


if __name__ == "__main__":
    main()
