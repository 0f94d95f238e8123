"""A flapping link: the SMSC closes the connection before answering every Nth
submit (issue 8). Prints, per N, messages/s to the last delivered status, the drops,
the resends and how long the backlog took to drain; asserts nothing.

The fake SMSC (`smppd fake-smsc --drop-every N`) and the daemon (`smppd run`,
SQLite, window 10, the default reconnect back-off and wait_ack_expire) run as their
own processes; this script POSTs over 10 keep-alive connections.

    python bench/flapping.py [--count 400] [--every 5 10 25 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from e2e import TOKEN, free_port, post_all, until, wait_port, write_config


def delivered(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return conn.execute("SELECT count(*) FROM messages WHERE status = 'delivered'"
                            ).fetchone()[0]


def resent(http_port: int) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{http_port}/metrics",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    text = urllib.request.urlopen(request, timeout=10).read().decode()
    return int(sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("smppd_resent_total{")))


def run(count: int, every: int) -> str:
    folder = Path(tempfile.mkdtemp(prefix="smppd-flap-"))
    smsc_port, http_port = free_port(), free_port()
    config = write_config(folder, smsc_port, http_port, window=10)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    smsc = subprocess.Popen([sys.executable, "-m", "smppd.cli", "--log-level", "warning",
                             "fake-smsc", "--port", str(smsc_port), "--drop-every",
                             str(every)], env=env)
    wait_port(smsc_port)
    daemon = subprocess.Popen([sys.executable, "-m", "smppd.cli", "run", "--config",
                               str(config)], env=env, stderr=subprocess.DEVNULL)
    try:
        wait_port(http_port)
        started = time.perf_counter()
        accepted, failures = asyncio.run(post_all(http_port, count, 10))
        db = folder / "smppd.db"
        with contextlib.suppress(AssertionError):  # after 10 minutes: report what is done
            until(lambda: delivered(db) >= count - failures, 600, "all delivered",
                  interval=0.1)
        finished = time.perf_counter()
        done = delivered(db)
        return (f"drop every {every:>3}: {done}/{count} delivered in {finished - started:6.1f} s"
                f" = {done / (finished - started):7.1f} msg/s (accepted in "
                f"{accepted - started:.1f} s, drained {finished - accepted:.1f} s later); "
                f"{resent(http_port)} parts resent")
    finally:
        for process in (daemon, smsc):
            process.terminate()
            process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--every", type=int, nargs="+", default=[5, 10, 25, 50])
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    for every in args.every:
        print(run(args.count, every), flush=True)


if __name__ == "__main__":
    main()
