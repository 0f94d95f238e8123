"""sd_notify runs on the reactor: it must never wait for systemd."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

from smppd.daemon import systemd


def test_a_reader_that_falls_behind_drops_pings_instead_of_blocking_the_reactor(
        tmp_path: Path, monkeypatch: Any) -> None:
    """A datagram socket queues ten; a plain send then blocks until the reader reads.
    The reactor would stop with it (found when a SIGTERM drain hung behind WATCHDOG=1
    pings nobody read)."""
    path = str(tmp_path / "notify.sock")
    reader = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    reader.bind(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    sent: list[bool] = []
    pinger = threading.Thread(target=lambda: sent.extend(
        systemd.notify("WATCHDOG=1") for _ in range(50)), daemon=True)
    try:
        pinger.start()
        pinger.join(10)
        assert not pinger.is_alive(), "notify() blocked on a full socket"
        assert sent[0] is True and sent[-1] is False  # queued while there was room
        # A state change waits a little (it happens once), then gives up too.
        stopping: list[bool] = []
        waiter = threading.Thread(target=lambda: stopping.append(
            systemd.notify("STOPPING=1")), daemon=True)
        waiter.start()
        waiter.join(10)
        assert stopping == [False]
        reader.settimeout(1)
        assert reader.recv(64) == b"WATCHDOG=1"
    finally:
        reader.close()


def test_without_systemd_every_call_is_a_no_op(monkeypatch: Any) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
