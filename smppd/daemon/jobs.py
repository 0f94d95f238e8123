"""Bulk jobs: creation (rows checked and priced off the reactor), state changes that
survive a restart, and handing each running job to the dispatcher as a feeder.

A pause takes effect in the dispatcher at once, before its write commits ("stops new
submits at once"); a stop first takes the job from the dispatcher, then cancels in
one transaction every message that is not being sent at that moment.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC
from typing import Any

from twisted.internet import defer, task
from twisted.internet.threads import blockingCallFromThread

from ..api import validation
from ..api.http import API_CREDENTIAL, Account
from ..api.validation import ApiError, ValidJob
from ..ids import new_id
from ..protocol.segmentation import ConcatReferences
from ..store import operations as ops
from ..store import queries
from .dispatcher import DEFAULT_ROUTE, NO_ROUTE, JobFeeder

log = logging.getLogger("smppd.jobs")
JOB_BATCH = 10_000  # messages per transaction while a job is created
RUNNING, SCHEDULED, PAUSED, STOPPED, COMPLETED = (
    "running", "scheduled", "paused", "stopped", "completed")


class JobManager:
    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.dispatcher = daemon.dispatcher
        self.reactor = daemon.reactor
        self._checking: set[str] = set()
        self._loop: task.LoopingCall | None = None
        self.dispatcher.load_job = lambda job_id, after, limit: daemon._read(
            queries.load_job_queued, job_id, after, limit)

    # Start and stop --------------------------------------------------------------------

    @defer.inlineCallbacks
    def restore(self) -> Any:
        """Feed the running jobs again after a start; paused ones stay paused."""
        for job_id in (yield self.daemon._read(queries.jobs_in_state, "creating")):
            refunded = yield self.daemon.writer.put(ops.AbortJob(job_id))
            log.warning("job=%s was being created when smppd stopped: removed, %d points "
                        "refunded", job_id, refunded)
        for job_id, account_id, state, cap, start_at in (
                yield self.daemon._read(queries.active_jobs)):
            if state == SCHEDULED and start_at is not None:
                self._schedule(job_id, account_id, cap,
                               start_at.replace(tzinfo=UTC).timestamp())
            else:
                self._feed(job_id, account_id, cap, paused=state == PAUSED)
        self._loop = task.LoopingCall(self._check)
        self._loop.start(1.0, now=False)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def _feed(self, job_id: str, account_id: int, cap: float | None,
              paused: bool = False) -> None:
        self.dispatcher.add_job(JobFeeder(job_id, account_id, cap, self.reactor.seconds(),
                                          paused))

    def _schedule(self, job_id: str, account_id: int, cap: float | None,
                  start_at: float) -> None:
        delay = max(0.0, start_at - time.time())
        self.reactor.callLater(delay, self._start_scheduled, job_id, account_id, cap)

    def _start_scheduled(self, job_id: str, account_id: int, cap: float | None) -> None:
        def started(state: str | None) -> None:
            if state == RUNNING and job_id not in self.dispatcher.feeders:
                log.info("job=%s started (scheduled)", job_id)
                self._feed(job_id, account_id, cap)

        self.daemon.writer.put(ops.SetJobState(job_id, account_id, RUNNING, (SCHEDULED,))) \
            .addCallbacks(started, lambda f: log.error("job=%s not started: %s", job_id,
                                                       f.getErrorMessage()))

    # Creation --------------------------------------------------------------------------

    def create(self, account: Account,
               read_job: Callable[[], ValidJob]) -> defer.Deferred[Any]:
        """`read_job` parses and checks the request body; it runs on the pool thread
        with the rows, not on the reactor."""
        if not self.daemon.accepting:
            return defer.fail(ApiError(503, "smppd is shutting down; retry later"))
        return self.daemon._in_thread(lambda: self._build(account, read_job())).addCallback(
            self._created, account)

    def _build(self, account: Account, job: ValidJob) -> dict[str, Any]:
        """On a pool thread: check, render and price the rows as they come, and write
        them a batch at a time, each batch waiting for the previous commit. A bad row
        is reported with its number and skipped. Without the points for a batch, or
        on any failure, the job is taken back whole (AbortJob): nothing half-made."""
        now = time.time()
        job_id = new_id(now)
        references = ConcatReferences(bits=16)
        batch: list[ops.Accept] = []
        errors: list[dict[str, Any]] = []
        counts = {"messages": 0, "rejected": 0, "points": 0, "batches": 0}
        state = SCHEDULED if job.start_at is not None and job.start_at > now else RUNNING

        def put(op: Any) -> Any:
            return blockingCallFromThread(self.reactor, self.daemon.writer.put, op)

        def flush() -> None:
            put(ops.CreateJob(account.id, job_id, job.name, job.sender, job.template,
                              job.throughput, job.start_at, list(batch), now,
                              description=job.description))
            counts["batches"] += 1
            batch.clear()

        try:
            for number, row in job.recipients:
                try:
                    digits, region, text = validation.job_row(row, job.template)
                    route = self.dispatcher.route_for(digits)
                    if route == NO_ROUTE:
                        raise ApiError(400, f"no route to +{digits}", "to")
                    settings = self.dispatcher.text_for(route)
                    info = validation.text_info(text, settings.profile, settings.policy)
                except ApiError as exc:
                    counts["rejected"] += 1
                    if len(errors) < validation.MAX_ROW_ERRORS:
                        errors.append({"row": number, "field": exc.field, "error": exc.message})
                    continue
                points = self.daemon._price(digits) * info.parts
                reference = references.next(digits) if info.parts > 1 else 0
                batch.append(ops.Accept(
                    account.id, new_id(now), job.sender, digits, region, text,
                    info.encoding.value, info.parts, points, reference,
                    None if route == DEFAULT_ROUTE else route, None, None, now, job_id,
                    channel="job", sent_by=API_CREDENTIAL, partner=job.partner))
                counts["messages"] += 1
                counts["points"] += points
                if len(batch) >= JOB_BATCH:
                    flush()
            if not counts["messages"]:
                raise ApiError(400, f"no valid recipients ({counts['rejected']} rows "
                               f"refused; first: {errors[0]['error'] if errors else 'none'})",
                               "recipients")
            if batch:
                flush()
            put(ops.FinishJob(job_id, state, counts["rejected"],
                              json.dumps(errors) if errors else None))
        except ops.InsufficientBalance as exc:
            put(ops.AbortJob(job_id))
            raise ApiError(402, f"insufficient balance for the job: {exc}; nothing was "
                           "created", "balance") from None
        except BaseException:
            if counts["batches"]:
                put(ops.AbortJob(job_id))
            raise
        return {"id": job_id, "state": state, "messages": counts["messages"],
                "points": counts["points"], "rejected_rows": counts["rejected"],
                "row_errors": errors, "throughput": job.throughput, "start_at": job.start_at}

    def _created(self, summary: dict[str, Any], account: Account) -> dict[str, Any]:
        log.info("job=%s created: %d messages, %d rows refused, state %s", summary["id"],
                 summary["messages"], summary["rejected_rows"], summary["state"])
        cap, start_at = summary.pop("throughput"), summary.pop("start_at")
        if summary["state"] == RUNNING:
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
            feeder = self.dispatcher.feeders.get(job_id)
            rate = feeder.rate if feeder is not None and not feeder.paused else 0.0
            queued = job["counts"].get("queued", 0)
            job["rate"] = round(rate, 1)
            job["eta_seconds"] = round(queued / rate) if rate > 0 else None
            return job

        return self.daemon._read(queries.get_job, account.id, job_id).addCallback(live)

    def act(self, account: Account, job_id: str, action: str) -> defer.Deferred[Any]:
        if not validation.looks_like_id(job_id):
            return defer.succeed(None)
        feeder = self.dispatcher.feeders.get(job_id)
        own = feeder is not None and feeder.account_id == account.id
        put = self.daemon.writer.put
        if action == "pause":
            if own:
                self.dispatcher.pause_job(job_id, True)  # at once, before the commit
            return put(ops.SetJobState(job_id, account.id, PAUSED, (RUNNING, SCHEDULED))) \
                .addCallback(self._answer, job_id)
        if action == "resume":
            def resumed(state: str | None) -> Any:
                if state != RUNNING:
                    return self._answer(state, job_id)
                if job_id in self.dispatcher.feeders:
                    self.dispatcher.pause_job(job_id, False)
                    return self._answer(state, job_id)

                def start(job: dict[str, Any] | None) -> Any:
                    # A scheduled job paused before its start: it starts now, capped.
                    if job is not None and job_id not in self.dispatcher.feeders:
                        self._feed(job_id, account.id, job["throughput"])
                    return self._answer(state, job_id)

                return self.daemon._read(queries.get_job, account.id, job_id).addCallback(
                    start)

            return put(ops.SetJobState(job_id, account.id, RUNNING, (PAUSED,))) \
                .addCallback(resumed)
        busy = self.dispatcher.drop_job(job_id) if own else frozenset()

        def stopped(result: tuple[int, int] | None) -> Any:
            if result is None:
                return None
            log.info("job=%s stopped: %d messages cancelled, %d points refunded", job_id,
                     *result)
            return {"id": job_id, "state": STOPPED, "cancelled": result[0],
                    "refunded": result[1]}

        return put(ops.StopJob(job_id, account.id, busy)).addCallback(stopped)

    @staticmethod
    def _answer(state: str | None, job_id: str) -> Any:
        return None if state is None else {"id": job_id, "state": state}

    # Completion --------------------------------------------------------------------------

    def _check(self) -> None:
        """Once a second: rates for GET, and completion of jobs fully sent."""
        now = self.reactor.seconds()
        for job_id, feeder in list(self.dispatcher.feeders.items()):
            feeder.update_rate(now)
            if job_id in self._checking or not self.dispatcher.job_drained(job_id):
                continue
            self._checking.add(job_id)
            self.daemon._read(queries.job_queued_count, job_id).addCallback(
                self._maybe_complete, job_id, feeder).addBoth(
                lambda _, j=job_id: self._checking.discard(j))

    def _maybe_complete(self, queued: int, job_id: str, feeder: JobFeeder) -> Any:
        if queued:
            return None

        def done(state: str | None) -> None:
            if self.dispatcher.feeders.get(job_id) is feeder:
                del self.dispatcher.feeders[job_id]
            if state == COMPLETED:
                log.info("job=%s completed", job_id)

        return self.daemon.writer.put(ops.SetJobState(
            job_id, feeder.account_id, COMPLETED, (RUNNING,))).addCallback(done)
