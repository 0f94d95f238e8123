"""Summarise a py-spy raw (folded) profile: the top functions by self and by total
share of samples, per thread and overall. Prints figures; asserts nothing.

    python bench/spy_summary.py PROFILE [--top 25] [--thread SUBSTRING]
"""

from __future__ import annotations

import argparse
import collections
import re

# Leaves that are a thread waiting, not working (py-spy counts a thread blocked in
# Python-level waits as active): dropped unless --idle.
IDLE = ("Condition.wait (threading.py)", "EPollReactor.doPoll (twisted/internet/epollreactor.py)")
_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def frame_name(frame: str) -> str:
    """'fn (path/to/file.py:12)' -> 'fn (file.py)': lines merged, paths shortened."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match.group("file")
    for marker in ("site-packages/", "smppd/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('name')} ({path})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--thread", help="only stacks whose thread name contains this")
    parser.add_argument("--idle", action="store_true", help="keep the waiting stacks")
    args = parser.parse_args()
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    samples = 0
    with open(args.profile) as lines:
        for line in lines:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            frames = stack.split(";")
            if frames[0].startswith("process ") and len(frames) > 1:  # --subprocesses
                frames = [frames[0].partition(":")[0] + " " + frames[1], *frames[2:]]
            thread = frames[0]
            if args.thread and args.thread not in thread:
                continue
            # py-spy --threads: first frame is the thread; idle stacks are not recorded
            names = [frame_name(f) for f in frames[1:]]
            if not args.idle and names and names[-1] in IDLE:
                continue
            threads[re.sub(r"\(\d+\)", "", thread)] += count
            samples += count
            if names:
                own[names[-1]] += count
            for name in set(names):
                total[name] += count
    print(f"{samples:,} samples (250 Hz: {samples / 250:.1f} s on CPU)")
    print("\nby thread:")
    for thread, count in threads.most_common(10):
        print(f"  {count / samples:6.1%}  {thread}")
    print("\nself (the function on top of the stack):")
    for name, count in own.most_common(args.top):
        print(f"  {count / samples:6.1%}  {name}")
    print("\ntotal (the function anywhere on the stack):")
    for name, count in total.most_common(args.top):
        print(f"  {count / samples:6.1%}  {name}")


if __name__ == "__main__":
    main()
