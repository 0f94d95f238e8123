"""The attacks of issue 8 on the HTTP listener, rerun against `smppd run`: prints
figures, asserts nothing.

1. unread pipelining: one client writes ~7 MB of pipelined `GET /metrics` and never
   reads; the daemon's RSS is sampled for `--seconds`, and /healthz is timed from
   another connection meanwhile;
2. slowloris: N connections each send a request head a header line at a time, one
   line every 5 s, never finishing it; how many are still open over time;
3. idle sockets: N connections that send nothing; how many are still open over
   time, and whether a new client is answered while they are held;
4. token guessing: one keep-alive connection sends wrong tokens as fast as it can
   for a few seconds; answers by status, and the log lines it caused.

The fake SMSC and the daemon run as their own processes (SQLite, default `http:`
settings). `--source DIR` runs the daemon from another checkout of smppd (for
"before" figures: `git archive <commit> | tar -x -C DIR`).

    python bench/http_attacks.py [--sockets 2000] [--seconds 35] [--source DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

TOKEN = "bench-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


class Daemon:
    def __init__(self, folder: Path, source: str | None) -> None:
        self.folder = folder
        self.smsc_port, self.port = free_port(), free_port()
        config = folder / "smppd.yaml"
        config.write_text(f"""
database: sqlite:///{folder / 'smppd.db'}
log_level: info
http:
  listen: 127.0.0.1:{self.port}
smscs:
  - {{name: fake, host: 127.0.0.1, port: {self.smsc_port}, system_id: bench,
      password: bench, window: 10}}
accounts:
  - {{name: bench, token: {TOKEN}, balance: 1000}}
""")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.smsc = subprocess.Popen([sys.executable, "-m", "smppd.cli", "--log-level",
                                      "warning", "fake-smsc", "--port", str(self.smsc_port)],
                                     env=env)
        if source:  # the daemon only; run from elsewhere, or `-m` finds ./smppd first
            env["PYTHONPATH"] = source
        wait_port(self.smsc_port)
        self.log_path = folder / "daemon.log"
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "smppd.cli", "run", "--config",
                                         str(config)], env=env, stdout=self.log,
                                        stderr=self.log, cwd=folder)
        wait_port(self.port)
        time.sleep(1.0)
        self.ps = psutil.Process(self.process.pid)

    def rss(self) -> float:
        return self.ps.memory_info().rss / 2**20

    def log_lines(self) -> int:
        return len(self.log_path.read_text(errors="replace").splitlines())

    def stop(self) -> None:
        for child in (self.process, self.smsc):
            child.terminate()
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
        self.log.close()


def healthz(port: int, timeout: float = 30.0) -> tuple[str, float]:
    """(status or error, seconds) of one GET /healthz on a new connection."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            answer = conn.recv(100)
        status = answer.split(b" ")[1].decode() if answer.startswith(b"HTTP/") else \
            f"no answer ({answer!r})"
    except OSError as exc:
        status = type(exc).__name__
    return status, time.monotonic() - started


def still_open(socks: list[socket.socket]) -> int:
    """Sockets the server has not closed (EOF or reset)."""
    count = 0
    for sock in socks:
        try:
            data = sock.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            if data:
                sock.recv(65536, socket.MSG_DONTWAIT)  # an answer (408): the close follows
                data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            count += data != b""
        except BlockingIOError:
            count += 1
        except OSError:
            pass
    return count


def pipelining(daemon: Daemon, megabytes: float, seconds: float) -> None:
    request = b"GET /metrics HTTP/1.1\r\nHost: b\r\n\r\n"
    flood = request * int(megabytes * 2**20 / len(request))
    before = daemon.rss()
    attacker = socket.create_connection(("127.0.0.1", daemon.port))
    attacker.setblocking(False)
    sent, peak, worst = 0, before, 0.0
    started = time.monotonic()
    next_probe = started
    while time.monotonic() - started < seconds:
        if sent < len(flood):
            with contextlib.suppress(BlockingIOError):
                sent += attacker.send(flood[sent:sent + 256 * 1024])
        peak = max(peak, daemon.rss())
        if time.monotonic() >= next_probe:
            _, took = healthz(daemon.port)
            worst = max(worst, took)
            next_probe = time.monotonic() + 1.0
        time.sleep(0.05)
    during = daemon.rss()
    attacker.close()
    time.sleep(2.0)
    held_back = " (the rest held back by TCP: the daemon stopped reading)" \
        if sent < len(flood) else ""
    print(f"1. unread pipelining: {sent / 2**20:.1f} of {len(flood) / 2**20:.1f} MB of "
          f"GET /metrics written in {seconds:.0f} s{held_back}")
    print(f"   daemon RSS {before:.0f} MiB before, peak {peak:.0f} MiB, {during:.0f} MiB at "
          f"the end, {daemon.rss():.0f} MiB 2 s after the client left; slowest /healthz "
          f"meanwhile {worst * 1000:.0f} ms")


def slow_sockets(daemon: Daemon, count: int, slowloris: bool, watch: float) -> None:
    socks = []
    for _ in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
        except OSError:
            break
        if slowloris:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: b\r\n")
        sock.settimeout(None)  # blocking, so that MSG_DONTWAIT peeks answer at once
        socks.append(sock)
    opened = len(socks)
    started = time.monotonic()
    samples, probe = [], None
    last_line = started
    while time.monotonic() - started < watch:
        elapsed = time.monotonic() - started
        if slowloris and time.monotonic() - last_line >= 5:
            last_line = time.monotonic()
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.send(b"X-Slow: 1\r\n")
        if probe is None and elapsed >= 2:
            probe = healthz(daemon.port)
        samples.append((elapsed, still_open(socks)))
        time.sleep(1.0)
    for sock in socks:
        sock.close()
    kind = "2. slowloris" if slowloris else "3. idle sockets"
    shown = [f"{t:.0f} s: {n}" for t, n in samples if round(t) % 5 == 0 or t < 1.5]
    print(f"{kind}: {opened} opened; still open at " + ", ".join(shown))
    if probe is not None:
        print(f"   a new client meanwhile (2 s in): {probe[0]} in {probe[1] * 1000:.0f} ms")


def guessing(daemon: Daemon, seconds: float) -> None:
    lines_before = daemon.log_lines()
    conn = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    reader = conn.makefile("rb")
    counts: dict[str, int] = {}
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < seconds:
        conn.sendall(b"GET /v1/account HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer guess-%d-"
                     b"0123456789\r\n\r\n" % sent)
        sent += 1
        status = reader.readline().split(b" ")[1].decode()
        length = 0
        while (line := reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        reader.read(length)
        counts[status] = counts.get(status, 0) + 1
    conn.close()
    elapsed = time.monotonic() - started
    print(f"4. token guessing: {sent} guesses in {elapsed:.0f} s ({sent / elapsed:.0f}/s) on "
          f"one connection: " + ", ".join(f"{n} x {s}" for s, n in sorted(counts.items()))
          + f"; {daemon.log_lines() - lines_before} log lines")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--megabytes", type=float, default=7.0)
    parser.add_argument("--seconds", type=float, default=35.0)
    parser.add_argument("--watch", type=float, default=20.0,
                        help="seconds to watch slowloris and idle sockets")
    parser.add_argument("--source", help="run the daemon from this smppd source tree")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # for our own sockets
    print(f"daemon from {args.source or 'this checkout'}; open-files limit {hard}")
    if args.source:
        probe = subprocess.run([sys.executable, "-c", "import smppd; print(smppd.__file__)"],
                               env=dict(os.environ, PYTHONPATH=args.source), cwd="/",
                               capture_output=True, text=True)
        print(f"(smppd imported from {probe.stdout.strip()})")
    for attack in ("pipelining", "slowloris", "idle", "guessing"):
        folder = Path(tempfile.mkdtemp(prefix="smppd-attack-"))
        daemon = Daemon(folder, args.source)
        try:
            if attack == "pipelining":
                pipelining(daemon, args.megabytes, args.seconds)
            elif attack == "slowloris":
                slow_sockets(daemon, args.sockets, True, args.watch)
            elif attack == "idle":
                slow_sockets(daemon, args.sockets, False, args.watch)
            else:
                guessing(daemon, 5.0)
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
