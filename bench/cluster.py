"""Several instances on one PostgreSQL database (issue 14): messages per second end to
end, and each instance's CPU.

The fake SMSC (`smppd fake-smsc`, receipts on) and N `smppd run` processes sharing
one PostgreSQL database (its schema emptied first), window 100 each, throughput
unlimited. This load generator POSTs the messages, spread evenly over the
instances' APIs (keep-alive connections to each), and, with --job, also makes one
bulk job through the first instance, which every instance feeds. The clock stops
when the last message's final status is committed. Prints figures; asserts nothing.

    python bench/cluster.py --database postgresql+psycopg://postgres@127.0.0.1/bench \
        [--instances 2] [--count 10000] [--job 10000] [--connections 240] \
        [--writer auto|process|thread]

The connections are shared out among the instances. Each waits for its 201 before its
next POST, so the rate they can offer is connections / latency of an accept: 240 by
default, because 40 (the earlier default) left two instances waiting on the load
generator (measured 2026-11-30, thread writer, 20,000 messages: one instance 1,071-1,326
msg/s and two 943-1,298 at 40 connections; at 240, one 1,089-1,557 and two 1,749-2,221).

(--database defaults to $SMPPD_TEST_POSTGRES_URL; that database is emptied.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.e2e import free_port, post_all, wait_port
from bench.procstat import Tree
from tests.support.polling import until

TOKEN = "bench-token-0123456789abcdef"
FINAL = "('delivered','undelivered','expired','rejected','failed','unknown')"


def write_config(folder: Path, database: str, smsc_port: int, http_port: int,
                 window: int, writer: str = "auto") -> Path:
    path = folder / "smppd.yaml"
    path.write_text(f"""
database: {database}
log_level: warning
store:
  writer: {writer}
http:
  listen: 127.0.0.1:{http_port}
smscs:
  - name: fake
    host: 127.0.0.1
    port: {smsc_port}
    system_id: bench
    password: bench
    window: {window}
    throughput: 0
accounts:
  - name: bench
    token: {TOKEN}
    balance: 100000000
""")
    return path


def empty(database: str) -> Any:
    engine = create_engine(database)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    return engine


def count_final(engine: Any) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM messages WHERE status IN {FINAL}")
                            ).scalar() or 0


def make_job(port: int, count: int) -> None:
    body = json.dumps({"name": "bench", "from": "Bench", "text": "Job message {n}",
                       "recipients": [{"to": f"+4860{i:07d}", "n": str(i)}
                                      for i in range(count)]}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/jobs", body, {
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as answer:
        assert answer.status == 201


def cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=os.environ.get("SMPPD_TEST_POSTGRES_URL"))
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--count", type=int, default=10_000, help="messages POSTed")
    parser.add_argument("--job", type=int, default=0, help="messages in one bulk job")
    parser.add_argument("--connections", type=int, default=240)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--writer", choices=("auto", "process", "thread"), default="auto",
                        help="store.writer of every instance (auto: thread on PostgreSQL)")
    args = parser.parse_args()
    if not args.database:
        parser.error("--database (or SMPPD_TEST_POSTGRES_URL) names the PostgreSQL database")
    engine = empty(args.database)
    folder = Path(tempfile.mkdtemp(prefix="smppd-cluster-"))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    smsc_port = free_port()
    smsc = subprocess.Popen([sys.executable, "-m", "smppd.cli", "--log-level", "warning",
                             "fake-smsc", "--port", str(smsc_port)], env=env)
    daemons, ports, logs = [], [], []
    try:
        wait_port(smsc_port)
        for index in range(args.instances):
            home = folder / f"instance-{index}"
            home.mkdir()
            port = free_port()
            config = write_config(home, args.database, smsc_port, port, args.window, args.writer)
            logs.append((home / "daemon.log").open("w"))
            daemons.append(subprocess.Popen([sys.executable, "-m", "smppd.cli", "run",
                                             "--config", str(config)], env=env,
                                            stderr=logs[-1]))
            ports.append(port)
            wait_port(port, 60)
        time.sleep(2.0)  # binds, and a heartbeat or two: every instance sees the others
        processes = [Tree(d.pid) for d in daemons]  # each with its writer process
        before = [cpu(p) for p in processes]
        smsc_before = cpu(psutil.Process(smsc.pid))
        started = time.perf_counter()
        if args.job:
            make_job(ports[0], args.job)
        job_made = time.perf_counter() - started

        async def post_everywhere() -> list[tuple[float, int]]:
            share = args.count // args.instances
            per = max(1, args.connections // args.instances)
            return await asyncio.gather(*(post_all(port, share, per) for port in ports))

        posted = asyncio.run(post_everywhere()) if args.count else []
        accepted_at = max((at for at, _ in posted), default=time.perf_counter())
        failures = sum(f for _, f in posted)
        total = (args.count // args.instances) * args.instances + args.job - failures
        until(lambda: count_final(engine) >= total, 3600, "every message final",
              interval=0.1)
        finished = time.perf_counter()
        spent = [cpu(p) - b for p, b in zip(processes, before, strict=True)]
        smsc_cpu = cpu(psutil.Process(smsc.pid)) - smsc_before
        try:  # (a build before issue 14 has no such table)
            with engine.connect() as conn:
                sent_by = conn.execute(text("SELECT count(*) FROM instances")).scalar()
        except Exception:
            sent_by = None
    finally:
        for daemon in daemons:
            daemon.terminate()
        for daemon in daemons:
            daemon.wait(60)
        smsc.terminate()
        smsc.wait(10)
        for log in logs:
            log.close()
    elapsed = finished - started
    print(f"{args.instances} instance(s) on PostgreSQL, window {args.window} each, throughput "
          f"unlimited: {args.count} POSTed over {args.connections} connections "
          f"({failures} refused), job of {args.job}")
    if args.job:
        print(f"job created:        {job_made:8.2f} s")
    if args.count:
        print(f"HTTP accepted:      {(args.count - failures) / (accepted_at - started):8.0f} "
              f"msg/s")
    print(f"end to end (final): {total / elapsed:8.0f} msg/s ({elapsed:.2f} s to the last "
          f"final status committed)")
    for index, seconds in enumerate(spent):
        print(f"instance {index}: {seconds:6.2f} CPU s, {1000 * seconds / total:.3f} CPU s per "
              f"1,000 messages of the total, {100 * seconds / elapsed:.0f}% of a core")
    print(f"fake SMSC: {smsc_cpu:.2f} CPU s; instances registered: {sent_by}")


if __name__ == "__main__":
    main()
