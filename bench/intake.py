"""The HTTP intake alone: CPU per accepted POST, by thread and process, with no SMPP.

The daemon (`smppd run`, SQLite) is bound to nothing (its SMSC's port is 1), so every
POST /v1/messages is validated, charged, committed and answered 201, and nothing is
sent. peer-bench's httpload.py posts N messages over C keep-alive connections. CPU
comes from /proc/*/task/*/schedstat (each thread of the daemon and of its writer
process) between the first and the last request. Prints figures; asserts nothing.

    python bench/intake.py [-n 20000] [-c 20] [--writer auto|process|thread]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from e2e import TOKEN, free_port, wait_port  # bench/ is the working directory
from procstat import with_children

HTTPLOAD = Path(__file__).resolve().parent.parent.parent / "shared" / "peer-bench" / "httpload.py"
BODY = '{"to": "+4917{i7}0", "from": "12345", "text": "Hello from the intake bench"}'


def threads(pids: list[int]) -> dict[tuple[int, str], int]:
    """(pid, tid) -> run time in ns."""
    found = {}
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                found[(pid, task.name)] = int((task / "schedstat").read_text().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("-c", type=int, default=20)
    parser.add_argument("--writer", choices=["auto", "process", "thread"], default="auto")
    args = parser.parse_args()
    if not HTTPLOAD.exists():
        sys.exit(f"needs peer-bench's httpload.py at {HTTPLOAD}")
    folder = Path(tempfile.mkdtemp(prefix="smppd-intake-"))
    port = free_port()
    config = folder / "smppd.yaml"
    config.write_text(f"""
database: sqlite:///{folder / 'smppd.db'}
log_level: warning
http: {{listen: 127.0.0.1:{port}}}
smscs:
  - {{name: nowhere, host: 127.0.0.1, port: 1, system_id: b, password: b, window: 100}}
accounts:
  - {{name: bench, token: {TOKEN}, balance: 1000000000}}
store: {{writer: {args.writer}}}
""")
    daemon = subprocess.Popen([sys.executable, "-m", "smppd.cli", "run", "--config",
                               str(config)], env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        wait_port(port)
        time.sleep(1.5)  # the writer process's start
        pids = with_children([daemon.pid])
        before = threads(pids)
        load = subprocess.run(
            [sys.executable, str(HTTPLOAD), "-n", str(args.n), "-c", str(args.c),
             "--out", str(folder / "load.json"), "--header", f"Authorization: Bearer {TOKEN}",
             "--body", BODY, f"http://127.0.0.1:{port}/v1/messages"],
            capture_output=True, text=True, check=True)
        after = threads(pids)
    finally:
        daemon.terminate()
        daemon.wait(60)
    result = json.loads((folder / "load.json").read_text())
    print(f"{args.n:,} POSTs, c={args.c}, store.writer {args.writer}: "
          f"{result['req_per_s']:,.0f} req/s, answers {result['status']}")
    total = 0
    for key, ns in sorted(after.items()):
        used = ns - before.get(key, 0)
        total += used
        if used > 1e7:
            where = "daemon" if key[0] == daemon.pid else "writer process"
            # Python's threads keep the process's name: the main thread is the one
            # whose id is the pid (the daemon's reactor).
            thread = "main" if key[1] == str(key[0]) else f"thread {key[1]}"
            print(f"  {where:15s} {thread:14s} {used / 1e3 / args.n:7.1f} µs per POST")
    print(f"  {'all':30s} {total / 1e3 / args.n:7.1f} µs per POST"
          f"{'' if load.returncode == 0 else ' (httpload failed)'}")


if __name__ == "__main__":
    main()
