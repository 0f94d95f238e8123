"""Several `smppd run` processes on one PostgreSQL database (issue 14), each with
its own HTTP port and folder, bound to the one fake SMSC of the test process."""

from __future__ import annotations

import re
import socket
from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.process import DaemonProcess, free_port, write_config

LEASE = 3.0  # seconds: short, so a kill -9 is taken over quickly
HEARTBEAT = 0.5


def start_instances(tmp_path: Path, smsc_port: int, database: str, count: int = 2, *,
                    window: int = 20, throughput: float = 0,
                    log_level: str = "warning", first: int = 0) -> list[DaemonProcess]:
    """`count` instances, started one after the other (so the fake SMSC's connection
    serials follow the instances' order: instance i's first bind is serial i + 1).
    `first`: the first one's index (its folder's name), to start more later."""
    started = []
    for index in range(first, first + count):
        folder = tmp_path / f"instance-{index}"
        folder.mkdir()
        port = free_port()
        config = write_config(folder, smsc_port, port, window=window, throughput=throughput,
                              log_level=log_level, database=database)
        with config.open("a") as out:
            out.write(f"cluster:\n  lease: {LEASE}\n  heartbeat: {HEARTBEAT}\n")
        daemon = DaemonProcess(config, port)
        daemon.start(timeout=60)
        started.append(daemon)
    return started


def metric(daemon: DaemonProcess, name: str) -> float | None:
    """One unlabelled sample of the daemon's /metrics."""
    with socket.create_connection(("127.0.0.1", daemon.http_port), timeout=5) as conn:
        conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    found = re.search(rb"^" + name.encode() + rb" ([0-9.e+-]+)$", data, re.MULTILINE)
    return float(found.group(1)) if found else None


def texts(smsc: Any, prefix: str = "") -> Counter[str]:
    """Texts the SMSC accepted, with how many times each."""
    return Counter(text for record in list(smsc.submits) if record.message_id
                   for text in [record.pdu.fields["short_message"].decode()]
                   if text.startswith(prefix))


def by_connection(smsc: Any, prefix: str = "") -> Counter[int]:
    return Counter(record.connection for record in list(smsc.submits) if record.message_id
                   and record.pdu.fields["short_message"].decode().startswith(prefix))
