"""Bulk jobs: (b) how fast a big CSV is queued, and (c) an unthrottled job end to end.

(b) POSTs a CSV of N recipients (multipart upload) to `smppd run` (SQLite) and reports
rows queued per second (upload to 201, which comes after the last batch commits) and
the daemon's peak RSS. Nothing is bound while it queues, so only queueing is timed.
(c) sends a job of M messages through the fake SMSC (window 100 unless --window, no limit,
receipts on) and reports messages/s from the 201 to the last final status committed,
and daemon CPU seconds per 1,000 messages. Prints figures; asserts nothing.

    python bench/jobs.py [--rows 1000000] [--messages 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
from e2e import TOKEN, final_count, free_port, until, wait_port  # bench/ is the working directory
from procstat import Tree


def start(folder: Path, smsc_port: int, http_port: int,
          window: int = 100) -> subprocess.Popen[bytes]:
    config = folder / "smppd.yaml"
    config.write_text(f"""
database: sqlite:///{folder / 'smppd.db'}
log_level: warning
http: {{listen: 127.0.0.1:{http_port}, max_job_body_bytes: 100000000}}
smscs:
  - {{name: fake, host: 127.0.0.1, port: {smsc_port}, system_id: b, password: b,
     window: {window}, throughput: 0}}
accounts:
  - {{name: bench, token: {TOKEN}, balance: 100000000}}
store: {{writer: {WRITER[0]}}}
""")
    daemon = subprocess.Popen([sys.executable, "-m", "smppd.cli", "run", "--config",
                               str(config)], env=dict(os.environ, PYTHONUNBUFFERED="1"))
    wait_port(http_port)
    return daemon


def post(port: int, body: bytes, content_type: str) -> dict[str, object]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/jobs", body, {
        "Authorization": f"Bearer {TOKEN}", "Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=3600) as answer:
        return json.loads(answer.read())


SPY_GIL: list[str] = []  # ["--gil"]: only the samples holding the GIL
WRITER = ["auto"]  # store.writer: where the writer's transactions run


def spy_on(pid: int, profile: str | None) -> subprocess.Popen[bytes] | None:
    """py-spy (raw, 250 Hz, every thread) on the daemon until `spy_off`."""
    if not profile:
        return None
    spy = subprocess.Popen(["py-spy", "record", "-p", str(pid), "-o", profile,
                            "--format", "raw", "-r", "250", "--threads", *SPY_GIL],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    return spy


def spy_off(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is not None:
        spy.send_signal(2)
        spy.wait(30)


def queue_csv(rows: int, profile: str | None = None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="smppd-jobs-"))
    http_port = free_port()
    daemon = start(folder, free_port(), http_port)  # no SMSC listens: nothing is sent
    try:
        csv_text = "to,name\n" + "".join(f"+4850{i:07d},Customer {i}\n" for i in range(rows))
        boundary = "bench-boundary"
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nbench\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="from"\r\n\r\nAcme\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="text"\r\n\r\n'
                f'Hello {{name}}, your code is ready\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="r.csv"\r\n\r\n{csv_text}\r\n--{boundary}--\r\n').encode()
        process = Tree(daemon.pid)  # with its writer process
        spy = spy_on(daemon.pid, profile)
        started = time.perf_counter()
        job = post(http_port, body, f"multipart/form-data; boundary={boundary}")
        elapsed = time.perf_counter() - started
        spy_off(spy)
        hwm = process.peak_rss()  # the daemon's and its writer process's, summed
        cpu = process.cpu_times()
    finally:
        daemon.terminate()
        daemon.wait(120)
    print(f"(b) CSV of {rows:,} rows ({len(body) / 2**20:.1f} MiB): {job['messages']:,} "
          f"queued in {elapsed:.1f} s = {job['messages'] / elapsed:,.0f} rows/s; daemon peak "
          f"RSS {hwm / 2**20:.0f} MiB, CPU {cpu.user + cpu.system:.1f} s")


def run_job(messages: int, profile: str | None = None, window: int = 100) -> None:
    folder = Path(tempfile.mkdtemp(prefix="smppd-jobs-"))
    smsc_port, http_port = free_port(), free_port()
    smsc = subprocess.Popen([sys.executable, "-m", "smppd.cli", "--log-level", "warning",
                             "fake-smsc", "--port", str(smsc_port)])
    wait_port(smsc_port)
    daemon = start(folder, smsc_port, http_port, window)
    try:
        time.sleep(0.5)
        body = json.dumps({"name": "bench", "from": "Acme", "text": "Hello {name}",
                           "recipients": [{"to": f"+4850{i:07d}", "name": f"n{i}"}
                                          for i in range(messages)]}).encode()
        process, smsc_process = Tree(daemon.pid), psutil.Process(smsc.pid)
        spy = spy_on(daemon.pid, profile)
        created_at = time.perf_counter()
        post(http_port, body, "application/json")
        queued = time.perf_counter()
        cpu_before, smsc_before = process.cpu_times(), smsc_process.cpu_times()
        until(lambda: final_count(folder / "smppd.db") >= messages, 3600,
              "every message of the job final", interval=0.05)
        done = time.perf_counter()
        cpu_after, smsc_after = process.cpu_times(), smsc_process.cpu_times()
        spy_off(spy)
    finally:
        daemon.terminate()
        daemon.wait(60)
        smsc.terminate()
        smsc.wait(10)
    cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    smsc_cpu = (smsc_after.user + smsc_after.system) - (smsc_before.user + smsc_before.system)
    print(f"(c) job of {messages:,} messages, window {window}: queued in "
          f"{queued - created_at:.1f} s, then "
          f"{messages / (done - queued):,.0f} messages/s to the last final status "
          f"({done - queued:.1f} s); daemon CPU {cpu / messages * 1000:.3f} s per 1,000, "
          f"fake SMSC (same machine) {smsc_cpu / messages * 1000:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--only", choices=["csv", "job"], help="run one of the two")
    parser.add_argument("--window", type=int, default=100, help="the bind's window in (c)")
    parser.add_argument("--py-spy", metavar="FILE",
                        help="profile the daemon (raw folded stacks): FILE for (c), "
                        "FILE.csv for (b)")
    parser.add_argument("--writer", choices=["auto", "process", "thread"], default="auto",
                        help="store.writer: the writer's transactions in their own "
                        "process or in the daemon's writer thread (auto: the process "
                        "on SQLite)")
    parser.add_argument("--gil", action="store_true",
                        help="with --py-spy: only samples holding the GIL (py-spy --gil)")
    args = parser.parse_args()
    WRITER[0] = args.writer
    if args.gil:
        SPY_GIL.append("--gil")
    if args.only != "job":
        queue_csv(args.rows, args.py_spy and args.py_spy + ".csv")
    if args.only != "csv":
        run_job(args.messages, args.py_spy, args.window)


if __name__ == "__main__":
    main()
