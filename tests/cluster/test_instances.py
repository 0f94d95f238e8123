"""Several smppd processes on one PostgreSQL database (issue 14), one fake SMSC.

- 10,000 messages (half through each instance's API, half a job made on one and fed
  by both): every one sent exactly once, receipts matched whichever instance's bind
  got them (the fake SMSC hands them to the binds in turn), the balance exact;
- kill -9 of one instance mid-burst: the other takes over its queue after the lease
  and finishes; duplicates at most the dead one's window, nothing charged twice;
- a job paused through instance A stops on instance B within a second;
- a 100/s contract shared by two instances: 99-101 submits in every second at the SMSC.

Real processes (kill -9 is real), skipped with a printed reason without
SMPPD_TEST_POSTGRES_URL."""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from smppd.daemon.feeding import JobFeeder
from tests.support.cluster import LEASE, by_connection, metric, start_instances, texts
from tests.support.faults import fresh_postgres
from tests.support.polling import until
from tests.support.process import TOKEN, post_many, query
from tests.support.running import Client

BALANCE = 10_000_000


@pytest.fixture
def database() -> str:
    return fresh_postgres()


def _job(port: int, name: str, count: int, **extra: Any) -> str:
    client = Client(port, TOKEN)
    client.conn.timeout = 120
    recipients = [{"to": f"+4860{i:07d}", "n": f"{name}-{i}"} for i in range(count)]
    status, body = client.request("POST", "/v1/jobs", {
        "name": name, "from": "Acme", "text": "{n}", "recipients": recipients, **extra})
    client.conn.close()
    assert status == 201, body
    return body["id"]


def _act(port: int, job_id: str, action: str) -> dict[str, Any]:
    client = Client(port, TOKEN)
    status, body = client.request("POST", f"/v1/jobs/{job_id}/{action}")
    client.conn.close()
    assert status == 200, body
    return body


def _statuses(database: str) -> dict[str, int]:
    return dict(query(database, "SELECT status, count(*) FROM messages GROUP BY status"))


def _balance(database: str) -> int:
    return query(database, "SELECT balance FROM accounts WHERE name = 'acme'")[0][0]


def _stop_all(daemons: list[Any]) -> None:
    for daemon in daemons:
        daemon.stop()


@pytest.mark.timeout(600)
def test_ten_thousand_messages_on_two_instances_each_sent_once(
        smsc: Any, tmp_path: Path, database: str) -> None:
    total = int(os.environ.get("SMPPD_TEST_CLUSTER_MESSAGES", "10000"))
    half = total // 2
    smsc.behaviour.receipts_round_robin = True
    daemons = start_instances(tmp_path, smsc.port, database, window=50)
    a, b = daemons
    try:
        until(lambda: metric(a, "smppd_cluster_instances") == 2, 10, "both instances seen")
        job = _job(a.http_port, "job", half)
        singles = [f"api-{i}" for i in range(half)]
        accepted = post_many(a.http_port, singles[:half // 2], connections=10)
        accepted.update(post_many(b.http_port, singles[half // 2:], connections=10))
        assert len(accepted) == half
        until(lambda: _statuses(database).get("delivered", 0) == total, 300,
              f"{total} messages delivered", interval=0.5,
              detail=lambda: f"{_statuses(database)}\n{a.log.read_text()[-2000:]}"
                             f"\n{b.log.read_text()[-2000:]}")
        until(lambda: query(database, f"SELECT state FROM jobs WHERE id = '{job}'")
              == [("completed",)], 20, "the job completed")
    finally:
        _stop_all(daemons)
    sent = texts(smsc)
    assert len(sent) == total
    assert max(sent.values()) == 1, [t for t, n in sent.items() if n > 1][:10]
    per_bind = by_connection(smsc)
    assert len(per_bind) == 2 and min(per_bind.values()) > total // 10, per_bind
    job_binds = by_connection(smsc, "job-")
    if half > 2 * JobFeeder.PAGE:  # a page is leased whole: a small job is one's
        assert len(job_binds) == 2, f"both instances fed the job: {job_binds}"
    assert smsc.receipts_sent == total
    assert _statuses(database) == {"delivered": total}
    assert _balance(database) == BALANCE - total
    assert query(database, "SELECT sum(points - refunded) FROM messages") == [(total,)]
    # A clean stop gives everything back: no instance left, nothing leased.
    assert query(database, "SELECT count(*) FROM instances") == [(0,)]
    print(f"\ntwo instances: {dict(per_bind)} submits per bind, "
          f"job {dict(job_binds)}, {total} delivered once each")


@pytest.mark.timeout(300)
def test_kill_9_of_one_instance_mid_burst_the_other_finishes(
        smsc: Any, tmp_path: Path, database: str) -> None:
    window = 20
    daemons = start_instances(tmp_path, smsc.port, database, window=window, throughput=400)
    a, b = daemons
    try:
        until(lambda: metric(a, "smppd_cluster_instances") == 2, 10, "both instances seen")
        job = _job(a.http_port, "job", 2000)
        accepted = post_many(a.http_port, [f"api-{i}" for i in range(2000)], connections=10)
        assert len(accepted) == 2000
        until(lambda: by_connection(smsc)[1] >= 500, 30, "instance A half way")
        a.kill()
        killed_at = time.monotonic()
        at_kill = texts(smsc)
        until(lambda: _statuses(database).get("queued", 0) == 0
              and query(database, f"SELECT state FROM jobs WHERE id = '{job}'")
              == [("completed",)], 120, "B to finish A's work", interval=0.2,
              detail=lambda: f"{_statuses(database)}\n{b.log.read_text()[-3000:]}")
        finished = time.monotonic() - killed_at
    finally:
        _stop_all(daemons)
    sent = texts(smsc)
    assert len(sent) == 4000, "every message reached the SMSC"
    duplicates = sum(n - 1 for n in sent.values())
    print(f"\nkill -9 of A after {sum(at_kill.values())} submits: B finished in "
          f"{finished:.1f} s (lease {LEASE:g} s), {duplicates} duplicate(s), window {window}")
    assert duplicates <= window
    assert max(sent.values()) <= 2, [t for t, n in sent.items() if n > 2][:10]  # resent once
    statuses = _statuses(database)
    # Receipts that reached A's bind and died with it leave their message `submitted`
    # (the fake SMSC does not redeliver); everything else is delivered.
    assert set(statuses) <= {"delivered", "submitted", "unknown"}, statuses
    assert statuses.get("delivered", 0) >= 4000 - 2 * window
    # Charged once per message; a resend is not charged again.
    assert _balance(database) == BALANCE - 4000
    after_b = by_connection(smsc)
    assert sum(n for serial, n in after_b.items() if serial != 1) > 0


@pytest.mark.timeout(300)
def test_a_job_paused_on_one_instance_stops_on_the_other_within_a_second(
        smsc: Any, tmp_path: Path, database: str) -> None:
    daemons = start_instances(tmp_path, smsc.port, database, window=10, throughput=200)
    a, b = daemons
    try:
        until(lambda: metric(b, "smppd_cluster_instances") == 2, 10, "both instances seen")
        job = _job(a.http_port, "slow", 3000)
        # Instance B's bind is the fake SMSC's second connection.
        until(lambda: by_connection(smsc, "slow-").get(2, 0) >= 50, 30,
              "instance B sending the job")
        answer = _act(a.http_port, job, "pause")
        paused_at = time.time()
        assert answer["state"] == "paused"
        time.sleep(2.0)
        late = [record for record in list(smsc.submits)
                if record.at > paused_at + 1.0 and record.connection == 2]
        early_b = [record for record in list(smsc.submits)
                   if paused_at < record.at <= paused_at + 1.0 and record.connection == 2]
        late_a = [record for record in list(smsc.submits)
                  if record.at > paused_at + 1.0 and record.connection == 1]
        resumed = _act(b.http_port, job, "resume")
        assert resumed["state"] == "running"
        until(lambda: query(database, f"SELECT state FROM jobs WHERE id = '{job}'")
              == [("completed",)], 60, "the job completed after the resume")
    finally:
        _stop_all(daemons)
    print(f"\npaused through A: B sent {len(early_b)} in the next second, then {len(late)}")
    assert late == [], f"B sent {len(late)} part(s) more than a second after the pause"
    assert late_a == []
    assert max(texts(smsc, "slow-").values()) == 1 and len(texts(smsc, "slow-")) == 3000


def test_a_shared_contract_of_100_per_second_holds_every_second(
        smsc: Any, tmp_path: Path, database: str) -> None:
    daemons = start_instances(tmp_path, smsc.port, database, window=50, throughput=100)
    a, b = daemons
    try:
        for daemon in daemons:
            until(lambda d=daemon: metric(d, "smppd_cluster_instances") == 2, 10,
                  "both instances seen")
        # 12 s of work at 100/s: a job made on each instance at the same time (each
        # leases its own job's one page at once; a backlog, not the HTTP intake, is
        # what the contract then paces).
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda job: _job(*job), [(a.http_port, "a", 600),
                                                   (b.http_port, "b", 600)]))
        until(lambda: len(texts(smsc)) == 1200, 40, "1,200 submits")
    finally:
        _stop_all(daemons)
    records = [record for record in smsc.submits if record.message_id]
    binds = {record.connection for record in records}
    # Counted as a carrier counts, per second of the clock (each bucket gives its
    # share in the middle of each second, off its edges), while both
    # instances had a backlog: the whole seconds from the later one's first submit to
    # the earlier one's last.
    start = math.ceil(max(min(r.at for r in records if r.connection == c) for c in binds))
    end = math.floor(min(max(r.at for r in records if r.connection == c) for c in binds))
    full = [sum(1 for r in records if second <= r.at < second + 1)
            for second in range(start, end)]
    per_bind = by_connection(smsc)
    print(f"\nshared 100/s: per second {full}, per bind {dict(per_bind)}")
    assert len(full) >= 5
    assert all(99 <= count <= 101 for count in full), full
    assert all(550 <= n <= 650 for n in per_bind.values()), per_bind


def test_an_instance_joining_a_shared_contract_under_load_never_pushes_it_past_it(
        smsc: Any, tmp_path: Path, database: str) -> None:
    """B starts while A sends a job at the whole 200/s contract, and has work at once:
    the job's second page, which A has not leased yet. From B's first submit on, every
    clock second at the SMSC holds at most 201 (but for a late release moved between
    neighbours): B sends only after A has cut its share."""
    (a,) = start_instances(tmp_path, smsc.port, database, count=1, window=50,
                           throughput=200)
    daemons = [a]
    total = JobFeeder.PAGE + 600
    try:
        _job(a.http_port, "a", total)
        until(lambda: len(texts(smsc, "a-")) >= 400, 30, "A sending at 200/s")
        daemons += start_instances(tmp_path, smsc.port, database, count=1, window=50,
                                   throughput=200, first=1)
        until(lambda: len(texts(smsc)) == total, 60, f"{total} submits")
    finally:
        _stop_all(daemons)
    records = [record for record in smsc.submits if record.message_id]
    binds = by_connection(smsc)
    assert len(binds) == 2, f"B sent nothing: {binds}"
    # Clock seconds, as a carrier counts, from the one in which B first sent. A second
    # over the contract is allowed only as a release that came late (a loaded machine)
    # and so moved from the second before into this one: the two together are within
    # twice the contract. Without the join rule the join's second went to 229-258 with
    # full neighbours.
    b_first = min(r.at for r in records if r.connection == max(binds))
    full = [sum(1 for r in records if second <= r.at < second + 1)
            for second in range(math.floor(b_first), math.ceil(max(r.at for r in records)))]
    print(f"\njoin under a 200/s contract: per second from B's first {full}, "
          f"per bind {dict(binds)}")
    over = [count for index, count in enumerate(full) if count > 201 and count + min(
        full[max(index - 1, 0)], full[min(index + 1, len(full) - 1)]) > 401]
    assert not over, full
