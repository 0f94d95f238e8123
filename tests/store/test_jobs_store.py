"""The job operations of the store, on SQLite and PostgreSQL: create a batch at a
time (charged per batch, refused whole when the balance is short), finish, abort
(taken back whole, refunded), pause / resume (idempotent; stopped and completed
stay so), stop (every unsent message cancelled and refunded, those in flight or
partly sent left alone), and what a restarting daemon reads back."""

from __future__ import annotations

import time
from typing import Any

from smppd.ids import new_id
from smppd.status import JobState, Status
from smppd.store import operations as ops
from smppd.store import queries
from tests.store.conftest import Store
from tests.store.test_store import accept

ACTIVE = (JobState.RUNNING, JobState.SCHEDULED)


def create(store: Store, job_id: str, count: int, points: int = 1, account: str = "bulk",
           start_at: float | None = None, parts: int = 1) -> tuple[Any, list[ops.Accept]]:
    rows = [accept(store, parts, account=account, points=points, job_id=job_id,
                   recipient=f"4850010{i:04d}") for i in range(count)]
    op = ops.CreateJob(store.accounts[account], job_id, "campaign", "Acme", "Hi {name}",
                       None, start_at, tuple(rows), time.time())
    return store.apply(op)[0], rows


def job(store: Store, job_id: str, account: str = "bulk") -> dict[str, Any] | None:
    with store.engine.connect() as conn:
        return queries.get_job(conn, store.accounts[account], job_id)


def test_a_job_is_created_in_batches_and_charged_as_it_is_written(store: Store) -> None:
    job_id = new_id()
    assert create(store, job_id, 3, points=2)[0] == job_id
    assert create(store, job_id, 2, points=2)[0] == job_id
    assert store.balance("bulk") == 10**7 - 10
    creating = job(store, job_id)
    assert creating is not None and creating["state"] == JobState.CREATING
    assert creating["messages"] == 5 and creating["points"] == 10
    assert store.scalar("SELECT count(*) FROM jobs") == 1
    with store.engine.connect() as conn:
        assert queries.active_jobs(conn) == []  # a job being written is invisible
    assert store.apply(ops.FinishJob(job_id, JobState.RUNNING, 1, '[{"row": 4}]')) == [
        JobState.RUNNING]
    finished = job(store, job_id)
    assert finished["state"] == JobState.RUNNING and finished["rejected_rows"] == 1
    assert finished["counts"] == {Status.QUEUED: 5}
    with store.engine.connect() as conn:
        assert [row[0] for row in queries.active_jobs(conn)] == [job_id]
        assert queries.job_queued_count(conn, job_id) == 5
    # Finishing again changes nothing: only a job being created can be finished.
    store.apply(ops.FinishJob(job_id, JobState.SCHEDULED, 0, None))
    assert job(store, job_id)["state"] == JobState.RUNNING


def test_a_batch_the_balance_cannot_pay_is_refused_and_the_job_taken_back(
        store: Store) -> None:
    job_id = new_id()
    assert create(store, job_id, 4, account="other")[0] == job_id  # 10 points: 4 used
    refused = create(store, job_id, 7, account="other")[0]
    assert isinstance(refused, ops.InsufficientBalance) and store.balance("other") == 6
    assert store.apply(ops.AbortJob(job_id)) == [4]
    assert store.balance("other") == 10
    assert job(store, job_id, "other") is None
    assert store.scalar("SELECT count(*) FROM messages") == 0
    assert store.scalar("SELECT count(*) FROM parts") == 0
    assert store.apply(ops.AbortJob(job_id)) == [0]  # idempotent


def test_abort_touches_only_a_job_being_created(store: Store) -> None:
    job_id = new_id()
    create(store, job_id, 2)
    store.apply(ops.FinishJob(job_id, JobState.RUNNING, 0, None))
    assert store.apply(ops.AbortJob(job_id)) == [0]
    assert job(store, job_id)["counts"] == {Status.QUEUED: 2}


def test_pause_and_resume_are_idempotent_and_a_stopped_job_stays_stopped(
        store: Store) -> None:
    job_id = new_id()
    account = store.accounts["bulk"]
    create(store, job_id, 2)
    store.apply(ops.FinishJob(job_id, JobState.SCHEDULED, 0, None))

    def set_state(state: str, allowed: tuple[str, ...]) -> Any:
        return store.apply(ops.SetJobState(job_id, account, state, allowed))[0]

    assert set_state(JobState.PAUSED, ACTIVE) == JobState.PAUSED
    assert set_state(JobState.PAUSED, ACTIVE) == JobState.PAUSED
    assert set_state(JobState.RUNNING, (JobState.PAUSED,)) == JobState.RUNNING
    assert set_state(JobState.RUNNING, (JobState.PAUSED,)) == JobState.RUNNING
    other = store.apply(ops.SetJobState(job_id, store.accounts["acme"], JobState.PAUSED,
                                        ACTIVE))[0]
    assert other is None  # another account's job does not exist for it
    assert store.apply(ops.StopJob(job_id, account, frozenset()))[0] == (2, 2)
    assert set_state(JobState.RUNNING, (JobState.PAUSED,)) == JobState.STOPPED
    assert set_state(JobState.PAUSED, ACTIVE) == JobState.STOPPED


def test_stop_cancels_and_refunds_only_what_was_never_sent(store: Store) -> None:
    """Three 2-part messages out of six are spared: one submitted, one partly sent,
    one the dispatcher has in flight. The other three are cancelled and refunded in
    one transaction, with an event each; a second stop finds nothing more."""
    job_id = new_id()
    account = store.accounts["bulk"]
    _, rows = create(store, job_id, 6, points=2, parts=2)
    store.apply(ops.FinishJob(job_id, JobState.RUNNING, 0, None))
    sent, partly, in_flight = rows[0], rows[1], rows[2]
    store.apply(ops.PartSubmitted(sent.message_id, 1, "smsc", "s-1", "s-1"))
    store.apply(ops.PartSubmitted(partly.message_id, 1, "smsc", "p-1", "p-1"))
    balance = store.balance("bulk")
    result = store.apply(ops.StopJob(job_id, account, frozenset({in_flight.message_id})))[0]
    assert result == (3, 6)
    assert store.balance("bulk") == balance + 6
    stopped = job(store, job_id)
    assert stopped["state"] == JobState.STOPPED and stopped["refunded"] == 6
    assert stopped["counts"][Status.CANCELLED] == 3
    for message in rows[3:]:
        found = store.message(message.message_id, "bulk")
        assert found["status"] == Status.CANCELLED and found["refunded"] == 2
        assert [h["status"] for h in found["history"] if h["part"] is None][-1] == \
            Status.CANCELLED
    assert store.message(in_flight.message_id, "bulk")["status"] == Status.QUEUED
    assert store.apply(ops.StopJob(job_id, account, frozenset()))[0] == (1, 2)  # in flight
    assert store.apply(ops.StopJob(job_id, account, frozenset()))[0] == (0, 0)
    assert store.balance("bulk") == balance + 8


def test_a_stopped_job_is_not_read_back_at_start_but_paused_and_scheduled_are(
        store: Store) -> None:
    ids = {}
    for state in (JobState.RUNNING, JobState.PAUSED, JobState.SCHEDULED, JobState.STOPPED):
        ids[state] = job_id = new_id()
        create(store, job_id, 1, start_at=time.time() + 3600
               if state == JobState.SCHEDULED else None)
        store.apply(ops.FinishJob(job_id, JobState.SCHEDULED if state == JobState.SCHEDULED
                                  else JobState.RUNNING, 0, None))
    account = store.accounts["bulk"]
    store.apply(ops.SetJobState(ids[JobState.PAUSED], account, JobState.PAUSED, ACTIVE))
    store.apply(ops.StopJob(ids[JobState.STOPPED], account, frozenset()))
    with store.engine.connect() as conn:
        active = {row[0]: row[2] for row in queries.active_jobs(conn)}
        scheduled = queries.jobs_in_state(conn, JobState.SCHEDULED)
    assert active == {ids[s]: s for s in (JobState.RUNNING, JobState.PAUSED,
                                          JobState.SCHEDULED)}
    assert scheduled == [ids[JobState.SCHEDULED]]


def test_a_batch_of_job_messages_is_written_as_the_same_accepts_are(store: Store) -> None:
    """Issue 14: JobMessages take the job's own insert (shared columns bound once on
    SQLite); the rows, parts and rollups are those messages.insert writes for the
    same values as Accepts."""
    now = time.time()
    variants = [dict(country="PL", encoding="gsm", parts=1, smsc=None, ref_id=None,
                     params=None),
                dict(country="DE", encoding="ucs2", parts=3, smsc="a", ref_id="r",
                     params='{"k":"v"}'),
                dict(country=None, encoding="gsm", parts=2, smsc="a|b", ref_id=None,
                     params=None)]
    tables = {}
    for kind in ("accept", "tuple"):
        job_id = new_id()
        rows = []
        for i in range(30):
            v = variants[i % 3]
            values = (store.accounts["bulk"], new_id(), "Acme", f"4850010{i:04d}",
                      v["country"], f"Hello {i}", v["encoding"], v["parts"], 2 * v["parts"],
                      i, v["smsc"], v["ref_id"], v["params"], now, job_id)
            extra = dict(channel="job", sent_by="u", partner="p", callback_id=None)
            rows.append(ops.Accept(*values, **extra) if kind == "accept"
                        else ops.JobMessage(*values, **extra))
        store.apply(ops.CreateJob(store.accounts["bulk"], job_id, "c", "Acme", "Hello {i}",
                                  None, None, tuple(rows), now))
        with store.engine.connect() as conn:
            messages = conn.exec_driver_sql(
                "SELECT recipient, account_id, sender, country, text, encoding, parts, "
                "points, refunded, concat_ref, status, smsc, ref_id, params, created_at, "
                "updated_at, channel, sent_by, partner, callback_id, lease_owner "
                f"FROM messages WHERE job_id = '{job_id}' ORDER BY id").all()
            parts = conn.exec_driver_sql(
                "SELECT m.recipient, p.part_no, p.status, p.updated_at, p.smsc FROM parts p "
                f"JOIN messages m ON m.id = p.message_id WHERE m.job_id = '{job_id}' "
                "ORDER BY m.id, p.part_no").all()
            rollups = conn.exec_driver_sql(
                "SELECT status, error, sum(messages), sum(parts), sum(points), "
                "sum(refunded) FROM message_rollups GROUP BY status, error").all()
        tables[kind] = (messages, parts)
        assert len(messages) == 30 and len(parts) == 60
        tables[kind + " rollups"] = rollups
    assert tables["accept"] == tables["tuple"]
    # The rollups grew by the same amounts (30 messages, 60 parts, 120 points) twice.
    assert [tuple(row) for row in tables["accept rollups"]] == [(Status.QUEUED, "", 30, 60,
                                                                 120, 0)]
    assert [tuple(row) for row in tables["tuple rollups"]] == [(Status.QUEUED, "", 60, 120,
                                                                240, 0)]
