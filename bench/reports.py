"""Report speed: prints figures, asserts nothing.

1. A fixture of --rows messages over 30 days, written straight to the store
   (bench/report_fixture.py; --reuse keeps an existing one).
2. In this process, with the code the daemon runs: `daily` over all of it (from the
   rollups), the PDF summary of the 1,000,000-message job, XLSX of ~100,000 rows,
   `detailed` CSV of ~1,000,000 rows.
3. Through `smppd run` (its own process, with the fake SMSC): the 1,000,000-row
   `detailed` CSV queued over HTTP while a client POSTs /v1/messages at a steady
   rate; time to ready, the daemon's RSS growth, and POST latency p50/p99 before and
   during the report.

    python bench/reports.py --url sqlite:////tmp/reports.db [--rows 10000000] [--reuse]
    python bench/reports.py --url postgresql+psycopg://postgres@127.0.0.1/bench --no-daemon
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).parent))
import contextlib

import report_fixture
from e2e import free_port, start_pair, wait_port

from smppd.reports import periods
from smppd.reports.catalog import TYPES
from smppd.reports.documents import Context
from smppd.reports.queries import jobs
from smppd.reports.render import render
from smppd.store import database

TOKEN = "bench-token-0123456789abcdef"
TZ = "Europe/Warsaw"


def _period(start: float, end: float) -> periods.Period:
    tz = periods.zone(TZ)
    return periods.Period(datetime_at(start, tz), datetime_at(end, tz), tz)


def datetime_at(moment: float, tz: Any) -> Any:
    from datetime import datetime

    return datetime.fromtimestamp(moment, tz)


def timed_report(engine: Any, account: int, kind: str, fmt: str, request: dict[str, Any],
                 period: periods.Period | None, folder: Path,
                 job_ids: list[str] | None = None) -> tuple[float, int, int]:
    """(seconds, rows, bytes) to build and write one report, as the service does.
    Prints the process CPU seconds it took and the load average after it: on a
    shared machine the wall time drifts with the load, CPU time much less."""
    path = folder / f"{kind}.{fmt}"
    started = time.perf_counter()
    cpu = time.process_time()
    with engine.connect() as conn:
        ctx = Context(account, "bench", {"type": kind, "format": fmt, **request}, period,
                      periods.zone(TZ), job_ids)
        if job_ids:
            ctx.job_rows = jobs(conn, account, job_ids=job_ids)
        doc = TYPES[kind].build(conn, ctx)
        rows = render(doc, fmt, path, lambda _n: None, {"delimiter": ","})
    seconds = time.perf_counter() - started
    print(f"  ({kind} {fmt}: {time.process_time() - cpu:.2f} CPU s; load average "
          f"{os.getloadavg()[0]:.2f})")
    return seconds, rows, path.stat().st_size


def in_process(url: str, fixture: dict[str, Any], folder: Path) -> None:
    engine = database.make_engine(url)
    now, days, total = fixture["now"], fixture["days"], fixture["rows"]
    account = fixture["account_id"]
    per_second = total / (days * 86400)
    whole = _period(now - days * 86400 - 60, now + 60)
    for fmt in ("json", "csv", "pdf"):
        seconds, rows, size = timed_report(engine, account, "daily", fmt, {}, whole, folder)
        print(f"daily {fmt:4} over {total:,} messages ({rows} days):   {seconds:6.3f} s "
              f"({size:,} bytes)")
    if fixture.get("job"):
        seconds, rows, size = timed_report(engine, account, "job", "pdf", {}, None, folder,
                                           [fixture["job"]])
        print(f"job pdf summary of the 1,000,000-message job:     {seconds:6.3f} s "
              f"({size:,} bytes)")
    window = 100_000 / per_second
    seconds, rows, size = timed_report(engine, account, "detailed", "xlsx", {},
                                       _period(now - window, now), folder)
    print(f"detailed xlsx, {rows:,} rows:                     {seconds:6.3f} s "
          f"({size / 2**20:.1f} MiB)")
    window = 1_000_000 / per_second
    seconds, rows, size = timed_report(engine, account, "detailed", "csv", {},
                                       _period(now - window, now), folder)
    print(f"detailed csv, {rows:,} rows (in process):       {seconds:6.3f} s "
          f"({size / 2**20:.1f} MiB)")
    engine.dispose()


# Through the daemon ----------------------------------------------------------------------

class Poster(threading.Thread):
    """POST /v1/messages at a steady rate on one keep-alive connection; latencies
    are kept with the time they were measured."""

    def __init__(self, port: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.port, self.interval = port, 1.0 / rate
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.errors = 0

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        number = 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            body = json.dumps({"to": f"+4850{number % 10_000_000:07d}", "from": "Bench",
                               "text": "latency probe"})
            started = time.monotonic()
            conn.request("POST", "/v1/messages", body, headers)
            response = conn.getresponse()
            response.read()
            if response.status != 201:
                self.errors += 1
            self.samples.append((started, time.monotonic() - started))
            number += 1
            next_at += self.interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        conn.close()

    def between(self, start: float, end: float) -> list[float]:
        return [latency for at, latency in self.samples if start <= at < end]


def _percentiles(values: list[float]) -> str:
    if len(values) < 20:
        return f"{len(values)} samples"
    ordered = sorted(values)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return (f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
            f"max {ordered[-1] * 1000:.1f} ms ({len(values)} requests)")


def through_daemon(url: str, fixture: dict[str, Any], folder: Path) -> None:
    smsc_port, http_port = free_port(), free_port()
    config = folder / "smppd.yaml"
    config.write_text(f"""
database: {url}
log_level: warning
http: {{listen: 127.0.0.1:{http_port}}}
smscs:
  - {{name: fake, host: 127.0.0.1, port: {smsc_port}, system_id: bench, password: bench,
     window: 100, throughput: 0}}
accounts:
  - {{name: bench, token: {TOKEN}, balance: 1000000000000, timezone: {TZ}}}
reports: {{directory: {folder / 'files'}, async_rows: 100000}}
""")
    smsc, daemon, log = start_pair(folder, smsc_port, config)
    poster = Poster(http_port, rate=50.0)
    try:
        wait_port(http_port)
        time.sleep(1.0)
        process = psutil.Process(daemon.pid)
        poster.start()
        time.sleep(5.0)
        rss_before = process.memory_info().rss
        now, days, total = fixture["now"], fixture["days"], fixture["rows"]
        window = 1_000_000 / (total / (days * 86400))
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - window))
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 1))
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=60)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        started = time.monotonic()
        conn.request("POST", "/v1/reports", json.dumps({
            "type": "detailed", "format": "csv", "since": since, "until": until,
            "async": True}), headers)
        report = json.loads(conn.getresponse().read())
        if "id" not in report:
            raise SystemExit(f"the report was refused: {report}")
        peak = rss_before
        worker_peak = 0
        worker_cpu: dict[int, float] = {}
        daemon_cpu = sum(process.cpu_times()[:2])
        while True:
            peak = max(peak, process.memory_info().rss)
            for child in process.children():
                with contextlib.suppress(psutil.NoSuchProcess):
                    worker_peak = max(worker_peak, child.memory_info().rss)
                    worker_cpu[child.pid] = sum(child.cpu_times()[:2])
            conn.request("GET", f"/v1/reports/{report['id']}", headers=headers)
            report = json.loads(conn.getresponse().read())
            if "state" not in report:
                raise SystemExit(f"cannot follow the report: {report}")
            if report["state"] in ("ready", "failed"):
                break
            time.sleep(0.2)
        finished = time.monotonic()
        daemon_cpu = sum(process.cpu_times()[:2]) - daemon_cpu
        load = os.getloadavg()[0]
        time.sleep(3.0)
        poster.stop.set()
        poster.join(10)
        conn.close()
        print(f"daemon: detailed csv of {report['rows']:,} rows queued over HTTP: "
              f"{finished - started:.2f} s to {report['state']} "
              f"({(report.get('size') or 0) / 2**20:.0f} MiB); load average {load:.2f}")
        print(f"CPU seconds meanwhile: workers {sum(worker_cpu.values()):.2f} (last seen, "
              f"sampled every 0.2 s), the daemon {daemon_cpu:.2f}")
        print(f"daemon RSS: {rss_before / 2**20:.0f} MiB before, {peak / 2**20:.0f} MiB peak "
              f"during (+{(peak - rss_before) / 2**20:.0f} MiB); the report's worker process "
              f"peaked at {worker_peak / 2**20:.0f} MiB")
        print("POST /v1/messages before the report: "
              + _percentiles(poster.between(started - 5.0, started)))
        print("POST /v1/messages during the report: "
              + _percentiles(poster.between(started, finished)))
        if poster.errors:
            print(f"({poster.errors} POSTs answered other than 201)")
    finally:
        poster.stop.set()
        daemon.terminate()
        daemon.wait(60)
        smsc.terminate()
        smsc.wait(10)
        log.close()


def describe(url: str) -> dict[str, Any]:
    """What an existing fixture holds, read back from it."""
    from sqlalchemy import text

    engine = database.make_engine(url)
    with engine.connect() as conn:
        account = conn.execute(text("SELECT id FROM accounts WHERE name = 'bench'")).scalar()
        rows = conn.execute(text("SELECT SUM(messages) FROM message_rollups")).scalar()
        newest = conn.execute(text("SELECT MAX(id) FROM messages")).scalar()
        job = conn.execute(text("SELECT id FROM jobs WHERE id = :id"),
                           {"id": report_fixture.JOB_ID}).scalar()
    engine.dispose()
    return {"rows": int(rows), "account_id": account, "now": int(newest[:12], 16) / 1000,
            "days": 30.0, "job": job}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="database (default: a temporary SQLite)")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--reuse", action="store_true",
                        help="use the fixture already in --url (made by an earlier run)")
    parser.add_argument("--no-daemon", action="store_true", help="skip step 3")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="smppd-reports-bench-"))
    url = args.url or f"sqlite:///{folder / 'reports.db'}"
    info = Path(url.split(":///", 1)[1] + ".fixture.json") if url.startswith("sqlite") \
        else folder / "fixture.json"
    if args.reuse:
        fixture = json.loads(info.read_text()) if info.exists() else describe(url)
        print(f"fixture: reusing {fixture['rows']:,} messages")
    else:
        fixture = report_fixture.make(url, args.rows, 30.0, min(1_000_000, args.rows))
        info.write_text(json.dumps(fixture))
        print(f"fixture: {fixture['rows']:,} messages over 30 days written in "
              f"{fixture['seconds']:.0f} s")
    in_process(url, fixture, folder)
    if not args.no_daemon:
        through_daemon(url, fixture, folder)
    print(f"(files in {folder}; the machine may be shared: figures vary with its load)")


if __name__ == "__main__":
    main()
