"""The daemon as a process: kill -9 mid-burst and restart, SIGTERM drain, SIGHUP
reload. `smppd run` runs as a subprocess; the fake SMSC runs in the test process."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from smppd import status as st
from smppd.status import Status
from smppd.store.child import EXIT_CHILD_GONE
from tests.conftest import wait_for
from tests.support.polling import until
from tests.support.process import (
    DaemonProcess,
    ended,
    free_port,
    post_many,
    query,
    write_config,
)


def _submitted_texts(smsc: Any) -> Counter[str]:
    return Counter(record.pdu.fields["short_message"].decode("latin-1")
                   for record in list(smsc.submits))


def _wait_db(db: Path, sql: str, predicate: Any, timeout: float, what: str,
             log: Path) -> Any:
    return until(lambda: (lambda rows: rows if predicate(rows) else None)(query(db, sql)),
                 timeout, what, interval=0.1, detail=lambda: log.read_text()[-3000:])


def _writer_process(daemon: DaemonProcess) -> int:
    """The pid of the daemon's writer process (smppd.store.child)."""
    assert daemon.process is not None
    for task in Path(f"/proc/{daemon.process.pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"smppd.store.child" in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
    raise AssertionError("the daemon has no writer process")




@pytest.mark.parametrize("victim", ["daemon", "writer process"])
def test_kill_9_mid_burst_then_restart_accounts_for_every_message(
        smsc: Any, tmp_path: Path, victim: str) -> None:
    """Either process killed: the daemon itself, or its writer process (smppd.store.child),
    after which the daemon exits at once with EX_SOFTWARE (70) rather than guess what
    its last batch came to, so the restart's recovery is the same."""
    window = 50
    smsc.behaviour.keep_unanswered = True  # receipts in flight at the kill come again
    http_port = free_port()
    config = write_config(tmp_path, smsc.port, http_port, window=window, log_level="warning")
    db = tmp_path / "smppd.db"
    daemon = DaemonProcess(config, http_port)
    restarted = DaemonProcess(config, http_port)
    texts = [f"kill test {i}" for i in range(10_000)]
    accepted: dict[str, str] = {}
    sender = threading.Thread(target=lambda: accepted.update(post_many(http_port, texts)))
    try:
        daemon.start()
        sender.start()
        try:
            wait_for(lambda: len(smsc.submits) >= 2000, timeout=60, what="the burst under way")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{daemon.log.read_text()[-3000:]}") from None
        if victim == "daemon":
            writer = _writer_process(daemon)
            daemon.kill()  # SIGKILL: no drain, no unbind, whatever was in memory is gone
            until(lambda: ended(writer), 10, "the writer process to die with the daemon",
                  interval=0.05)
        else:
            os.kill(_writer_process(daemon), signal.SIGKILL)
            assert daemon.wait(30) == EXIT_CHILD_GONE
            assert "the writer process ended (killed by signal 9)" in daemon.log.read_text()
        sender.join(60)
        submitted_at_kill = len(smsc.submits)
        restarted.start()
        _wait_db(db, "SELECT count(*) FROM messages WHERE status IN ('queued', 'submitted')",
                 lambda rows: rows[0][0] == 0, 60, "every message settled after restart",
                 restarted.log)
    finally:
        daemon.stop()
        restarted.stop()
    stored = {text: (message_id, status, points)
              for message_id, text, status, points in
              query(db, "SELECT id, text, status, points - refunded FROM messages")}
    # Nothing answered 201 is lost, and it is the same message (same id).
    missing = [text for text in accepted if text not in stored]
    assert not missing, f"{len(missing)} accepted messages lost, e.g. {missing[:3]}"
    assert all(stored[text][0] == message_id for text, message_id in accepted.items())
    statuses = Counter(status for _, status, _ in stored.values())
    assert set(statuses) <= st.FINAL | {Status.UNKNOWN}, statuses
    # Duplicates at the SMSC: only what was sent without a committed outcome.
    sent = _submitted_texts(smsc)
    duplicates = sum(count - 1 for count in sent.values() if count > 1)
    print(f"\nkill -9: {len(accepted)} accepted before the kill, {len(stored)} stored, "
          f"{submitted_at_kill} submits before the kill, statuses {dict(statuses)}, "
          f"{duplicates} duplicate submits (bound: window {window})")
    assert duplicates <= window
    assert set(sent) == set(stored), "every stored message reached the SMSC, nothing else did"
    # Charged once per message, whatever happened.
    balance = query(db, "SELECT balance FROM accounts WHERE name = 'acme'")[0][0]
    assert balance == 10_000_000 - sum(points for _, _, points in stored.values())


def test_sigterm_drains_in_flight_work_and_exits_0(smsc: Any, tmp_path: Path) -> None:
    smsc.behaviour.response_delay = 0.5  # responses still on their way at SIGTERM
    http_port = free_port()
    config = write_config(tmp_path, smsc.port, http_port, window=50)
    daemon = DaemonProcess(config, http_port)
    daemon.start()
    try:
        accepted = post_many(http_port, [f"drain {i}" for i in range(30)], connections=5)
        assert len(accepted) == 30
        wait_for(lambda: len(smsc.received) >= 31, what="all 30 submits at the SMSC")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        daemon.stop()
    statuses = Counter(status for (status,) in
                       query(tmp_path / "smppd.db", "SELECT status FROM messages"))
    assert set(statuses) <= {Status.SUBMITTED, Status.DELIVERED}, statuses  # none lost in flight
    assert sum(statuses.values()) == 30
    assert any(pdu.command == "unbind" for pdu in smsc.received)
    log = daemon.log.read_text()
    assert "smppd stopped" in log and "Traceback" not in log


def test_sighup_reloads_throughput_and_credentials(smsc: Any, tmp_path: Path) -> None:
    http_port = free_port()
    config = write_config(tmp_path, smsc.port, http_port)
    daemon = DaemonProcess(config, http_port)
    daemon.start()
    try:
        binds = len(smsc.binds)
        write_config(tmp_path, smsc.port, http_port, throughput=5, log_level="debug")
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: "smsc carrier-a: updated, binds kept" in daemon.log.read_text(),
                 what="throughput reloaded")
        assert len(smsc.binds) == binds  # the bind did not drop
        smsc.behaviour.credentials = {"acme": "newpass"}
        write_config(tmp_path, smsc.port, http_port, password="newpass")
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: len(smsc.binds) > binds and smsc.binds[-1][2] == 0,
                 what="a new bind with the new password")
        config.write_text("smscs: [\n")  # a broken file is refused, the daemon goes on
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in daemon.log.read_text(), what="refusal logged")
        assert daemon.ready()
        assert post_many(http_port, ["after reload"]) != {}
    finally:
        daemon.stop()
    assert "newpass" not in daemon.log.read_text()  # secrets are never logged


def test_systemd_notifications_ready_watchdog_stopping(smsc: Any, tmp_path: Path) -> None:
    """Type=notify: READY=1 once serving, WATCHDOG=1 from the reactor at half the
    WatchdogSec, STOPPING=1 on SIGTERM."""
    import socket

    path = str(tmp_path / "notify.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    receiver.settimeout(10)
    http_port = free_port()
    daemon = DaemonProcess(write_config(tmp_path, smsc.port, http_port), http_port)
    messages: list[str] = []
    try:
        daemon.start(extra_env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
        assert daemon.process is not None
        while not any(m.startswith("WATCHDOG=1") for m in messages):
            messages.append(receiver.recv(4096).decode())
        daemon.signal(signal.SIGTERM)
        while not any("STOPPING=1" in m for m in messages):
            messages.append(receiver.recv(4096).decode())
        assert daemon.wait(30) == 0
    finally:
        daemon.stop()
        receiver.close()
    assert messages[0].startswith("READY=1")
