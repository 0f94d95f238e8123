"""Admin commands as an operator runs them: --version, status (daemon up and down),
account list/topup (a ledger entry, safe next to a running daemon), db current."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from smppd import cli
from smppd.store import database
from tests.support.process import TOKEN, DaemonProcess, free_port, post_many, query, write_config


def _config(folder: Path, http_port: int, smsc_port: int = 1) -> Path:
    """The process tests' configuration (account acme) plus a small account beta."""
    path = write_config(folder, smsc_port, http_port)
    path.write_text(path.read_text().replace("retry:", BETA + "retry:"))
    return path


BETA = """  - name: beta
    token: beta-token-0123456789abc
    balance: 5
"""


def _seed(path: Path) -> None:
    """The schema and the accounts, as a first start of the daemon leaves them."""
    from smppd import config
    from smppd.store import queries

    settings = config.load(path)
    engine = database.make_engine(settings.database)
    database.upgrade(engine)
    with engine.begin() as conn:
        queries.seed_accounts(conn, [(a.name, a.balance) for a in settings.accounts])
    engine.dispose()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"smppd {version('smppd')}"


def test_db_current(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path, free_port())
    assert cli.main(["db", "current", "--config", str(path)]) == 1
    assert "no smppd schema" in capsys.readouterr().out
    _seed(path)
    assert cli.main(["db", "current", "--config", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{database.head_revision()} (head: up to date)"
    url = f"sqlite:///{tmp_path / 'smppd.db'}"
    assert cli.main(["db", "current", "--url", url]) == 0


def test_account_list_and_topup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path, free_port())
    assert cli.main(["account", "list", "--config", str(path)]) == 1
    assert "smppd db upgrade" in capsys.readouterr().err  # no schema yet: says what to do
    _seed(path)
    assert cli.main(["account", "topup", "beta", "250", "--note", "invoice 17",
                     "--config", str(path)]) == 0
    assert capsys.readouterr().out.strip() == \
        "beta: +250 points recorded in the ledger, balance now 255"
    assert cli.main(["account", "list", "--config", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ACCOUNT", "BALANCE", "LAST", "LEDGER", "ENTRY", "CONFIGURED"]
    assert lines[1].split()[:2] == ["acme", "10000000"] and lines[1].split()[2] == "-"
    assert lines[2].split()[:2] == ["beta", "255"] and lines[2].endswith("yes")
    (entry,) = query(tmp_path / "smppd.db", "SELECT kind, points, balance_after, note, "
                     "created_by FROM ledger_entries")
    assert entry[:4] == ("topup", 250, 255, "invoice 17") and entry[4].startswith("cli:")


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["nobody", "10"], 1, "no account named 'nobody' in the database (there are: acme, beta)"),
    (["acme", "0"], 2, "POINTS must be a whole number above 0"),
    (["acme", "-5"], 2, "POINTS must be a whole number above 0"),
])
def test_topup_mistakes(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                        code: int, message: str) -> None:
    path = _config(tmp_path, free_port())
    _seed(path)
    assert cli.main(["account", "topup", *argv, "--config", str(path)]) == code
    assert message in capsys.readouterr().err
    assert query(tmp_path / "smppd.db", "SELECT count(*) FROM ledger_entries") == [(0,)]


def test_status_when_the_daemon_is_down(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    path = _config(tmp_path, port)
    _seed(path)
    assert cli.main(["status", "--config", str(path)]) == 3
    out = capsys.readouterr().out
    assert f"daemon:    NOT RUNNING (no answer at http://127.0.0.1:{port}/metrics" in out
    assert "messages:  0 stored" in out and "jobs:      0 running" in out
    assert "carrier-a            unknown (the daemon is not running)" in out


def test_status_of_a_running_daemon(start_daemon, smsc: Any, tmp_path: Path,  # type: ignore[no-untyped-def]
                                    capsys: pytest.CaptureFixture[str]) -> None:
    running = start_daemon(extra_smscs=[{"name": "carrier-b", "host": "127.0.0.1",
                                         "port": free_port(), "system_id": "x",
                                         "password": "y"}])
    assert running.client.send()[0] == 201
    running.client.wait_status(running.client.request("GET", "/v1/messages")[1]
                               ["messages"][0]["id"], "delivered")
    folder = tmp_path / "status"
    folder.mkdir()
    path = folder / "smppd.yaml"
    path.write_text(f"""
database: sqlite:///{tmp_path / 'smppd.db'}
http:
  listen: 127.0.0.1:{running.daemon.http_port}
smscs:
  - {{name: carrier-a, host: 127.0.0.1, port: {smsc.port}, system_id: acme, password: s}}
  - {{name: carrier-b, host: 127.0.0.1, port: 1, system_id: acme, password: s}}
  - {{name: carrier-c, host: 127.0.0.1, port: 1, system_id: acme, password: s}}
accounts:
  - {{name: acme, token: {TOKEN}}}
""")
    assert cli.main(["status", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    print(out)
    assert "daemon:    running" in out
    assert "messages:  1 stored: 0 queued, 0 submitted, 0 unknown, 1 delivered" in out
    assert "carrier-a            bound     window 0/20  submit_sm 1" in out
    assert "carrier-b            NOT BOUND (" in out
    assert "carrier-c            not in the running daemon" in out
    assert "config:    applied" in out


def test_topup_next_to_a_running_daemon_loses_nothing(smsc: Any, tmp_path: Path) -> None:
    """The daemon charges every accepted message with `balance = balance - ?` in its
    writer's transactions while `smppd account topup` runs as other processes: every
    point is accounted for afterwards."""
    http_port = free_port()
    config = write_config(tmp_path, smsc.port, http_port, log_level="warning")
    daemon = DaemonProcess(config, http_port)
    db = tmp_path / "smppd.db"
    (initial,) = (10_000_000,)
    topups: list[subprocess.CompletedProcess[str]] = []

    def top_up() -> None:
        for _ in range(5):
            topups.append(subprocess.run(
                [sys.executable, "-m", "smppd.cli", "account", "topup", "acme", "1000",
                 "--config", str(config), "--note", "concurrent"],
                capture_output=True, text=True, timeout=60))

    try:
        daemon.start()
        # Messages before, during and after the top-ups, so they surely overlap.
        accepted = post_many(http_port, [f"charge {i}" for i in range(300)], connections=10)
        worker = threading.Thread(target=top_up)
        worker.start()
        while worker.is_alive() and len(accepted) < 60_000:
            accepted.update(post_many(http_port, [f"charge {len(accepted) + i}"
                                                  for i in range(300)], connections=10))
        worker.join(120)
        accepted.update(post_many(http_port, [f"charge {len(accepted) + i}" for i in range(300)],
                                  connections=10))
    finally:
        daemon.stop()
    assert [t.returncode for t in topups] == [0] * 5, [t.stderr for t in topups]
    ((balance,),) = query(db, "SELECT balance FROM accounts WHERE name = 'acme'")
    ((charged,),) = query(db, "SELECT coalesce(sum(points - refunded), 0) FROM messages")
    ((credited, entries),) = query(db, "SELECT sum(points), count(*) FROM ledger_entries")
    print(f"\n{len(accepted)} messages accepted, {entries} top-ups while sending; balance "
          f"{balance} = {initial} + {credited} - {charged}")
    assert len(accepted) >= 900 and entries == 5 and credited == 5000
    assert balance == initial + credited - charged
    # The top-ups did overlap the charging (else this test proves nothing).
    ((overlapping,),) = query(db, "SELECT count(*) FROM ledger_entries WHERE created_at "
                              "BETWEEN (SELECT min(created_at) FROM messages) AND "
                              "(SELECT max(created_at) FROM messages)")
    assert overlapping >= 1
