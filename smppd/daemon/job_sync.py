"""Job states across instances (issue 14): a job paused, resumed or stopped through
one instance's API takes effect on every instance feeding it.

The state is the store's (the jobs table); each instance reads the states of the
jobs it feeds, and of the jobs it could feed, every `interval` seconds (half a
second: a pause elsewhere stops sends here within a second). One small query
over the few active jobs, on the read pool.

- paused there: the feeder pauses here; resumed: it resumes;
- stopped there: the job is dropped here, and what this instance held of it (leased
  but not yet sent) is cancelled and refunded here, as the stopping instance left
  it alone;
- completed: dropped;
- running and not fed here (made or resumed through another instance): fed here
  too, each instance leasing its own pages; scheduled and due: started.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC
from typing import Any

from sqlalchemy import Connection, select

from ..status import JobState
from ..store import operations as ops
from ..store import schema as t

log = logging.getLogger("smppd.jobs")
INTERVAL = 0.5
_SEEN = (JobState.SCHEDULED, JobState.RUNNING, JobState.PAUSED)


def job_states(conn: Connection, fed: list[str]) -> list[tuple[Any, ...]]:
    """(id, account, state, cap, start_at) of the active jobs and of those fed here."""
    j = t.jobs.c
    condition = j.state.in_(_SEEN)
    if fed:
        condition = condition | j.id.in_(fed)
    return [tuple(row) for row in conn.execute(
        select(j.id, j.account_id, j.state, j.throughput, j.start_at).where(condition))]


class JobSync:
    def __init__(self, reactor: Any, read: Callable[..., Any], put: Callable[[Any], Any],
                 manager: Any, owner: Callable[[], str | None],
                 interval: float = INTERVAL) -> None:
        self.reactor = reactor
        self.read = read
        self.put = put
        self.manager = manager  # the JobManager: its dispatcher port and _feed
        self.owner = owner
        self.interval = interval
        self._loop: Any = None
        self._reading = False
        self._starting: set[str] = set()

    def start(self) -> None:
        from twisted.internet import task

        self._loop = task.LoopingCall(self.sync)
        self._loop.clock = self.reactor
        self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def sync(self) -> None:
        if self._reading:
            return
        self._reading = True
        fed = list(self.manager.dispatcher.feeders)

        def done(rows: list[tuple[Any, ...]]) -> None:
            self._reading = False
            self.apply(rows)

        def failed(failure: Any) -> None:
            self._reading = False
            log.warning("jobs: states not read: %s", failure.getErrorMessage())

        self.read(job_states, fed).addCallbacks(done, failed)

    def apply(self, rows: list[tuple[Any, ...]]) -> None:
        dispatcher = self.manager.dispatcher
        now = self.reactor.seconds()
        for job_id, account_id, state, cap, start_at in rows:
            feeder = dispatcher.feeders.get(job_id)
            if feeder is not None:
                if state == JobState.PAUSED and not feeder.paused:
                    log.info("job=%s paused elsewhere: paused here", job_id)
                    dispatcher.pause_job(job_id, True)
                elif state == JobState.RUNNING and feeder.paused:
                    log.info("job=%s resumed elsewhere: resumed here", job_id)
                    dispatcher.pause_job(job_id, False)
                elif state == JobState.STOPPED:
                    self._stopped(job_id, account_id)
                elif state == JobState.COMPLETED:
                    dispatcher.drop_job(job_id)
            elif state == JobState.RUNNING:
                log.info("job=%s running elsewhere: fed here too", job_id)
                self.manager._feed(job_id, account_id, cap)
            elif state == JobState.SCHEDULED and start_at is not None and \
                    start_at.replace(tzinfo=UTC).timestamp() <= now and \
                    job_id not in self._starting:
                self._starting.add(job_id)  # the scheduled start's own timer may be gone
                self.manager._start_scheduled(job_id, account_id, cap)

    def _stopped(self, job_id: str, account_id: int) -> None:
        busy = self.manager.dispatcher.drop_job(job_id)
        log.info("job=%s stopped elsewhere: stopped here", job_id)
        self.put(ops.StopJob(job_id, account_id, busy, self.owner())).addErrback(
            lambda failure: log.error("job=%s: what this instance held not cancelled: %s",
                                      job_id, failure.getErrorMessage()))
