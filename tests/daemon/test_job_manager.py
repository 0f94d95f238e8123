"""The job manager with stand-in collaborators on a simulated clock: restore after a
start, scheduled starts, pause before the commit, stop with what is in flight, and
completion."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock

from smppd import config
from smppd.api.http import Account
from smppd.daemon.intake import Intake, Tariff
from smppd.daemon.jobs import JobManager
from smppd.daemon.router import Router
from smppd.status import JobState
from smppd.store import operations as ops

JOB = "0" * 31 + "1"
ACCOUNT = Account(3, "acme")


class StandInDispatcher:
    def __init__(self) -> None:
        self.feeders: dict[str, Any] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.drained: set[str] = set()

    def add_job(self, job_id: str, account_id: int, cap: float | None,
                paused: bool = False) -> None:
        self.feeders[job_id] = type("Feeder", (), {"account_id": account_id})()
        self.calls.append(("add", job_id, cap, paused))

    def pause_job(self, job_id: str, paused: bool) -> None:
        self.calls.append(("pause", job_id, paused))

    def drop_job(self, job_id: str) -> frozenset[str]:
        self.feeders.pop(job_id, None)
        self.calls.append(("drop", job_id))
        return frozenset({"busy-1"})

    def job_drained(self, job_id: str) -> bool:
        return job_id in self.drained

    def job_rate(self, job_id: str) -> float:
        return 0.0


class Store:
    """Reads answer from `answers` by query name; writes are recorded and left
    pending until the test commits them."""

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}
        self.written: list[tuple[Any, defer.Deferred[Any]]] = []

    def read(self, fn: Any, *args: Any) -> defer.Deferred[Any]:
        return defer.succeed(self.answers[fn.__name__])

    def put(self, op: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.written.append((op, d))
        return d

    def commit(self, result: Any) -> Any:
        op, d = self.written[-1]
        d.callback(result)
        return op


def _manager(clock: Clock) -> tuple[JobManager, StandInDispatcher, Store]:
    smsc = config.SmscSettings(name="a", host="127.0.0.1", port=1, system_id="a", password="b")
    store, dispatcher = Store(), StandInDispatcher()
    manager = JobManager(clock, store.read, store.put, lambda fn: defer.maybeDeferred(fn),
                         dispatcher, Intake(Router.of({}, [smsc]), Tariff(1)))
    return manager, dispatcher, store


def test_restore_removes_half_made_jobs_and_wakes_scheduled_ones_on_time() -> None:
    clock = Clock()
    clock.advance(1_000_000)
    manager, dispatcher, store = _manager(clock)
    start_at = datetime.fromtimestamp(1_000_030, UTC).replace(tzinfo=None)
    store.answers = {"jobs_in_state": ["half"], "active_jobs": [
        (JOB, 3, JobState.SCHEDULED, 5.0, start_at), ("r", 3, JobState.RUNNING, None, None),
        ("p", 3, JobState.PAUSED, None, None)]}
    done = manager.restore()
    assert isinstance(store.commit(4), ops.AbortJob)
    assert done.called
    assert dispatcher.calls == [("add", "r", None, False), ("add", "p", None, True)]
    clock.advance(29)
    assert not store.written[1:]
    clock.advance(1)
    op = store.commit(JobState.RUNNING)
    assert (op.job_id, op.state, op.allowed_from) == (JOB, JobState.RUNNING,
                                                      (JobState.SCHEDULED,))
    assert dispatcher.calls[-1] == ("add", JOB, 5.0, False)
    manager.stop()


def test_pause_takes_effect_before_the_commit_and_stop_spares_what_is_in_flight() -> None:
    clock = Clock()
    manager, dispatcher, store = _manager(clock)
    dispatcher.add_job(JOB, ACCOUNT.id, None)
    answer = manager.act(ACCOUNT, JOB, "pause")
    assert dispatcher.calls[-1] == ("pause", JOB, True) and not answer.called
    store.commit(JobState.PAUSED)
    assert answer.result == {"id": JOB, "state": JobState.PAUSED}
    stopped = manager.act(ACCOUNT, JOB, "stop")
    op = store.commit((7, 70))
    assert op.in_flight == frozenset({"busy-1"}) and JOB not in dispatcher.feeders
    assert stopped.result == {"id": JOB, "state": JobState.STOPPED, "cancelled": 7,
                              "refunded": 70}


def test_another_accounts_job_is_not_touched_in_the_dispatcher() -> None:
    clock = Clock()
    manager, dispatcher, store = _manager(clock)
    dispatcher.add_job(JOB, 99, None)
    manager.act(ACCOUNT, JOB, "pause")
    manager.act(ACCOUNT, JOB, "stop")
    assert [call[0] for call in dispatcher.calls] == ["add"]
    assert [type(op) for op, _ in store.written] == [ops.SetJobState, ops.StopJob]
    assert store.written[1][0].in_flight == frozenset()


def test_a_drained_job_completes_once_nothing_is_queued() -> None:
    clock = Clock()
    manager, dispatcher, store = _manager(clock)
    store.answers = {"jobs_in_state": [], "active_jobs": [(JOB, 3, JobState.RUNNING, None,
                                                           None)],
                     "job_queued_count": 0}
    manager.restore()
    clock.advance(1)
    assert not store.written  # not drained yet
    dispatcher.drained.add(JOB)
    clock.advance(1)
    op = store.commit(JobState.COMPLETED)
    assert (op.state, op.allowed_from) == (JobState.COMPLETED, (JobState.RUNNING,))
    assert dispatcher.calls[-1] == ("drop", JOB)
    manager.stop()


def test_the_completion_check_runs_only_while_a_job_is_fed() -> None:
    """Issue 13: with no job fed, an idle daemon does not wake every second for the
    check; feeding a job (here a scheduled one starting) starts it again."""
    clock = Clock()
    manager, dispatcher, store = _manager(clock)
    start_at = datetime.fromtimestamp(30, UTC).replace(tzinfo=None)
    store.answers = {"jobs_in_state": [], "job_queued_count": 0,
                     "active_jobs": [(JOB, 3, JobState.SCHEDULED, None, start_at)]}
    manager.restore()
    assert not clock.getDelayedCalls()[1:]  # only the scheduled start waits
    clock.advance(30)
    store.commit(JobState.RUNNING)  # the start is committed: the job is fed
    assert JOB in dispatcher.feeders and len(clock.getDelayedCalls()) == 1
    dispatcher.drained.add(JOB)
    clock.advance(1)
    store.commit(JobState.COMPLETED)  # checked, completed, dropped
    assert not dispatcher.feeders
    clock.advance(1)
    assert clock.getDelayedCalls() == []  # nothing fed: the check rests
    manager.stop()
