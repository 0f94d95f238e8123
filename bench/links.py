"""Short-link redirects/s: the links listener under many keep-alive clients.

The fake SMSC and `smppd run` (SQLite, links.listen on its own port) run as their
own processes; a job of `--links` recipients with `shorten_links` makes one code per
message; then this load generator follows codes (each recipient's once, then again:
repeats) with GET over `--connections` keep-alive connections and counts 302s per
second. Each click is committed before its 302 (group commit through the writer),
and the bench checks that the store recorded exactly one click per request. Prints
figures; asserts nothing.

    python bench/links.py [--links 20000] [--requests 60000] [--connections 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

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


async def follow(port: int, codes: list[str], connections: int) -> tuple[int, int, float]:
    counter = iter(range(len(codes)))
    found = unknown = 0

    async def worker(number: int) -> None:
        nonlocal found, unknown
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        agent = AGENTS[number % len(AGENTS)]
        for index in counter:
            writer.write(b"GET /" + codes[index].encode() + b" HTTP/1.1\r\nHost: s.example\r\n"
                         b"User-Agent: " + agent + b"\r\n\r\n")
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if b" 302 " in status:
                found += 1
            else:
                unknown += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(connections)))
    return found, unknown, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=60_000)
    parser.add_argument("--connections", type=int, default=200)
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
        cpu_before = sum(process.cpu_times()[:2])
        found, unknown, took = asyncio.run(follow(links_port, wanted, args.connections))
        cpu = sum(process.cpu_times()[:2]) - cpu_before
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
    print(f"daemon CPU {cpu:.2f} s = {cpu / total * 1000:.3f} s per 1,000 requests")
    print(f"store: {clicks} clicks recorded for {found} redirects ({repeats} repeats, "
          f"{first} links clicked at least once)")
    print(f"(files in {folder})")


if __name__ == "__main__":
    main()
