"""End to end: HTTP accept -> submit_sm -> receipt -> final status persisted.

Three processes share the two cores as they would in production: the fake SMSC
(`smppd fake-smsc`, receipts on, no delay), the daemon (`smppd run`, SQLite,
window 100, throughput unlimited) and this load generator, which POSTs every
message on its own request over 50 concurrent keep-alive connections. The clock
stops when the last message's final status is committed (read from the SQLite
file). Prints figures; asserts nothing.

    python bench/e2e.py [--count 20000] [--connections 50] [--window 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

# The repository, for the one polling helper the tests use too.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from procstat import Tree

from tests.support.polling import until

TOKEN = "bench-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(folder: Path, smsc_port: int, http_port: int, window: int) -> Path:
    path = folder / "smppd.yaml"
    path.write_text(f"""
database: sqlite:///{folder / 'smppd.db'}
log_level: warning
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


def wait_port(port: int, timeout: float = 20.0) -> None:
    def listening() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    until(listening, timeout, f"something listening on 127.0.0.1:{port}", interval=0.05)


def start_pair(folder: Path, smsc_port: int, config: Path) -> tuple[Any, Any, Any]:
    """The fake SMSC and `smppd run` as their own processes: (smsc, daemon, log file)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    smsc = subprocess.Popen([sys.executable, "-m", "smppd.cli", "--log-level", "warning",
                             "fake-smsc", "--port", str(smsc_port)], env=env)
    wait_port(smsc_port)
    log = (folder / "daemon.log").open("w")
    daemon = subprocess.Popen([sys.executable, "-m", "smppd.cli", "run", "--config",
                               str(config)], env=env, stderr=log)
    return smsc, daemon, log


async def post_all(port: int, count: int, connections: int) -> tuple[float, int]:
    """POST `count` messages over `connections` keep-alive connections; returns the
    time the last 201 arrived and the number of non-201 answers."""
    counter = iter(range(count))
    failures = 0

    async def worker() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for index in counter:
            body = json.dumps({"to": f"+4850{index % 10_000_000:07d}", "from": "Bench",
                               "text": f"Benchmark message {index}"}).encode()
            writer.write(b"POST /v1/messages HTTP/1.1\r\nHost: bench\r\n"
                         b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                         b"Content-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if b" 201 " not in status_line:
                failures += 1
                if failures <= 3:
                    print("refused:", status_line.decode().strip(), file=sys.stderr)
        writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter(), failures


def final_count(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return conn.execute("SELECT count(*) FROM messages WHERE status IN "
                            "('delivered','undelivered','expired','rejected','failed',"
                            "'unknown')").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--py-spy", metavar="FILE",
                        help="record the daemon with py-spy (collapsed stacks) into FILE")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="smppd-bench-"))
    smsc_port, http_port = free_port(), free_port()
    config = write_config(folder, smsc_port, http_port, args.window)
    smsc, daemon, log = start_pair(folder, smsc_port, config)
    try:
        wait_port(http_port)
        time.sleep(0.5)  # bind
        process = Tree(daemon.pid)  # with its writer process
        cpu_before = process.cpu_times()
        switches_before = process.num_ctx_switches()
        smsc_cpu_before = psutil.Process(smsc.pid).cpu_times()
        spy = None
        if args.py_spy:
            spy = subprocess.Popen(["py-spy", "record", "-p", str(daemon.pid), "-o", args.py_spy,
                                    "--format", "raw", "-r", "250", "--threads"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        started = time.perf_counter()
        own_before = time.process_time()
        accepted_at, failures = asyncio.run(post_all(http_port, args.count, args.connections))
        own_cpu = time.process_time() - own_before
        db = folder / "smppd.db"
        peak_rss = 0

        def drained() -> bool:
            nonlocal peak_rss
            peak_rss = max(peak_rss, process.memory_info().rss)
            return final_count(db) >= args.count - failures

        until(drained, 3600, "every accepted message final", interval=0.05)
        finished = time.perf_counter()
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
        cpu_after = process.cpu_times()
        switches = [a - b for a, b in zip(process.num_ctx_switches(), switches_before,
                                          strict=True)]
        threads = sorted(((t.user_time + t.system_time, t.id) for t in process.threads()),
                         reverse=True)
        smsc_cpu_after = psutil.Process(smsc.pid).cpu_times()
        peak_rss = max(peak_rss, process.memory_info().rss)
        hwm = process.peak_rss() or peak_rss
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics").read().decode()
    finally:
        daemon.terminate()
        daemon.wait(60)
        smsc.terminate()
        smsc.wait(10)
        log.close()
    elapsed = finished - started
    cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    smsc_cpu = ((smsc_cpu_after.user + smsc_cpu_after.system)
                - (smsc_cpu_before.user + smsc_cpu_before.system))
    ok = args.count - failures
    print(f"messages: {args.count} POSTed over {args.connections} keep-alive connections, "
          f"{failures} refused; window {args.window}, throughput unlimited, SQLite")
    print(f"HTTP accepted:      {ok / (accepted_at - started):8.0f} msg/s "
          f"({accepted_at - started:.2f} s)")
    print(f"end to end (final): {ok / elapsed:8.0f} msg/s ({elapsed:.2f} s to the last final "
          f"status committed)")
    print(f"submit_sm/s and receipts/s over the run: {ok / elapsed:.0f} each "
          "(one part and one receipt per message)")
    print(f"daemon CPU:         {cpu:.2f} s = {cpu / ok * 1000:.3f} s per 1,000 messages "
          f"(user {cpu_after.user - cpu_before.user:.2f} s, "
          f"system {cpu_after.system - cpu_before.system:.2f} s)")
    print("daemon CPU by thread (s, whole process life): "
          + ", ".join(f"{cpu_s:.2f}" for cpu_s, _ in threads[:4]))
    print(f"daemon context switches: {switches[0]} voluntary, {switches[1]} involuntary")
    print(f"fake SMSC CPU:      {smsc_cpu:.2f} s; load generator CPU: {own_cpu:.2f} s")
    print(f"daemon peak RSS:    {hwm / 2**20:.0f} MiB")
    values = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines()
              if line and not line.startswith("#")}
    batches = values.get("smppd_store_batch_seconds_count", 0)
    operations = values.get("smppd_store_operations_total", 0)
    if batches:
        print(f"store: {operations:.0f} operations in {batches:.0f} transactions "
              f"({operations / batches:.1f} per transaction)")


if __name__ == "__main__":
    main()
