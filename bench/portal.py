"""The portal's history page over 10,000,000 messages (issue 15: under 300 ms).

A fixture generator writes COUNT messages of one account (with one part each, an
SMSC id, a sender, recipient, status, channel, job and ref_id spread over 90 days)
and 5% as many of another account straight into a SQLite file, with the schema
of this version and its indexes built after the load. Then `smppd run` (its own
process) serves it; a signed-in client GETs /portal/history REQUESTS times each
for: the first page, a status filter, a recipient, a sender, a channel, a job, a
ref_id, a date range, and a page deep in the middle (by cursor). Each answer is the
whole page: 50 rows with their parts, events and text, rendered.

The file is kept (--db PATH) and reused when it already holds COUNT messages.
Prints figures (median, p95 and max milliseconds per page); asserts nothing.

    python bench/portal.py [--count 10000000] [--requests 20] [--db /tmp/portal-bench.db]
"""

from __future__ import annotations

import argparse
import http.client
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.e2e import free_port, wait_port
from smppd.portal import passwords
from smppd.store import database
from smppd.store import schema as t

TOKEN = "bench-token-0123456789abcdef"
LOGIN, PASSWORD = "bench", "bench password 1"
DAYS = 90
STATUSES = ["delivered"] * 80 + ["undelivered"] * 8 + ["expired"] * 4 + ["rejected"] * 3 \
    + ["submitted"] * 3 + ["unknown", "failed"]
CHANNELS = ["api"] * 6 + ["job"] * 3 + ["portal"]


def generate(path: Path, count: int) -> None:
    """Schema by the migrations, then rows by plain sqlite3 in big transactions,
    with the messages' indexes dropped during the load and built once after it."""
    engine = database.make_engine(f"sqlite:///{path}")
    database.upgrade(engine)
    engine.dispose()
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-400000")
    now = time.time()
    db.execute("INSERT INTO accounts (id, name, balance, created_at) VALUES (1, 'bench', "
               "1000000000, datetime('now')), (2, 'other', 1000, datetime('now'))")
    db.execute("INSERT INTO portal_users (account_id, login, password_hash, role, "
               "must_change_password, locale, disabled, created_at) VALUES (1, ?, ?, "
               "'owner', 0, 'en', 0, datetime('now'))",
               (LOGIN, passwords.hash_password(PASSWORD)))
    indexes = [index for index in t.messages.indexes] + list(t.parts.indexes)
    for index in indexes:
        db.execute(f"DROP INDEX IF EXISTS {index.name}")
    rng = random.Random(15)
    started = time.monotonic()
    batch, parts = [], []
    total = count + count // 20
    step = DAYS * 86400.0 / total
    for n in range(total):
        account = 2 if n % 21 == 20 else 1
        moment = now - DAYS * 86400 + n * step
        ms = int(moment * 1000)
        message_id = f"{ms:012x}{n:020x}"
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(moment))
        status = rng.choice(STATUSES)
        channel = rng.choice(CHANNELS)
        job = f"{ms - ms % 3_600_000:012x}{0:020x}" if channel == "job" else None
        batch.append((message_id, account, job, rng.choice(("Acme", "AcmeShop", "4812345")),
                      f"4850{rng.randrange(10**7):07d}", "PL", f"Your code is {n}. Thanks!",
                      "gsm", 1, 1, 0, 0, status, None, f"ref-{n}" if n % 3 == 0 else None,
                      stamp, stamp, channel, "token:0a1b2c3d4e5f" if channel == "api"
                      else "ann"))
        parts.append((message_id, 1, "carrier-a", f"{n:010d}", f"{n:010d}", status, stamp))
        if len(batch) == 100_000:
            _flush(db, batch, parts)
            done = n + 1
            rate = done / (time.monotonic() - started)
            print(f"  {done:>11,} rows  {rate:,.0f}/s", end="\r", flush=True)
    _flush(db, batch, parts)
    print(f"\n  rows written in {time.monotonic() - started:.0f} s; building indexes")
    started = time.monotonic()
    for index in indexes:
        columns = ", ".join(column.name for column in index.columns)
        where = index.dialect_options["sqlite"].get("where")
        clause = f" WHERE {where.compile(compile_kwargs={'literal_binds': True})}" \
            if where is not None else ""
        db.execute(f"CREATE INDEX {index.name} ON {index.table.name} ({columns}){clause}")
    db.execute("ANALYZE")
    db.commit()
    db.close()
    print(f"  indexes built in {time.monotonic() - started:.0f} s")


def _flush(db: sqlite3.Connection, batch: list[Any], parts: list[Any]) -> None:
    db.executemany(
        "INSERT INTO messages (id, account_id, job_id, sender, recipient, country, text, "
        "encoding, parts, points, refunded, concat_ref, status, smsc, ref_id, created_at, "
        "updated_at, channel, sent_by) VALUES (" + ", ".join("?" * 19) + ")", batch)
    db.executemany("INSERT INTO parts (message_id, part_no, smsc, smsc_id, smsc_key, status, "
                   "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)", parts)
    db.commit()
    batch.clear()
    parts.clear()


def stored(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT count(*) FROM messages WHERE account_id = 1").fetchone()[0]
    except sqlite3.Error:
        return 0


class Client:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, str, float]:
        headers = dict(headers or {})
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        started = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        text = response.read().decode()
        took = time.perf_counter() - started
        for cookie in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            self.cookies[name] = rest.split(";")[0]
        return response.status, text, took

    def login(self) -> None:
        _, page, _ = self.request("GET", "/portal/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        status, _, _ = self.request("POST", "/portal/login", urlencode(
            {"csrf": token, "login": LOGIN, "password": PASSWORD}).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 303, status


def pages(path: Path) -> dict[str, str]:
    """The history pages to time, with values taken from the data."""
    with sqlite3.connect(path) as db:
        middle = db.execute("SELECT id FROM messages WHERE account_id = 1 ORDER BY id "
                            "LIMIT 1 OFFSET (SELECT count(*) / 2 FROM messages WHERE "
                            "account_id = 1)").fetchone()[0]
        recipient, job, ref = db.execute(
            "SELECT recipient, (SELECT job_id FROM messages WHERE job_id IS NOT NULL AND "
            "account_id = 1 ORDER BY id DESC LIMIT 1), (SELECT ref_id FROM messages WHERE "
            "ref_id IS NOT NULL AND account_id = 1 ORDER BY id LIMIT 1 OFFSET 1000) FROM "
            "messages WHERE id = ?", (middle,)).fetchone()
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 30 * 86400))
    return {"first page": "", "status=undelivered": "status=undelivered",
            "recipient": f"recipient=%2B{recipient}", "sender=4812345": "sender=4812345",
            "channel=portal": "channel=portal", "job": f"job={job}", "ref_id": f"ref_id={ref}",
            "one day, 30 days ago": f"since={day}&until={day}",
            "middle (cursor)": f"cursor={middle}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--db", type=Path, default=Path(tempfile.gettempdir())
                        / "smppd-portal-bench.db")
    args = parser.parse_args()
    if stored(args.db) != args.count:
        args.db.unlink(missing_ok=True)
        print(f"writing {args.count:,} messages (+5% of another account) to {args.db}")
        generate(args.db, args.count)
    else:
        print(f"reusing {args.db} ({args.count:,} messages)")
    folder = Path(tempfile.mkdtemp(prefix="smppd-portal-bench-"))
    http_port = free_port()
    config = folder / "smppd.yaml"
    config.write_text(f"""
database: sqlite:///{args.db}
log_level: warning
http:
  listen: 127.0.0.1:{http_port}
smscs:
  - name: carrier-a
    host: 127.0.0.1
    port: {free_port()}
    system_id: bench
    password: bench
accounts:
  - name: bench
    token: {TOKEN}
""")
    daemon = subprocess.Popen([sys.executable, "-m", "smppd.cli", "run", "--config",
                               str(config)])
    try:
        wait_port(http_port, 120)
        client = Client(http_port)
        client.login()
        print(f"\nGET /portal/history, {args.requests} requests each (50 rows, rendered), "
              "milliseconds:")
        print(f"  {'page':<24} {'median':>7} {'p95':>7} {'max':>7}  {'bytes':>7}")
        for name, query in pages(args.db).items():
            path = "/portal/history" + (f"?{query}" if query else "")
            times, size = [], 0
            for _ in range(args.requests):
                status, text, took = client.request("GET", path)
                assert status == 200, (status, text[:300])
                times.append(took * 1000)
                size = len(text)
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            print(f"  {name:<24} {statistics.median(times):7.1f} {p95:7.1f} "
                  f"{times[-1]:7.1f}  {size:7,}")
    finally:
        daemon.terminate()
        daemon.wait(60)


if __name__ == "__main__":
    main()
