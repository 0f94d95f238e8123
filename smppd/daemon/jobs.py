"""Bulk jobs: creation (rows checked and priced off the reactor), state changes that
survive a restart, and handing each running job to the dispatcher to be fed.

A pause takes effect in the dispatcher at once, before its write commits ("stops new
submits at once"); a stop first takes the job from the dispatcher, then cancels in
one transaction every message that is not being sent at that moment.

The manager is given what it works with rather than the whole daemon: the store's
reader and writer, the dispatcher's job port, the intake, the thread pool, and the
reactor for its clock; its tests drive it on a task.Clock.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC
from typing import Any, Protocol

from twisted.internet import defer, task
from twisted.internet.threads import blockingCallFromThread

from ..api import validation
from ..api.http import Account
from ..api.idempotency import json_body
from ..api.validation import ApiError, ValidJob
from ..ids import IdBlocks, new_id
from ..protocol.segmentation import ConcatReferences
from ..status import JobState, Status
from ..store import idempotency, queries
from ..store import operations as ops
from ..store.messages import params_json
from .intake import Admission, Intake

log = logging.getLogger("smppd.jobs")
# Messages per transaction while a job is created, and batches handed to the writer
# at a time. Measured on a 1,000,000-row CSV with the writer process (bench/jobs.py):
# 10,000 x 1 gave 54,000-56,000 rows/s and 246 MiB peak RSS (daemon and writer
# process, each batch held by both); 2,000 x 1, 49,000-54,000 rows/s and 186 MiB;
# 2,000 x 2, 57,000-58,000 rows/s and 187 MiB.
JOB_BATCH = 2_000
IN_FLIGHT = 2


class JobPort(Protocol):
    """What the manager needs of the dispatcher."""

    def add_job(self, job_id: str, account_id: int, cap: float | None,
                paused: bool = False) -> None: ...

    def pause_job(self, job_id: str, paused: bool) -> None: ...

    def drop_job(self, job_id: str) -> frozenset[str]: ...

    def job_drained(self, job_id: str) -> bool: ...

    def job_rate(self, job_id: str) -> float: ...

    @property
    def feeders(self) -> dict[str, Any]: ...


Read = Callable[..., "defer.Deferred[Any]"]  # (fn(conn, *args), *args) on the read pool
Put = Callable[[Any], "defer.Deferred[Any]"]  # Writer.put
InThread = Callable[[Callable[[], Any]], "defer.Deferred[Any]"]


class JobManager:
    def __init__(self, reactor: Any, read: Read, put: Put, in_thread: InThread,
                 dispatcher: JobPort, intake: Intake,
                 accepting: Callable[[], bool] = lambda: True) -> None:
        self.reactor = reactor
        self.read = read
        self.put = put
        self.in_thread = in_thread
        self.dispatcher = dispatcher
        self.intake = intake
        self.accepting = accepting
        self._checking: set[str] = set()
        self._loop: task.LoopingCall | None = None
        self._stopped = False
        # Several instances (issue 14): this instance's id, so that a stop leaves
        # alone what another instance is sending (it stops its share itself).
        self.owner: Callable[[], str | None] = lambda: None

    # Start and stop --------------------------------------------------------------------

    @defer.inlineCallbacks
    def restore(self) -> Any:
        """Feed the running jobs again after a start; paused ones stay paused."""
        for job_id in (yield self.read(queries.jobs_in_state, JobState.CREATING)):
            refunded = yield self.put(ops.AbortJob(job_id))
            log.warning("job=%s was being created when smppd stopped: removed, %d points "
                        "refunded", job_id, refunded)
        for job_id, account_id, state, cap, start_at in (yield self.read(queries.active_jobs)):
            if state == JobState.SCHEDULED and start_at is not None:
                self._schedule(job_id, account_id, cap,
                               start_at.replace(tzinfo=UTC).timestamp())
            else:
                self._feed(job_id, account_id, cap, paused=state == JobState.PAUSED)
        self._loop = task.LoopingCall(self._check)
        self._loop.clock = self.reactor
        self._check_while_fed()

    def stop(self) -> None:
        self._stopped = True
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def _check_while_fed(self) -> None:
        """The completion check runs only while jobs are fed (every job is fed through
        `_feed`): an idle daemon does not wake every second for it (issue 13)."""
        loop = self._loop
        if loop is not None and not loop.running and not self._stopped and \
                self.dispatcher.feeders:
            loop.start(1.0, now=False)

    def _feed(self, job_id: str, account_id: int, cap: float | None,
              paused: bool = False) -> None:
        if job_id in self.dispatcher.feeders:
            return  # fed already (several instances: job_sync may have been first)
        self.dispatcher.add_job(job_id, account_id, cap, paused)
        self._check_while_fed()

    def _schedule(self, job_id: str, account_id: int, cap: float | None,
                  start_at: float) -> None:
        delay = max(0.0, start_at - self.reactor.seconds())
        self.reactor.callLater(delay, self._start_scheduled, job_id, account_id, cap)

    def _start_scheduled(self, job_id: str, account_id: int, cap: float | None) -> None:
        def started(state: str | None) -> None:
            if state == JobState.RUNNING and job_id not in self.dispatcher.feeders:
                log.info("job=%s started (scheduled)", job_id)
                self._feed(job_id, account_id, cap)

        self.put(ops.SetJobState(job_id, account_id, JobState.RUNNING,
                                 (JobState.SCHEDULED,))).addCallbacks(
            started, lambda f: log.error("job=%s not started: %s", job_id,
                                         f.getErrorMessage()))

    # Creation --------------------------------------------------------------------------

    def create(self, account: Account, read_job: Callable[[], ValidJob],
               key: str | None = None, channel: str = "api",
               sent_by: str | None = None) -> defer.Deferred[Any]:
        """`read_job` parses and checks the request body; it runs on the pool thread
        with the rows, not on the reactor. Routes and prices are those of now. With
        an Idempotency-Key `key`, the result may be the answer kept for it (an
        idempotency.Stored) instead of a new job."""
        if not self.accepting():
            return defer.fail(ApiError(503, "smppd is shutting down; retry later"))
        admission = self.intake.admission
        now = self.reactor.seconds()
        origin = (channel, sent_by)

        def build(job: ValidJob) -> Any:
            return self.in_thread(lambda: self._build(account, job, admission, now, key,
                                                      origin)).addCallback(self._created, account)

        if key is None:
            return self.in_thread(lambda: self._build(account, read_job(), admission, now,
                                                      origin=origin)) \
                .addCallback(self._created, account)

        def unless_kept(job: ValidJob) -> Any:
            # The body is read first: a kept answer is compared with its fingerprint.
            return self.read(idempotency.lookup, account.id, key).addCallback(
                lambda kept: kept if kept is not None else build(job))

        return self.in_thread(read_job).addCallback(unless_kept)

    def _build(self, account: Account, job: ValidJob, admission: Admission,
               now: float, key: str | None = None,
               origin: tuple[str, str | None] = ("api", None)) -> Any:
        """On a pool thread: check, render and price the rows as they come, and write
        them a batch at a time, each batch waiting for the previous commit. A bad row
        is reported with its number and skipped. Without the points for a batch, or
        on any failure, the job is taken back whole (AbortJob): nothing half-made."""
        job_id = new_id(now)
        references = ConcatReferences(bits=16)
        batch: list[ops.Accept | ops.JobMessage] = []
        errors: list[dict[str, Any]] = []
        counts = {"messages": 0, "rejected": 0, "points": 0, "batches": 0}
        scheduled = job.start_at is not None and job.start_at > now
        state = JobState.SCHEDULED if scheduled else JobState.RUNNING

        def put(op: Any) -> Any:
            return blockingCallFromThread(self.reactor, self.put, op)

        # Pipelined (issue 14): up to IN_FLIGHT batches are with the writer while the
        # next one is checked and rendered, so that the writer always has the next
        # batch at hand (with one, it waited for each). A batch's outcome (e.g. the
        # balance ran out) is taken before the one after the next is handed over;
        # what was written after a failed batch goes with the job (AbortJob takes
        # back every batch it finds, and refunds their points). The writer keeps the
        # order of what it is given.
        in_flight: list[Future[Any]] = []

        def settle_in_flight(keep: int = 0) -> None:
            while len(in_flight) > keep:
                in_flight.pop(0).result()

        extras = job.extras  # issue 12: rows may override ref_id and params
        job_params = params_json(extras.params)
        job_message = admission.job_message
        make_id = IdBlocks(now, JOB_BATCH)

        def flush() -> None:
            settle_in_flight(IN_FLIGHT - 1)
            in_flight.append(self._hand_over(ops.CreateJob(
                account.id, job_id, job.name, job.sender, job.template, job.throughput,
                job.start_at, tuple(batch), now, description=job.description,
                ref_id=extras.ref_id, params=job_params, partner=extras.partner,
                callback_id=extras.callback, shorten_links=extras.shorten_links,
                channel=origin[0], sent_by=origin[1])))
            counts["batches"] += 1
            batch.clear()

        try:
            for number, row in job.recipients:
                try:
                    one = validation.job_row(row, job.template, extras)
                    message = job_message(
                        account.id, job.sender, one.recipient, one.country, one.text,
                        references, now, job_id, one.ref_id,
                        job_params if one.params is extras.params
                        else params_json(one.params), origin[1], extras.partner,
                        extras.callback, extras.shorten_links, make_id)
                except ApiError as exc:
                    counts["rejected"] += 1
                    if len(errors) < validation.MAX_ROW_ERRORS:
                        errors.append({"row": number, "field": exc.field, "error": exc.message})
                    continue
                batch.append(message)
                counts["messages"] += 1
                counts["points"] += message.points
                if len(batch) >= JOB_BATCH:
                    flush()
            if not counts["messages"]:
                raise ApiError(400, f"no valid recipients ({counts['rejected']} rows "
                               f"refused; first: {errors[0]['error'] if errors else 'none'})",
                               "recipients")
            if batch:
                flush()
            settle_in_flight()
            summary = {"id": job_id, "state": state, "messages": counts["messages"],
                       "points": counts["points"], "rejected_rows": counts["rejected"],
                       "row_errors": errors}
            claim = None if key is None else idempotency.Claim(
                account.id, key, job.fingerprint or "", 201, json_body(summary).decode())
            finished = put(ops.FinishJob(job_id, state, counts["rejected"],
                                         json.dumps(errors) if errors else None, claim))
            if isinstance(finished, idempotency.Stored):
                put(ops.AbortJob(job_id))  # a retry elsewhere made this job first
                return finished
        except ops.InsufficientBalance as exc:
            _drain(in_flight)
            put(ops.AbortJob(job_id))
            raise ApiError(402, f"insufficient balance for the job: {exc}; nothing was "
                           "created", "balance") from None
        except BaseException:
            _drain(in_flight)
            if counts["batches"]:
                put(ops.AbortJob(job_id))
            raise
        return dict(summary, throughput=job.throughput, start_at=job.start_at)

    def _hand_over(self, op: Any) -> Future[Any]:
        """From a pool thread: give `op` to the writer without waiting for its commit."""
        future: Future[Any] = Future()

        def put() -> None:
            self.put(op).addCallbacks(future.set_result,
                                      lambda failure: future.set_exception(failure.value))

        self.reactor.callFromThread(put)
        return future

    def _created(self, summary: Any, account: Account) -> Any:
        if isinstance(summary, idempotency.Stored):
            return summary
        log.info("job=%s created: %d messages, %d rows refused, state %s", summary["id"],
                 summary["messages"], summary["rejected_rows"], summary["state"])
        cap, start_at = summary.pop("throughput"), summary.pop("start_at")
        if summary["state"] == JobState.RUNNING:
            self._feed(summary["id"], account.id, cap)
        elif start_at is not None:
            self._schedule(summary["id"], account.id, cap, start_at)
        return summary

    # Reading and acting ------------------------------------------------------------------

    def get(self, account: Account, job_id: str) -> defer.Deferred[Any]:
        if not validation.looks_like_id(job_id):
            return defer.succeed(None)

        def live(job: dict[str, Any] | None) -> Any:
            if job is None:
                return None
            rate = self.dispatcher.job_rate(job_id)
            queued = job["counts"].get(Status.QUEUED, 0)
            job["rate"] = round(rate, 1)
            job["eta_seconds"] = round(queued / rate) if rate > 0 else None
            return job

        return self.read(queries.get_job, account.id, job_id).addCallback(live)

    def act(self, account: Account, job_id: str, action: str) -> defer.Deferred[Any]:
        if not validation.looks_like_id(job_id):
            return defer.succeed(None)
        feeder = self.dispatcher.feeders.get(job_id)
        own = feeder is not None and feeder.account_id == account.id
        if action == "pause":
            if own:
                self.dispatcher.pause_job(job_id, True)  # at once, before the commit
            return self.put(ops.SetJobState(job_id, account.id, JobState.PAUSED,
                                            (JobState.RUNNING, JobState.SCHEDULED))) \
                .addCallback(self._answer, job_id)
        if action == "resume":
            return self.put(ops.SetJobState(job_id, account.id, JobState.RUNNING,
                                            (JobState.PAUSED,))) \
                .addCallback(self._resumed, account, job_id)
        busy = self.dispatcher.drop_job(job_id) if own else frozenset()

        def stopped(result: tuple[int, int] | None) -> Any:
            if result is None:
                return None
            log.info("job=%s stopped: %d messages cancelled, %d points refunded", job_id,
                     *result)
            return {"id": job_id, "state": JobState.STOPPED, "cancelled": result[0],
                    "refunded": result[1]}

        return self.put(ops.StopJob(job_id, account.id, busy, self.owner())) \
            .addCallback(stopped)

    def _resumed(self, state: str | None, account: Account, job_id: str) -> Any:
        if state != JobState.RUNNING:
            return self._answer(state, job_id)
        if job_id in self.dispatcher.feeders:
            self.dispatcher.pause_job(job_id, False)
            return self._answer(state, job_id)

        def start(job: dict[str, Any] | None) -> Any:
            # A scheduled job paused before its start: it starts now, capped.
            if job is not None and job_id not in self.dispatcher.feeders:
                self._feed(job_id, account.id, job["throughput"])
            return self._answer(state, job_id)

        return self.read(queries.get_job, account.id, job_id).addCallback(start)

    @staticmethod
    def _answer(state: str | None, job_id: str) -> Any:
        return None if state is None else {"id": job_id, "state": state}

    # Completion --------------------------------------------------------------------------

    def _check(self) -> None:
        """Once a second while jobs are fed: completion of jobs fully sent."""
        if not self.dispatcher.feeders:
            if self._loop is not None and self._loop.running:
                self._loop.stop()
            return
        for job_id in list(self.dispatcher.feeders):
            if job_id in self._checking or not self.dispatcher.job_drained(job_id):
                continue
            self._checking.add(job_id)
            self.read(queries.job_queued_count, job_id).addCallback(
                self._maybe_complete, job_id).addBoth(
                lambda _, j=job_id: self._checking.discard(j))

    def _maybe_complete(self, queued: int, job_id: str) -> Any:
        feeder = self.dispatcher.feeders.get(job_id)
        if queued or feeder is None:
            return None

        def done(state: str | None) -> None:
            if self.dispatcher.feeders.get(job_id) is feeder:
                self.dispatcher.drop_job(job_id)
            if state == JobState.COMPLETED:
                log.info("job=%s completed", job_id)

        return self.put(ops.SetJobState(job_id, feeder.account_id, JobState.COMPLETED,
                                        (JobState.RUNNING,))).addCallback(done)


def _drain(in_flight: list[Future[Any]]) -> None:
    """Wait for the batches handed over (their errors are the caller's to report, or
    already reported): the job is taken back only after they are written."""
    while in_flight:
        with contextlib.suppress(Exception):  # the first failure is already raised
            in_flight.pop(0).result()
