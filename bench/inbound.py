"""Inbound: (a) MO votes end to end, (b) poll statistics over a million votes.

(a) The fake SMSC runs in this process, the daemon (`smppd run`, SQLite, window
100) in its own. A shared number has the prefix VOTE reserved and a poll on it.
The SMSC sends COUNT votes ("vote 1".."vote 4", each from its own handset) as fast
as the daemon reads them; every vote is routed by prefix, matched to its option,
counted, and answered with a reply queued (charged) in the vote's own transaction.
The clock runs from the first deliver_sm to the COUNT-th reply's submit_sm at the
SMSC. Figures: MO/s, the daemon's CPU seconds per 1,000 MO, its peak RSS.

(b) A poll with 1,000,000 votes written straight into a fresh SQLite file (and
PostgreSQL with --postgres URL; its public schema is dropped and re-created), then
GET /v1/polls/{id}/stats's query timed (smppd.store.inbound_queries.poll_stats).

Prints figures; asserts nothing.

    python bench/inbound.py [--count 20000] [--votes 1000000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.e2e import free_port, until, wait_port
from bench.procstat import Tree

TOKEN = "bench-token-0123456789abcdef"
SHARED = "48500600701"


def write_config(folder: Path, smsc_port: int, http_port: int) -> Path:
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
    window: 100
    throughput: 0
accounts:
  - name: bench
    token: {TOKEN}
    balance: 100000000
inbound_numbers:
  - {{number: "+{SHARED}", kind: shared}}
inbound:
  auto_replies_per_hour: 1000
""")
    return path


def api(port: int, method: str, path: str, body: Any) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(), method=method,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def store_batches(port: int) -> str:
    """The writer's batches and operations so far, from /metrics: a flood's cost per
    MO depends mostly on how many MO share one transaction."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        lines = response.read().decode().splitlines()
    values = {}
    for line in lines:
        name, _, value = line.partition(" ")
        if name in ("smppd_store_batch_seconds_count", "smppd_store_operations_total",
                    "smppd_store_batch_seconds_sum"):
            values[name] = float(value)
    batches = values.get("smppd_store_batch_seconds_count", 0) or 1
    return (f"{batches:,.0f} store batches, "
            f"{values.get('smppd_store_operations_total', 0) / batches:.1f} operations and "
            f"{values.get('smppd_store_batch_seconds_sum', 0) / batches * 1000:.1f} ms each")


def votes_end_to_end(count: int, py_spy: str | None = None) -> None:
    from smppd.fake_smsc import Behaviour, FakeSmsc
    from twisted.internet import reactor

    # An MO refused while the store is stalled is retried by the SMSC, as a real one does.
    smsc = FakeSmsc(Behaviour(receipts=False, redeliver_after=0.5))
    smsc_port = smsc.listen().getHost().port
    thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False},
                              daemon=True)
    thread.start()
    http_port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        config = write_config(Path(folder), smsc_port, http_port)
        daemon = subprocess.Popen([sys.executable, "-m", "smppd.cli", "run", "--config",
                                   str(config)])
        try:
            wait_port(http_port)
            until(lambda: smsc.bound_connections, 30, "the daemon bound", interval=0.05)
            api(http_port, "POST", "/v1/inbound/numbers", {"number": "+" + SHARED,
                                                           "prefix": "VOTE"})
            now = time.time()
            api(http_port, "POST", "/v1/polls", {
                "name": "bench", "number": "+" + SHARED, "prefix": "VOTE",
                "starts_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60)),
                "ends_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600)),
                "from": "Bench", "options": [{"keyword": str(n)} for n in range(1, 5)],
                "replies": {"default": "Thanks for voting {keyword}!"}})
            spy = None
            if py_spy:
                spy = subprocess.Popen(["py-spy", "record", "-p", str(daemon.pid), "-o", py_spy,
                                        "--format", "raw", "-r", "250", "--threads"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)
            process = Tree(daemon.pid)  # with its writer process
            cpu_before = sum(process.cpu_times()[:2])
            system_before = process.cpu_times()[1]
            # This process is the fake SMSC: it shares the CPU with the daemon, so its
            # own cost per MO says whether it, not the daemon, sets the pace.
            own = psutil.Process()
            own_before = sum(own.cpu_times()[:2])
            started = time.perf_counter()
            peak = process.memory_info().rss

            def inject() -> None:
                for n in range(count):
                    smsc.inject_mo(f"48600{n:06d}", SHARED, f"vote {n % 4 + 1}")

            reactor.callFromThread(inject)

            def replied() -> bool:
                nonlocal peak
                peak = max(peak, process.memory_info().rss)
                return len(smsc.submits) >= count

            until(replied, 600, f"{count} replies", interval=0.01)
            elapsed = time.perf_counter() - started
            cpu = sum(process.cpu_times()[:2]) - cpu_before
            system = process.cpu_times()[1] - system_before
            smsc_cpu = sum(own.cpu_times()[:2]) - own_before
            if spy is not None:
                spy.send_signal(2)  # SIGINT: py-spy writes its file and ends
                spy.wait(30)
            batches = store_batches(http_port)
        finally:
            daemon.terminate()
            daemon.wait(30)
    reactor.callFromThread(reactor.stop)
    acked = sum(1 for status in smsc.deliver_responses.values() if status == 0)
    print(f"(a) {count} MO votes -> {len(smsc.submits)} replies submitted in {elapsed:.2f} s: "
          f"{count / elapsed:,.0f} MO/s end to end; daemon CPU {cpu / count * 1000:.3f} s "
          f"per 1,000 MO ({system / count * 1000:.3f} s of it in the kernel; fake SMSC "
          f"{smsc_cpu / count * 1000:.3f} s); peak RSS "
          f"{peak / 2**20:.0f} MiB; {acked} deliver_sm acked, "
          f"{smsc.redelivered} refused (store stalled) and sent again by the SMSC; "
          f"load average {' '.join(f'{x:.2f}' for x in psutil.getloadavg())}; {batches}")


def stats_over_votes(votes: int, postgres: str | None) -> None:
    from sqlalchemy import text

    from smppd.store import database
    from smppd.store import inbound_queries as iq

    urls = []
    folder = tempfile.TemporaryDirectory()
    urls.append(f"sqlite:///{Path(folder.name) / 'votes.db'}")
    if postgres:
        urls.append(postgres)
    for url in urls:
        engine = database.make_engine(url)
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        database.upgrade(engine)
        poll_id = "0" * 31 + "1"
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO accounts (name, balance, created_at) VALUES "
                              "('bench', 0, CURRENT_TIMESTAMP)"))
            conn.execute(text(
                "INSERT INTO polls (id, account_id, name, number, prefix_key, starts_at, "
                "ends_at, sender, replies, limit_votes, created_at) VALUES (:id, 1, 'bench', "
                "'4600', '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'Bench', '{}', 0, "
                "CURRENT_TIMESTAMP)"), {"id": poll_id})
            for n in range(1, 5):
                conn.execute(text("INSERT INTO poll_options VALUES (:p, :n, :k, :k, NULL)"),
                             {"p": poll_id, "n": n, "k": str(n)})
            # Generated in SQL: 80% accepted over 4 options, the rest refused.
            series = ("WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s "
                      f"WHERE n < {votes}) SELECT n FROM s") if engine.dialect.name == "sqlite" \
                else f"SELECT n FROM generate_series(1, {votes}) AS n"
            vote_id = "substr('00000000000000000000000000000000' || n, -32, 32)" \
                if engine.dialect.name == "sqlite" else "lpad(n::text, 32, '0')"
            conn.execute(text(
                "INSERT INTO poll_votes (id, poll_id, inbound_id, sender, option_no, answer, "
                f"outcome, received_at) SELECT {vote_id}, :p, n, "
                "'48600' || n, CASE WHEN n % 5 = 0 THEN NULL ELSE n % 4 + 1 END, 'x', "
                "CASE WHEN n % 5 = 0 THEN (CASE WHEN n % 2 = 0 THEN 'over_limit' "
                "ELSE 'unknown_option' END) ELSE 'accepted' END, CURRENT_TIMESTAMP "
                f"FROM ({series}) AS series"), {"p": poll_id})
        loaded = time.perf_counter() - started
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.execute(text("ANALYZE poll_votes"))
                conn.commit()
        timings = []
        for _ in range(3):
            with engine.connect() as conn:
                begin = time.perf_counter()
                stats = iq.poll_stats(conn, 1, poll_id, None, 100)
                timings.append(time.perf_counter() - begin)
        assert stats is not None
        print(f"(b) {engine.dialect.name}: {stats['total']:,} votes ({stats['accepted']:,} "
              f"accepted) loaded in {loaded:.1f} s; stats in "
              + ", ".join(f"{t * 1000:.0f} ms" for t in timings) + " (3 runs)")
        engine.dispose()
    folder.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--postgres", metavar="URL")
    parser.add_argument("--only", choices=("votes", "stats"))
    parser.add_argument("--py-spy", metavar="FILE",
                        help="record the daemon with py-spy (collapsed stacks) into FILE")
    args = parser.parse_args()
    if args.only != "stats":
        votes_end_to_end(args.count, args.py_spy)
    if args.only != "votes":
        stats_over_votes(args.votes, args.postgres)


if __name__ == "__main__":
    main()
