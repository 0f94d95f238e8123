"""Running `smppd run` as a real subprocess for signal and crash tests; the fake SMSC
stays in the test process (on the shared reactor) so the test sees every PDU."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.polling import until

TOKEN = "process-test-token-0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(folder: Path, smsc_port: int, http_port: int, *, window: int = 10,
                 throughput: float = 0, password: str = "secret",
                 log_level: str = "info", database: str | None = None) -> Path:
    path = folder / "smppd.yaml"
    path.write_text(f"""
database: {database or f"sqlite:///{folder / 'smppd.db'}"}
log_level: {log_level}
http:
  listen: 127.0.0.1:{http_port}
smscs:
  - name: carrier-a
    host: 127.0.0.1
    port: {smsc_port}
    system_id: acme
    password: {password}
    window: {window}
    throughput: {throughput}
    response_timeout: 10
accounts:
  - name: acme
    token: {TOKEN}
    balance: 10000000
retry:
  initial: 0.05
  max: 0.5
""")
    return path


class DaemonProcess:
    def __init__(self, config: Path, http_port: int,
                 launcher: list[str] | None = None) -> None:
        self.config = config
        self.http_port = http_port
        self.log = config.parent / "daemon.log"
        self.process: subprocess.Popen[bytes] | None = None
        # What runs `smppd run --config PATH` (a wrapper may restrict the process first).
        self.launcher = launcher or [sys.executable, "-m", "smppd.cli"]

    def start(self, timeout: float = 30.0, extra_env: dict[str, str] | None = None,
              max_files: int | None = None) -> None:
        """`max_files`: the process's limit on open files (RLIMIT_NOFILE), soft and hard."""
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(extra_env or {}))

        def limit_files() -> None:
            if max_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max_files, max_files))

        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.launcher, "run", "--config", str(self.config)],
                stdout=log, stderr=log, env=env, preexec_fn=limit_files)
        process = self.process

        def ready_or_dead() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"smppd exited {process.returncode}:\n"
                                     + self.log.read_text())
            return self.ready()

        until(ready_or_dead, timeout, "smppd to become ready", interval=0.05,
              detail=self.log.read_text)

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.http_port), timeout=1) as conn:
                conn.sendall(b"GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                return conn.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.process is not None
        self.process.wait(10)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def query(db: Path | str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of `sql` from a SQLite file (read-only) or a database URL."""
    if isinstance(db, str) and "://" in db:
        from sqlalchemy import create_engine, text

        engine = create_engine(db)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(sql))]
        finally:
            engine.dispose()
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(sql, args).fetchall()


async def post_message(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       body: bytes, headers: bytes = b"") -> tuple[bytes, bytes, bytes]:
    """One POST /v1/messages on an open connection: (status line, lower-cased
    header lines, body) of its answer. `headers` are extra CRLF-ended lines."""
    writer.write(b"POST /v1/messages HTTP/1.1\r\nHost: t\r\n"
                 b"Authorization: Bearer " + TOKEN.encode() + b"\r\n" + headers
                 + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    status = await reader.readline()
    length, head = 0, []
    while (line := await reader.readline()) not in (b"\r\n", b""):
        head.append(line.lower())
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return status, b"".join(head), await reader.readexactly(length)


async def post_all(port: int, requests: list[tuple[bytes, bytes]], connections: int,
                   answered: Any) -> None:
    """POST each (body, extra header lines) over `connections` keep-alive connections;
    `answered(index, status, head, body)` sees each answer and returns True to stop.
    A connection that fails (the daemon killed under us) just ends."""
    queue = iter(range(len(requests)))

    async def worker() -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return
        try:
            for index in queue:
                if answered(index, *await post_message(reader, writer, *requests[index])):
                    return
        except (OSError, asyncio.IncompleteReadError):
            return  # the daemon died under us: what was answered is recorded
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))


def post_many(port: int, texts: list[str], connections: int = 20,
              stop_after: int | None = None) -> dict[str, str]:
    """POST one message per text; returns text -> id for every 201 received."""
    bodies = [json.dumps({"to": f"+4850{i:07d}", "from": "Acme", "text": text}).encode()
              for i, text in enumerate(texts)]
    accepted: dict[str, str] = {}

    def answered(index: int, status: bytes, _head: bytes, answer: bytes) -> bool:
        if b" 201 " in status:
            accepted[json.loads(bodies[index])["text"]] = json.loads(answer)["id"]
        return stop_after is not None and len(accepted) >= stop_after

    asyncio.run(post_all(port, [(body, b"") for body in bodies], connections, answered))
    return accepted


def ended(pid: int) -> bool:
    """The process is gone, or a zombie no one has reaped yet (a container's init may
    not reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
