"""Callbacks under load: deliveries/s to a local receiver while sending at full rate,
and a receiver that is down for a while and comes back.

Four processes share the machine: the fake SMSC, `smppd run` (SQLite, window 100,
throughput unlimited), a receiver (asyncio HTTP on 127.0.0.1, answering 204 and
appending every webhook-id to a file, so what it got survives its own restart) and
this load generator (POSTs over 50 keep-alive connections). Five phases on one
daemon:

1. baseline: an account without callbacks, `--count` messages;
2. callbacks: an account whose endpoint wants every status change (two events per
   message: submitted and delivered), `--count` messages; deliveries/s are counted
   at the receiver while the sending runs and until the outbox is empty;
3. control: the same account sends for `--down` + `--after` seconds with the receiver
   up, its events delivered as they come: the sending rate that phase 4 must not fall
   under (a callbacks account writes two outbox rows a message, and the store grows
   over a long phase, so phase 1's short run is not the yardstick for "never slowed");
4. receiver down: it is stopped, the same account sends for `--down` seconds, then
   the receiver comes back while the sending goes on for `--after` seconds: the
   deliveries/s then are the backlog and the new events together, at full sending
   rate; every event id the outbox holds must arrive, exactly once after
   deduplication, and the sending rates (down, back) are compared with phase 3 (and
   phase 1);
5. phase 1 again, once the outbox is empty: how much the sending rate drifts on its
   own on a shared machine, the noise against which the percentages are read.

Each phase also prints the daemon's own CPU per 1,000 messages (what a drain costs
the daemon shows there, whatever the machine's load) and the worker's CPU seconds.

Prints figures; asserts nothing.

    python bench/callbacks.py [--count 20000] [--down 60] [--after 30] [--concurrency 20]
                              [--py-spy FILE] [--py-spy-down FILE] [--py-spy-back FILE]
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
import threading
import time
import urllib.request
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from e2e import free_port, wait_port

PLAIN, HOOKED = "plain-token-0123456789abcdef", "hooked-token-0123456789abcdef"


def write_config(folder: Path, smsc_port: int, http_port: int, concurrency: int) -> Path:
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
  - {{name: plain, token: {PLAIN}, balance: 100000000}}
  - {{name: hooked, token: {HOOKED}, balance: 100000000}}
callbacks:
  concurrency: {concurrency}
  retry: {{initial: 1, max: 5}}
""")
    return path


# The receiver (run as its own process: python bench/callbacks.py --receiver PORT FILE) --

async def receive(port: int, ids_file: Path) -> None:
    # Each id is appended before the 204 goes out (O_APPEND, one write per event), so
    # what the receiver acknowledged is on file even if it is killed.
    out = os.open(ids_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                length, event_id = 0, b""
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.partition(b":")
                    name = name.lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"webhook-id":
                        event_id = value.strip()
                await reader.readexactly(length)
                os.write(out, event_id + b"\n")
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port, reuse_address=True)
    async with server:
        await server.serve_forever()


# The load generator -----------------------------------------------------------------

async def post(port: int, token: str, count: int | None, seconds: float | None,
               connections: int = 50) -> tuple[int, float]:
    """POST messages until `count` are sent or `seconds` pass; (accepted, seconds)."""
    started = time.perf_counter()
    deadline = started + seconds if seconds else None
    counter = iter(range(count if count is not None else 10**9))
    accepted = 0

    async def worker() -> None:
        nonlocal accepted
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for index in counter:
            if deadline is not None and time.perf_counter() > deadline:
                break
            body = json.dumps({"to": f"+4850{index % 10_000_000:07d}", "from": "Bench",
                               "text": f"Callback bench {index}", "ref_id": f"r{index}",
                               "params": {"n": str(index)}}).encode()
            writer.write(b"POST /v1/messages HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer "
                         + token.encode() + b"\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            accepted += b" 201 " in status
        writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return accepted, time.perf_counter() - started


def db_count(db: Path, sql: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(sql).fetchone()[0]


def received(ids_file: Path) -> list[str]:
    if not ids_file.exists():
        return []
    return [line for line in ids_file.read_text().splitlines() if line]


class Sampler(threading.Thread):
    """Counts what the receiver got and what the outbox holds, every half second."""

    def __init__(self, ids_file: Path, db: Path) -> None:
        super().__init__(daemon=True)
        self.ids_file, self.db = ids_file, db
        self.samples: list[tuple[float, int, int]] = []  # (time, received, pending)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            got = self.ids_file.read_bytes().count(b"\n") if self.ids_file.exists() else 0
            pending = db_count(self.db, "SELECT count(*) FROM callback_events WHERE "
                                        "state = 'pending'")
            self.samples.append((time.perf_counter(), got, pending))
            self.done.wait(0.5)

    def stop(self) -> None:
        self.done.set()
        self.join(10)

    def delivered(self) -> int:
        return self.samples[-1][1] - self.samples[0][1] if self.samples else 0

    def best_rate(self, window: float = 5.0) -> tuple[float, float]:
        best = 0.0
        for i, (t0, got0, _) in enumerate(self.samples):
            for t1, got1, _ in self.samples[i + 1:]:
                if t1 - t0 >= window:
                    best = max(best, (got1 - got0) / (t1 - t0))
                    break
        return best, window

    def backlog_gone(self) -> str:
        """When the pending events first fell to what the sending keeps in flight."""
        if not self.samples:
            return "not sampled"
        start = self.samples[0][0]
        for at, _, pending in self.samples:
            if pending < 1000:
                return f"down to {pending} pending after {at - start:.1f} s"
        return f"still {self.samples[-1][2]} pending when the sending stopped"


def wal(db: Path) -> str:
    """The WAL's size: it only grows (to its largest since the start) when readers
    kept the checkpoints from starting it again from its beginning."""
    path = db.with_name(db.name + "-wal")
    return f"WAL {path.stat().st_size / 1e6:.0f} MB" if path.exists() else "no WAL"


def wait_settled(db: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    sql = "SELECT count(*) FROM messages WHERE status IN ('queued', 'submitted')"
    while db_count(db, sql) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left := db_count(db, sql):  # e.g. receipts refused in a store stall: say so
        print(f"   ({left} messages still without a final status after {timeout:.0f} s; "
              f"see daemon.log)")


def wait_drained(db: Path, timeout: float = 900) -> float:
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while db_count(db, "SELECT count(*) FROM callback_events WHERE state = 'pending'") and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    return time.perf_counter() - started


def start_receiver(port: int, ids_file: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, __file__, "--receiver", str(port),
                                str(ids_file)])
    wait_port(port)
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--down", type=float, default=60.0,
                        help="seconds the receiver is down while sending (phase 4)")
    parser.add_argument("--after", type=float, default=30.0,
                        help="seconds the sending goes on once the receiver is back")
    parser.add_argument("--concurrency", type=int, default=20,
                        help="callbacks.concurrency: requests at once per endpoint")
    parser.add_argument("--py-spy", metavar="FILE",
                        help="record the daemon with py-spy during phase 2 into FILE")
    parser.add_argument("--py-spy-down", metavar="FILE",
                        help="...and while the receiver is down in phase 4")
    parser.add_argument("--py-spy-back", metavar="FILE",
                        help="...and while the receiver is back in phase 4")
    parser.add_argument("--receiver", nargs=2, metavar=("PORT", "FILE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        asyncio.run(receive(int(args.receiver[0]), Path(args.receiver[1])))
        return
    folder = Path(tempfile.mkdtemp(prefix="smppd-bench-callbacks-"))
    smsc_port, http_port, receiver_port = free_port(), free_port(), free_port()
    config = write_config(folder, smsc_port, http_port, args.concurrency)
    db, ids_file = folder / "smppd.db", folder / "received.txt"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    smsc = subprocess.Popen([sys.executable, "-m", "smppd.cli", "--log-level", "warning",
                             "fake-smsc", "--port", str(smsc_port)], env=env)
    wait_port(smsc_port)
    log = (folder / "daemon.log").open("w")
    daemon = subprocess.Popen([sys.executable, "-m", "smppd.cli", "run", "--config",
                               str(config)], env=env, stderr=log)
    receiver = start_receiver(receiver_port, ids_file)
    try:
        wait_port(http_port)
        time.sleep(0.5)
        request = urllib.request.Request(
            f"http://127.0.0.1:{http_port}/v1/callbacks", method="POST",
            data=json.dumps({"url": f"http://127.0.0.1:{receiver_port}/hook",
                             "events": ["status"]}).encode(),
            headers={"Authorization": f"Bearer {HOOKED}"})
        urllib.request.urlopen(request).read()
        process = psutil.Process(daemon.pid)

        def split_cpu() -> tuple[float, float]:
            """CPU seconds so far: the daemon's own, and its callbacks worker's (a
            child process; a worker restarted since is counted from its start)."""
            def used(each: psutil.Process) -> float:
                try:
                    times = each.cpu_times()
                except psutil.NoSuchProcess:
                    return 0.0
                return times.user + times.system
            children = process.children(recursive=True)
            writer = [child for child in children if _is_writer(child)]  # the daemon's own
            return (used(process) + sum(used(child) for child in writer),
                    sum(used(child) for child in children if child not in writer))

        def cpu() -> float:
            """The daemon's and its callbacks worker's."""
            return sum(split_cpu())

        def shares(before: tuple[float, float], sent: int) -> str:
            """The daemon's own CPU per 1,000 messages (what the sending pays: the
            callbacks' cost to the daemon shows here), and the worker's CPU."""
            daemon_now, worker_now = split_cpu()
            return (f"daemon CPU {(daemon_now - before[0]) / max(sent, 1) * 1000:.3f} s per "
                    f"1,000 messages, worker {worker_now - before[1]:.1f} CPU s")

        def spy_on(path: str) -> subprocess.Popen[bytes]:
            spy = subprocess.Popen(["py-spy", "record", "-p", str(daemon.pid), "-o", path,
                                    "--format", "raw", "-r", "200", "--threads",
                                    "--subprocesses"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
            time.sleep(1.0)
            return spy

        # 1. Sending without callbacks.
        cpu_before = cpu()
        split_before = split_cpu()
        sent, took = asyncio.run(post(http_port, PLAIN, args.count, None))
        wait_settled(db)
        baseline = sent / took
        plain_cpu = (cpu() - cpu_before) / sent * 1000
        print(f"1. no callbacks:   {sent} messages accepted at {baseline:.0f} msg/s; "
              f"{shares(split_before, sent)}; {wal(db)}")

        # 2. Sending with callbacks to a live receiver.
        before = len(received(ids_file))
        spy = spy_on(args.py_spy) if args.py_spy else None
        cpu_before = cpu()
        started = time.perf_counter()
        sent, took = asyncio.run(post(http_port, HOOKED, args.count, None))
        during = len(received(ids_file)) - before
        wait_settled(db)
        drain = wait_drained(db)
        total = len(received(ids_file)) - before
        elapsed = time.perf_counter() - started
        hooked_cpu = cpu() - cpu_before
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
        extra = hooked_cpu - plain_cpu * sent / 1000
        print(f"2. callbacks:      {sent} messages accepted at {sent / took:.0f} msg/s; "
              f"{during} deliveries while sending ({during / took:.0f}/s), {total} in all "
              f"({total / elapsed:.0f}/s over {elapsed:.1f} s, outbox empty "
              f"{drain:.1f} s after the last final status)")
        print(f"   daemon CPU {hooked_cpu / sent * 1000:.3f} s per 1,000 messages; the "
              f"callbacks' share {extra / max(total, 1) * 1000:.3f} s per 1,000 deliveries "
              f"(= {max(total, 1) / max(extra, 0.001):.0f} deliveries per CPU second)")

        # 3. Control: phase 4's sending with the receiver up all along.
        wait_settled(db)
        split_before = split_cpu()
        sent, took = asyncio.run(post(http_port, HOOKED, None, args.down + args.after))
        control = sent / took
        print(f"3. control:        {sent} messages accepted in {took:.0f} s at "
              f"{control:.0f} msg/s ({control / baseline:.0%} of phase 1), the receiver "
              f"up; {shares(split_before, sent)}; {wal(db)}")
        wait_settled(db)
        wait_drained(db)

        # 4. The receiver down while sending, then back while the sending goes on.
        receiver.terminate()
        receiver.wait(10)
        before_events = db_count(db, "SELECT count(*) FROM callback_events")
        spy = spy_on(args.py_spy_down) if args.py_spy_down else None
        # Sampled as the next part is, so that the two differ only by the receiver.
        down_sampler = Sampler(ids_file, db)
        down_sampler.start()
        split_before = split_cpu()
        sent, took = asyncio.run(post(http_port, HOOKED, None, args.down))
        down_shares = shares(split_before, sent)
        down_sampler.stop()
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
        held = db_count(db, "SELECT count(*) FROM callback_events WHERE state = 'pending'")
        print(f"4. receiver down:  {sent} messages accepted in {took:.0f} s at "
              f"{sent / took:.0f} msg/s ({sent / took / control:.0%} of phase 3, "
              f"{sent / took / baseline:.0%} of phase 1); "
              f"{held} events waiting in the outbox when it comes back; "
              f"{down_shares}; {wal(db)}")
        spy = spy_on(args.py_spy_back) if args.py_spy_back else None
        receiver = start_receiver(receiver_port, ids_file)
        sampler = Sampler(ids_file, db)
        sampler.start()
        split_before = split_cpu()
        sent, took = asyncio.run(post(http_port, HOOKED, None, args.after))
        sampler.stop()
        back_shares = shares(split_before, sent)
        try:  # the customer's side, here on the same 2 cores (at the same priority)
            times = psutil.Process(receiver.pid).cpu_times()
            back_shares += f", receiver {times.user + times.system:.1f} CPU s"
        except psutil.NoSuchProcess:
            pass
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
        rate, window = sampler.best_rate()
        print(f"   receiver back:  {sent} messages accepted in the next {took:.0f} s at "
              f"{sent / took:.0f} msg/s ({sent / took / control:.0%} of phase 3, "
              f"{sent / took / baseline:.0%} of phase 1); deliveries while sending "
              f"{sampler.delivered() / took:.0f}/s on average, "
              f"{rate:.0f}/s over the best {window:.0f} s; backlog "
              f"{sampler.backlog_gone()}; {back_shares}; {wal(db)}")
        wait_settled(db)
        drain = wait_drained(db)
        expected = {row[0] for row in sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute(
            "SELECT id FROM callback_events")}
        states = dict(sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute(
            "SELECT state, count(*) FROM callback_events GROUP BY state").fetchall())
        got = received(ids_file)
        unique = set(got)
        print(f"   outbox empty {drain:.1f} s after the sending stopped; "
              f"{len(expected) - before_events} events in phase 4, {len(expected)} in all, "
              f"states {states}")
        print(f"   exactly once after dedupe: {unique == expected} (missing "
              f"{len(expected - unique)}, unexpected {len(unique - expected)}, "
              f"{len(got) - len(unique)} duplicate deliveries dropped by event id)")
        # 5. Phase 1 again: how far the sending rate drifts on its own between the
        # phases (a shared machine), the noise to read the percentages against.
        split_before = split_cpu()
        sent, took = asyncio.run(post(http_port, PLAIN, args.count, None))
        wait_settled(db)
        print(f"5. phase 1 again:  {sent} messages accepted at {sent / took:.0f} msg/s "
              f"({sent / took / baseline:.0%} of phase 1); {shares(split_before, sent)}")
        print(f"   load average now {os.getloadavg()[0]:.2f} (2 cores, shared)")
    finally:
        receiver.terminate()
        daemon.terminate()
        daemon.wait(60)
        smsc.terminate()
        smsc.wait(10)
        log.close()
    print(f"(files in {folder})")


def _is_writer(process: psutil.Process) -> bool:
    """The daemon's writer process (smppd.store.child), not a callbacks worker."""
    try:
        return "smppd.store.child" in " ".join(process.cmdline())
    except psutil.Error:
        return False


if __name__ == "__main__":
    main()

