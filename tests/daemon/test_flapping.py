"""Issue 8's scenario: an SMSC that drops the connection before answering every Nth
submit. 400 messages, window 10: every one delivered, charged once, duplicates at
the SMSC no more than the window per drop, and counted."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import wait_for

COUNT = 400


def _statuses(database: str) -> Counter[str]:
    engine = create_engine(database)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, count(*) FROM messages GROUP BY status")).all()
    engine.dispose()
    return Counter({status: count for status, count in rows})


@pytest.mark.parametrize("every", [5, 17, 50])
def test_every_message_is_delivered_when_the_link_drops_every_n_submits(
        start_daemon: Any, every: int) -> None:
    running = start_daemon(smsc={"window": 10})
    smsc = running.smsc
    smsc.behaviour.drop_every = every
    _, before = running.client.request("GET", "/v1/account")
    points = 0
    for n in range(COUNT):
        status, body = running.client.send(to=f"+4850{n:07d}", text=f"flap {n}")
        assert status == 201, body
        points += body["points"]
    database = running.daemon.settings.database
    wait_for(lambda: _statuses(database)["delivered"] == COUNT, timeout=120,
             what=f"{COUNT} delivered with a drop every {every} submits")
    assert _statuses(database) == Counter({"delivered": COUNT})
    _, after = running.client.request("GET", "/v1/account")
    assert before["balance"] - after["balance"] == points  # charged once
    texts = Counter(record.pdu.get("short_message") for record in smsc.submits)
    assert set(texts) == {f"flap {n}".encode() for n in range(COUNT)}
    duplicates = sum(texts.values()) - COUNT
    assert smsc.drops >= COUNT // every - 1
    assert duplicates <= 10 * smsc.drops  # at most the window per drop
    _, metrics = running.client.request("GET", "/metrics")
    resent = sum(float(line.split()[-1]) for line in metrics.splitlines()
                 if line.startswith("smppd_resent_total{"))
    assert resent >= duplicates  # every duplicate was a counted resend
    print(f"\ndrop every {every}: {smsc.drops} drops, {duplicates} duplicates, "
          f"{int(resent)} resent")
