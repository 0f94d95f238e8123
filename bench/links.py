"""Short-link redirects/s: the links listener under many keep-alive clients.

The fake SMSC and `smppd run` (SQLite, links.listen on its own port) run as their
own processes; a job of `--links` recipients with `shorten_links` makes one code per
message; then this load generator follows codes (each recipient's once, then again:
repeats) with GET over `--connections` keep-alive connections, shared by `--processes`
client processes (so that the client is not what is measured: its CPU is printed),
and counts 302s per second. Clicks are written after their 302 (queued for the
writer); the bench waits for them and checks that the store recorded exactly one
click per request. Prints figures; asserts nothing.

    python bench/links.py [--links 20000] [--requests 60000] [--connections 200]
                          [--processes 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from e2e import free_port, wait_port

TOKEN = "links-token-0123456789abcdef"
AGENTS = [b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
          b"Mobile/15E148", b"Mozilla/5.0 (Linux; Android 14; SM-S918B) Chrome/120.0 Mobile "
          b"Safari/537.36", b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0",
          b"WhatsApp/2.23.20.0 A"]


def write_config(folder: Path, smsc_port: int, http_port: int, links_port: int) -> Path:
    path = folder / "smppd.yaml"
    path.write_text(f"""
database: sqlite:///{folder / 'smppd.db'}
log_level: warning
http:
  listen: 127.0.0.1:{http_port}
  max_job_body_bytes: 67108864
links:
  listen: 127.0.0.1:{links_port}
  base_url: https://s.example/
smscs:
  - {{name: fake, host: 127.0.0.1, port: {smsc_port}, system_id: bench, password: bench,
      window: 100, throughput: 0}}
accounts:
  - {{name: bench, token: {TOKEN}, balance: 100000000}}
""")
    return path


class _Client(asyncio.Protocol):
    """One keep-alive connection: a GET, its answer, the next GET. A Protocol, not
    streams: the client must cost far less than the server it measures."""

    def __init__(self, requests: Iterator[bytes], done: asyncio.Future[None]) -> None:
        self.requests = requests
        self.done = done
        self.buffer = b""
        self.found = self.unknown = 0
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self._next()

    def _next(self) -> None:
        request = next(self.requests, None)
        if request is None:
            self.transport.close()
        else:
            self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            at = self.buffer.find(b"Content-Length: ", 0, end)
            length = int(self.buffer[at + 16:self.buffer.find(b"\r", at, end + 2)])
            if len(self.buffer) < end + 4 + length:
                return
            if self.buffer[9:12] == b"302":
                self.found += 1
            else:
                self.unknown += 1
            self.buffer = self.buffer[end + 4 + length:]
            self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _follow(port: int, codes: list[str], connections: int) -> tuple[int, int]:
    loop = asyncio.get_running_loop()
    requests = (b"GET /" + code.encode() + b" HTTP/1.1\r\nHost: s.example\r\nUser-Agent: "
                + AGENTS[index % len(AGENTS)] + b"\r\n\r\n"
                for index, code in enumerate(codes))
    clients = []
    for _ in range(connections):
        done = loop.create_future()
        _, client = await loop.create_connection(lambda d=done: _Client(requests, d),
                                                 "127.0.0.1", port)
        clients.append(client)
    await asyncio.gather(*(client.done for client in clients))
    return sum(c.found for c in clients), sum(c.unknown for c in clients)


def _worker(port: int, codes: list[str], connections: int, start: Any,
            results: Any) -> None:
    start.wait()
    before = resource.getrusage(resource.RUSAGE_SELF)
    found, unknown = asyncio.run(_follow(port, codes, connections))
    after = resource.getrusage(resource.RUSAGE_SELF)
    results.put((found, unknown, after.ru_utime + after.ru_stime
                 - before.ru_utime - before.ru_stime))


def follow(port: int, codes: list[str], connections: int, processes: int
           ) -> tuple[int, int, float, float]:
    """The codes followed by `processes` client processes sharing `connections`;
    (302s, others, seconds, the clients' CPU seconds)."""
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    workers = [context.Process(target=_worker, args=(
        port, codes[n::processes], max(1, connections // processes), start, results))
        for n in range(processes)]
    for worker in workers:
        worker.start()
    time.sleep(0.5)  # every client process is up before the clock starts
    started = time.perf_counter()
    start.set()
    found = unknown = 0
    cpu = 0.0
    for _ in workers:
        f, u, c = results.get(timeout=600)
        found, unknown, cpu = found + f, unknown + u, cpu + c
    took = time.perf_counter() - started
    for worker in workers:
        worker.join(10)
    return found, unknown, took, cpu


def wait_recorded(db: Path, expected: int, timeout: float = 60) -> int:
    """Clicks are written after their 302: wait (bounded) until they all are."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
            clicks = conn.execute("SELECT count(*) FROM link_clicks").fetchone()[0]
        if clicks >= expected or time.monotonic() > deadline:
            return clicks
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=60_000)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--processes", type=int, default=2,
                        help="client processes (the connections are shared among them)")
    parser.add_argument("--py-spy", metavar="FILE",
                        help="record the daemon with py-spy while the links are followed")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="smppd-bench-links-"))
    smsc_port, http_port, links_port = free_port(), free_port(), free_port()
    config = write_config(folder, smsc_port, http_port, links_port)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    smsc = subprocess.Popen([sys.executable, "-m", "smppd.cli", "--log-level", "warning",
                             "fake-smsc", "--port", str(smsc_port)], env=env)
    wait_port(smsc_port)
    log = (folder / "daemon.log").open("w")
    daemon = subprocess.Popen([sys.executable, "-m", "smppd.cli", "run", "--config",
                               str(config)], env=env, stderr=log)
    db = folder / "smppd.db"
    try:
        wait_port(http_port)
        wait_port(links_port)
        body = json.dumps({"name": "links", "from": "Bench", "shorten_links": True,
                           "text": "Autumn sale https://shop.example/autumn?c={n}",
                           "recipients": [{"to": f"+4850{i:07d}", "n": str(i)}
                                          for i in range(args.links)]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{http_port}/v1/jobs", data=body,
                                         headers={"Authorization": f"Bearer {TOKEN}"})
        job = json.loads(urllib.request.urlopen(request, timeout=300).read())
        deadline = time.monotonic() + 300  # let the job be sent: clicks alone are measured
        while time.monotonic() < deadline:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
                if not conn.execute("SELECT count(*) FROM messages WHERE status IN "
                                    "('queued', 'submitted')").fetchone()[0]:
                    break
            time.sleep(0.2)
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
            codes = [row[0] for row in conn.execute("SELECT code FROM links")]
        print(f"job {job['id']}: {job['messages']} messages, {len(codes)} short links")
        wanted = (codes * (args.requests // max(len(codes), 1) + 1))[:args.requests]
        wanted += ["ZZZZZZZZ9"] * (args.requests // 100)  # 1 % unknown codes
        process = psutil.Process(daemon.pid)

        def reactor_cpu() -> float:  # the main thread's: the one that answers
            return next(sum(t[1:]) for t in process.threads() if t.id == daemon.pid)

        cpu_before = sum(process.cpu_times()[:2])
        reactor_before = reactor_cpu()
        load = os.getloadavg()
        spy = None
        if args.py_spy:
            spy = subprocess.Popen(["py-spy", "record", "-p", str(daemon.pid), "-o",
                                    args.py_spy, "--format", "raw", "-r", "200", "--threads"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        found, unknown, took, client_cpu = follow(links_port, wanted, args.connections,
                                                  args.processes)
        cpu = sum(process.cpu_times()[:2]) - cpu_before
        reactor = reactor_cpu() - reactor_before
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
        wait_recorded(db, found)
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
            clicks, repeats = conn.execute(
                "SELECT count(*), sum(is_repeat) FROM link_clicks").fetchone()
            first = conn.execute("SELECT count(*) FROM links WHERE first_click_at IS NOT NULL"
                                 ).fetchone()[0]
    finally:
        daemon.terminate()
        daemon.wait(60)
        smsc.terminate()
        smsc.wait(10)
        log.close()
    total = found + unknown
    print(f"redirects: {found} 302 + {unknown} 404 in {took:.2f} s = {total / took:.0f} "
          f"requests/s over {args.connections} keep-alive connections")
    print(f"daemon CPU {cpu:.2f} s = {cpu / total * 1000:.3f} s per 1,000 requests; "
          f"client CPU {client_cpu:.2f} s over {args.processes} processes "
          f"({client_cpu / took:.0%} of one core); load average before {load[0]:.2f}")
    print(f"reactor thread CPU {reactor:.2f} s = {reactor / total * 1e6:.0f} µs per request "
          f"(= {total / max(reactor, 0.001):.0f} requests per second of one core)")
    print(f"store: {clicks} clicks recorded for {found} redirects ({repeats} repeats, "
          f"{first} links clicked at least once)")
    print(f"(files in {folder})")


if __name__ == "__main__":
    main()
