"""The HTTP listener of `smppd run` (a real process) out of file descriptors: new
clients are closed, the log says so a few times with a count, and once sockets are
free again new clients are served."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path
from typing import Any

from tests.support.process import DaemonProcess, free_port, write_config


def _healthz(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        return conn.recv(200)


def test_running_out_of_descriptors_is_logged_rate_limited_and_recovers(
        smsc: Any, tmp_path: Path) -> None:
    http_port = free_port()
    config = write_config(tmp_path, smsc.port, http_port)
    text = config.read_text().replace(
        f"  listen: 127.0.0.1:{http_port}\n",
        f"  listen: 127.0.0.1:{http_port}\n  header_timeout: 3\n  max_connections: 500\n")
    config.write_text(text)
    daemon = DaemonProcess(config, http_port)
    socks: list[socket.socket] = []
    try:
        daemon.start(max_files=64)
        for _ in range(150):  # well past 64 descriptors
            with contextlib.suppress(OSError):
                socks.append(socket.create_connection(("127.0.0.1", http_port), timeout=5))
        time.sleep(1.0)  # let the daemon accept (and close) what it can
        closed = 0
        for sock in socks:
            sock.settimeout(0.05)
            with contextlib.suppress(TimeoutError):
                try:
                    closed += sock.recv(1) == b""
                except ConnectionResetError:
                    closed += 1
        for sock in socks:
            sock.close()
        socks.clear()
        time.sleep(4)  # the header timeout frees the ones it held
        assert _healthz(http_port).startswith(b"HTTP/1.1 200 OK")
        log = daemon.log.read_text()
    finally:
        for sock in socks:
            sock.close()
        daemon.stop()
    lines = [line for line in log.splitlines() if "out of file descriptors" in line]
    assert closed >= 50, closed  # the daemon could not hold them: it closed them
    assert 1 <= len(lines) <= 3, lines  # samples, not a line per client
    assert "a new connection from 127.0.0.1 was closed unanswered" in lines[0]
    assert "http.max_connections is 500 but only 64 files may be open" in log
