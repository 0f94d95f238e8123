"""kill -9 in the middle of a bulk job, on SQLite and PostgreSQL, with a stopped, a
paused and a scheduled job beside it: after the restart the running job completes,
the others stay as they were, every count and balance is exact, and the only
duplicates at the SMSC are what was in flight at the kill (at most the window)."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.support.faults import fresh_postgres
from tests.support.polling import until
from tests.support.process import TOKEN, DaemonProcess, free_port, query, write_config
from tests.support.running import Client

BALANCE = 10_000_000


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: Any, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'smppd.db'}"
    return fresh_postgres()


def _sent(smsc: Any, job: str) -> Counter[str]:
    """Texts of `job` the SMSC received, with how many times each."""
    texts = (record.pdu.fields["short_message"].decode() for record in list(smsc.submits))
    return Counter(text for text in texts if text.startswith(job + "-"))


class Jobs:
    def __init__(self, port: int) -> None:
        self.client = Client(port, TOKEN)
        self.client.conn.timeout = 60

    def create(self, name: str, count: int, **extra: Any) -> str:
        recipients = [{"to": f"+48{500 + len(name)}{i:06d}", "n": f"{name}-{i}"}
                      for i in range(count)]
        status, body = self.client.request("POST", "/v1/jobs", {
            "name": name, "from": "Acme", "text": "{n}", "recipients": recipients, **extra})
        assert status == 201, body
        return body["id"]

    def act(self, job_id: str, action: str) -> dict[str, Any]:
        status, body = self.client.request("POST", f"/v1/jobs/{job_id}/{action}")
        assert status == 200, body
        return body

    def get(self, job_id: str) -> dict[str, Any]:
        status, body = self.client.request("GET", f"/v1/jobs/{job_id}")
        assert status == 200, body
        return body


def test_kill_9_in_the_middle_of_a_job_then_restart(smsc: Any, tmp_path: Path,
                                                    database: str) -> None:
    window = 20
    http_port = free_port()
    config = write_config(tmp_path, smsc.port, http_port, window=window,
                          log_level="warning", database=database)
    daemon, restarted = DaemonProcess(config, http_port), DaemonProcess(config, http_port)
    try:
        daemon.start()
        jobs = Jobs(http_port)
        ids = {"stopped": jobs.create("stopped", 300, throughput=100)}
        wait_for(lambda: len(_sent(smsc, "stopped")) >= 20, timeout=30, what="stopped job going")
        jobs.act(ids["stopped"], "stop")
        ids["paused"] = jobs.create("paused", 300, throughput=100)
        wait_for(lambda: len(_sent(smsc, "paused")) >= 20, timeout=30, what="paused job going")
        jobs.act(ids["paused"], "pause")
        start_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        ids["scheduled"] = jobs.create("scheduled", 200, start_at=start_at)
        ids["running"] = jobs.create("running", 3000)
        wait_for(lambda: len(_sent(smsc, "running")) >= 500, timeout=60,
                 what="the running job half way")
        daemon.kill()  # SIGKILL: no drain, whatever was in flight is unrecorded
        at_kill = {name: sum(_sent(smsc, name).values()) for name in ids}
        jobs.client.close()
        restarted.start()
        jobs = Jobs(http_port)
        until(lambda: jobs.get(ids["running"])["state"] == "completed", 120,
              "the running job to complete", interval=0.1,
              detail=lambda: restarted.log.read_text()[-3000:])
        states = {name: jobs.get(job_id)["state"] for name, job_id in ids.items()}
        time.sleep(0.5)  # a paused or scheduled job that wrongly woke would send by now
        after = {name: sum(_sent(smsc, name).values()) for name in ids}
    finally:
        daemon.stop()
        restarted.stop()
    assert states == {"stopped": "stopped", "paused": "paused", "scheduled": "scheduled",
                      "running": "completed"}
    assert after["scheduled"] == 0
    assert after["paused"] == at_kill["paused"] and after["stopped"] == at_kill["stopped"]

    rows = query(database, "SELECT j.name, m.text, m.status, m.points, m.refunded "
                           "FROM messages m JOIN jobs j ON j.id = m.job_id")
    by_job: dict[str, Counter[str]] = {name: Counter() for name in ids}
    for name, _, status, _, _ in rows:
        by_job[name][status] += 1
    sent = {name: _sent(smsc, name) for name in ids}
    final = {"delivered", "unknown"}
    assert sum(by_job["running"].values()) == 3000
    assert set(by_job["running"]) <= final
    assert by_job["scheduled"] == {"queued": 200}
    assert by_job["paused"] == {"delivered": len(sent["paused"]),
                                "queued": 300 - len(sent["paused"])}
    assert by_job["stopped"] == {"delivered": len(sent["stopped"]),
                                 "cancelled": 300 - len(sent["stopped"])}
    # What reached the SMSC is exactly what the store says went out.
    went_out = {text for _, text, status, _, _ in rows if status not in ("queued", "cancelled")}
    assert set().union(*(set(c) for c in sent.values())) == went_out
    duplicates = sum(n - 1 for counter in sent.values() for n in counter.values())
    print(f"\nkill -9 mid-job ({database.split(':')[0]}): {at_kill['running']} of 3000 "
          f"sent at the kill, {duplicates} duplicates (window {window}), jobs {by_job}")
    assert duplicates <= window
    assert all(n == 1 for name in ("stopped", "paused") for n in sent[name].values())
    # Charged once per message (the paused and scheduled jobs' unsent ones too: they
    # will still go); the stopped job's unsent ones refunded, nothing else.
    charged = sum(points - refunded for _, _, _, points, refunded in rows)
    assert charged == 3000 + 300 + 200 + len(sent["stopped"])
    balance = query(database, "SELECT balance FROM accounts WHERE name = 'acme'")[0][0]
    assert balance == BALANCE - charged
    refunded = query(database, f"SELECT refunded FROM jobs WHERE id = '{ids['stopped']}'")
    assert refunded == [(300 - len(sent["stopped"]),)]
