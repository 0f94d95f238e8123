"""The reports service: requests in, files out, on threads of its own.

Where work runs, and why:
- Report rendering runs on its own thread pools, never on the reactor and never on
  the store's writer: a ten-second report holds up neither the API nor sending.
  Reports the client waits for (small ones) have an `interactive` pool so they
  do not queue behind a big queued one on the `background` pool.
- Every report is a row first (`reports`), so it survives a restart: a running
  report carries a lease its daemon renews as it progresses; at start a daemon
  queues again what it was running, and any daemon takes over a report whose lease
  ran out (another instance died). Taking is a compare-and-set on the row.
- Periodic runs make their report row with a unique run key (schedule id + period
  start): two daemons, or one that restarted half way, make one report per run.
- E-mail is an outbox on the same rows: pending, tried with back-off, sent or failed,
  with the last error shown on the report.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy.exc import IntegrityError
from twisted.internet import defer, task
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from ..checks import ApiError
from ..config import ReportSettings, Settings
from ..explain import explain_error
from ..ids import looks_like_id, new_id
from ..store import database
from . import mail, periods
from . import store as rs
from .catalog import TYPES
from .documents import Context
from .periods import Period, utc_naive
from .queries import errors_seen, jobs, rollup_count
from .render import CONTENT_TYPES, write_csv, write_numbers_csv, write_xml
from .runner import LEASE_SECONDS, Cancelled, Progress, aware, produce, wall

log = logging.getLogger("smppd.reports")
SWEEP_SECONDS = 15.0  # several instances: what another one queued, or left when it died
MAIL_SECONDS = 10.0
# One instance queues, finishes and retries every report itself and wakes the sweep and
# the mail at once (see _done, queue and _mail); what falls due later (an e-mail's
# retry, a lease that runs out, also after a restart) it reads from the store after
# each look and sets a timer for (_wake_at). So its polls are only a safety net: an
# idle daemon should idle (issue 13).
ALONE_POLL_SECONDS = 300.0
SOONEST_LOOK = 1.0  # seconds: a backlog (more due than one look takes) is read this often
MAX_LOOK_DELAY = 3600.0  # alone, with a schedule, they are looked at at least hourly


def default_directory(database: str) -> Path:
    """Next to the SQLite file; /var/lib/smppd/reports for a database server."""
    if database.startswith("sqlite") and ":///" in database:
        path = database.split(":///", 1)[1]
        if path and path != ":memory:":
            return Path(path).parent / "reports"
    return Path("/var/lib/smppd/reports")


class ReportService:
    def __init__(self, engine: Any, settings: Settings, reactor: Any,
                 read: Callable[..., defer.Deferred[Any]], clock: Any = None,
                 registry: Any = None) -> None:
        self.engine = engine
        # Reports read for seconds: on SQLite their reads must not take the write lock
        # (the daemon's engine begins every transaction IMMEDIATE, for the writer).
        self.reader = database.make_engine(settings.database, pool_size=2, immediate=False)
        self.reactor = reactor
        self.clock = clock or reactor  # schedules' time; tests give a task.Clock
        self.read = read  # the daemon's read pool: fn(conn, *args) off the reactor
        self.settings = settings
        self.config: ReportSettings = settings.reports
        self.directory = Path(self.config.directory) if self.config.directory \
            else default_directory(settings.database)
        self.owner = f"{socket.gethostname()}:{os.path.abspath(settings.path)}"[:160]
        self.interactive = ThreadPool(minthreads=0, maxthreads=2, name="smppd-report")
        self.background = ThreadPool(minthreads=0, maxthreads=self.config.workers,
                                     name="smppd-report-queue")
        self.accounts: dict[int, Any] = {}  # account id -> api Account
        self.running: set[str] = set()
        self.workers: set[subprocess.Popen[str]] = set()
        self.isolate = True  # queued reports render in a worker process (worker.py)
        self.stopping = False
        self.duty: Callable[[], bool] = lambda: True  # issue 14: one instance schedules
        self.shared = False  # other instances share the store (set_duty)
        # Alone, this daemon makes every schedule itself, so it knows when the next run
        # is due and reads the schedules then, not every schedule_check (issue 13).
        self._next_run: float | None = None  # epoch seconds; None: read to find out
        self._schedules_made = 0  # schedules created: a read begun before one is stale
        self._timers: dict[str, Any] = {}  # "sweep"/"mail" -> the DelayedCall of _wake_at
        # Alone: the DelayedCall (on self.clock) of the next look at the schedules, and
        # while a look runs, those waiting for it (a second look at once would only
        # race the first for the same runs).
        self._schedule_timer: Any = None
        self._looking: list[defer.Deferred[Any]] | None = None
        self._loops: list[task.LoopingCall] = []
        self.made = Counter("smppd_reports_total", "Reports finished, by type, format and "
                            "result (ready, failed)", ["type", "format", "result"],
                            registry=registry)
        self.seconds = Histogram("smppd_report_seconds", "Time to render a report",
                                 ["type"], registry=registry,
                                 buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0))
        self.mails = Counter("smppd_report_emails_total", "Report e-mail attempts by result",
                             ["result"], registry=registry)

    # Life --------------------------------------------------------------------------------

    def set_accounts(self, accounts: dict[str, Any]) -> None:
        self.accounts = {account.id: account for account in accounts.values()}

    def set_duty(self, duty: Callable[[], bool]) -> None:
        """Several instances (issue 14): make the periodic runs only while `duty()`
        holds, and poll for what the others queue."""
        self.duty = duty
        self.shared = True

    def timezone(self, account_id: int) -> Any:
        account = self.accounts.get(account_id)
        name = "UTC"
        if account is not None:
            for configured in self.settings.accounts:
                if configured.name == account.name:
                    name = configured.timezone
        return periods.zone(name)

    @defer.inlineCallbacks
    def start(self) -> Any:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.interactive.start()
        self.background.start()
        requeued = yield self._write(rs.requeue_own, self.owner)
        if requeued:
            log.warning("reports: %d report(s) were running when smppd stopped; run again",
                        requeued)
        sweep, mail = (SWEEP_SECONDS, MAIL_SECONDS) if self.shared else \
            (ALONE_POLL_SECONDS, ALONE_POLL_SECONDS)
        loops: list[tuple[float, Callable[[], Any], Any]] = [
            (sweep, self.sweep, self.reactor), (mail, self.mail_due, self.reactor),
            (3600.0, self.expire, self.reactor)]
        if self.shared:  # another instance may make schedules: look every schedule_check
            loops.append((self.config.schedule_check, self.run_schedules, self.clock))
        else:  # alone: look now, then when the next run is due (_look_later)
            self.run_schedules()
        for interval, fn, clock in loops:
            loop = task.LoopingCall(fn)
            loop.clock = clock
            loop.start(interval, now=True).addErrback(self._loop_failed, fn.__name__)
            self._loops.append(loop)

    def _loop_failed(self, failure: Any, name: str) -> None:
        log.error("reports: %s stopped: %s", name, failure.getErrorMessage())

    def stop(self) -> None:
        """Stop taking work; reports still rendering stop at their next progress step
        and are queued again (the next start runs them)."""
        self.stopping = True
        for loop in self._loops:
            if loop.running:
                loop.stop()
        for timer in (*self._timers.values(), self._schedule_timer):
            if timer is not None and timer.active():
                timer.cancel()

    def join(self) -> None:
        """Blocking (not on the reactor): end the workers, wait for the report threads.
        Reports they were rendering are queued again (at the next start, or by
        another daemon)."""
        for process in list(self.workers):
            process.terminate()
        self.interactive.stop()
        self.background.stop()
        self.reader.dispose()

    def reload(self, settings: Settings) -> None:
        self.settings = settings

    # Threads ---------------------------------------------------------------------------

    def _write(self, fn: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        def run() -> Any:
            with self.engine.begin() as conn:
                return fn(conn, *args)
        return self.read_thread(run)

    def read_thread(self, fn: Callable[[], Any]) -> defer.Deferred[Any]:
        return self.read(lambda _conn: fn())

    def _now(self) -> datetime:
        return utc_naive(self.clock.seconds())

    def _wall(self) -> datetime:
        return wall()

    # Requests --------------------------------------------------------------------------

    def create(self, account: Any, request: dict[str, Any]) -> defer.Deferred[Any]:
        """Resolve the period in the account's zone, check the job or campaign is the
        account's, estimate, and either run now or queue."""
        tz = self.timezone(account.id)
        period = self._period(request, tz)
        report_id = new_id()

        def prepare() -> dict[str, Any]:
            with self.engine.begin() as conn:
                self._check_scope(conn, account.id, request)
                estimate = self._estimate(conn, account.id, request, period)
                queued = request["async"] or estimate > self.config.async_rows
                now = self._wall()
                rs.insert_report(conn, self._row(
                    report_id, account.id, request, period, tz, now,
                    state="queued" if queued else "running",
                    owner=None if queued else self.owner,
                    lease_until=None if queued else now + timedelta(seconds=LEASE_SECONDS),
                    started_at=None if queued else now))
                view = rs.report_view(rs.get_report(conn, account.id, report_id))
                return {"queued": queued, "estimate": estimate, "view": view}

        def prepared(found: dict[str, Any]) -> Any:
            if found["queued"]:
                self.reactor.callLater(0, self.sweep)
                return found["view"]  # as created: queued
            def rendered(ready: bool) -> Any:
                if ready:
                    self.reactor.callLater(0, self.mail_due)
                return self.get(account, report_id)

            return deferToThreadPool(self.reactor, self.interactive, self._render,
                                     report_id, True).addCallback(rendered)

        return self.read_thread(prepare).addCallback(prepared)

    @staticmethod
    def _estimate(conn: Any, account_id: int, request: dict[str, Any],
                  period: Period | None) -> int:
        """How many messages the report reads: a job's or campaign's size, else the
        period's count from the rollups. `daily` reads only the rollups: 0."""
        if request["type"] == "daily":
            return 0
        estimate = TYPES[request["type"]].estimate
        if estimate is not None:
            return estimate(conn, account_id, request, period)
        job_ids = [request["job"]] if request.get("job") else \
            rs.campaign_jobs(conn, account_id, request["campaign"]) \
            if request.get("campaign") else None
        if job_ids is not None:
            return sum(row.recipients for row in jobs(conn, account_id, job_ids=job_ids))
        if period is None:
            return 0
        return rollup_count(conn, account_id, period.start_ts, period.end_ts)

    def _period(self, request: dict[str, Any], tz: Any) -> Period | None:
        try:
            if request.get("period"):
                return periods.named(request["period"], tz, self.clock.seconds())
            if request.get("since"):
                return periods.between(request["since"], request["until"], tz)
        except periods.PeriodError as exc:
            raise ApiError(400, str(exc), "period") from None
        return None

    def _check_scope(self, conn: Any, account_id: int, request: dict[str, Any]) -> None:
        if request.get("job") and not rs.own_jobs(conn, account_id, [request["job"]]):
            raise ApiError(404, "no such job", "job")
        if request.get("campaign") and rs.campaign_row(conn, account_id,
                                                       request["campaign"]) is None:
            raise ApiError(404, "no such campaign", "campaign")
        if request.get("poll") and not rs.own_poll(conn, account_id, request["poll"]):
            raise ApiError(404, "no such poll", "poll")

    def _row(self, report_id: str, account_id: int, request: dict[str, Any],
             period: Period | None, tz: Any, now: datetime, **values: Any) -> dict[str, Any]:
        return {"id": report_id, "account_id": account_id, "type": request["type"],
                "format": request["format"], "name": request.get("name"),
                "request": json.dumps(request, separators=(",", ":")),
                "period_start": period.start_utc if period else None,
                "period_end": period.end_utc if period else None, "timezone": tz.key,
                "email": json.dumps(request["email"]) if request.get("email") else None,
                "created_at": now, **values}

    def get(self, account: Any, report_id: str) -> defer.Deferred[Any]:
        if not looks_like_id(report_id):
            return defer.succeed(None)
        return self.read(lambda conn: _view(rs.get_report(conn, account.id, report_id)))

    def list(self, account: Any, limit: int, before: str | None) -> defer.Deferred[Any]:
        return self.read(lambda conn: [rs.report_view(row) for row in
                                       rs.list_reports(conn, account.id, limit, before)])

    def delete(self, account: Any, report_id: str) -> defer.Deferred[Any]:
        if not looks_like_id(report_id):
            return defer.succeed(None)

        def gone(row: Any) -> Any:
            if row is None:
                return None
            _remove(row.file_path)
            return {"id": report_id, "deleted": True}

        return self._write(rs.delete_report, account.id, report_id).addCallback(gone)

    def file(self, account: Any, report_id: str) -> defer.Deferred[Any]:
        """(path, content type, file name) of a ready report; ApiError otherwise."""
        def found(row: Any) -> Any:
            if row is None:
                raise ApiError(404, "no such report", "id")
            if row.state != "ready":
                raise ApiError(409, f"the report is {row.state}"
                               + (f": {row.error}" if row.error else "; try again later"),
                               "id")
            if not row.file_path or not Path(row.file_path).exists():
                raise ApiError(410, "the report's file is gone (expired or removed)", "id")
            return row.file_path, row.content_type, row.file_name

        if not looks_like_id(report_id):
            return defer.fail(ApiError(404, "no such report", "id"))
        return self.read(lambda conn: rs.get_report(conn, account.id, report_id)).addCallback(
            found)

    # Running ---------------------------------------------------------------------------

    def sweep(self) -> defer.Deferred[Any] | None:
        """Start what is queued (and what a dead daemon left running)."""
        if self.stopping:
            return None

        def found(looked: tuple[list[str], datetime | None]) -> None:
            ids, lease_end = looked
            for report_id in ids:
                if report_id not in self.running and not self.stopping:
                    self.running.add(report_id)
                    deferToThreadPool(self.reactor, self.background, self._render,
                                      report_id, False, self.isolate).addBoth(
                        self._done, report_id)
            self._wake_at("sweep", self.sweep, lease_end)

        def look(conn: Any) -> tuple[list[str], datetime | None]:
            return (rs.runnable(conn, self._wall(), self.config.workers * 4),
                    rs.next_lease_end(conn))

        return self.read(look).addCallbacks(
            found, lambda failure: log.error("reports: cannot look for queued reports: %s",
                                             failure.getErrorMessage()))

    def _wake_at(self, name: str, look: Callable[[], Any], due: datetime | None) -> None:
        """Alone, look again when the next thing falls due (not before SOONEST_LOOK, so a
        backlog or a lease being renewed is read once a second at most); with other
        instances the polls look often enough."""
        if self.shared or self.stopping or due is None:
            return
        delay = min(ALONE_POLL_SECONDS,
                    max(SOONEST_LOOK, (due - self._wall()).total_seconds() + 0.01))
        timer = self._timers.get(name)
        if timer is not None and timer.active():
            if timer.getTime() <= self.reactor.seconds() + delay:
                return  # an earlier look is set already
            timer.cancel()
        self._timers[name] = self.reactor.callLater(delay, look)

    def _done(self, result: Any, report_id: str) -> None:
        self.running.discard(report_id)
        if result is True:
            self.reactor.callLater(0, self.mail_due)
        self.reactor.callLater(0, self.sweep)  # a place is free, whatever the result

    def _render(self, report_id: str, claimed: bool, isolated: bool = False) -> bool:
        """On a report thread: claim, render to a temporary file (here, or in a worker
        process when `isolated`), move it in place, mark ready (or failed). Returns
        True when a report became ready."""
        if self.stopping:
            return False
        now = wall()
        with self.engine.begin() as conn:
            if claimed:
                row = rs.report_row(conn, report_id)
            else:
                row = rs.claim(conn, report_id, self.owner, now,
                               now + timedelta(seconds=LEASE_SECONDS))
        if row is None:
            return False
        started = time.monotonic()
        target = self.directory / f"{report_id}.{row.format}"
        partial = target.with_suffix(target.suffix + ".part")
        account = self.accounts.get(row.account_id)
        account_name = account.name if account is not None else str(row.account_id)
        try:
            if isolated:
                rows, name = self._in_worker(row, account_name, partial)
            else:
                progress = Progress(self.engine, report_id, self.owner,
                                    lambda: self.stopping)
                rows, name = produce(self.reader, row, account_name, partial, progress)
            os.replace(partial, target)
        except Cancelled:
            _remove(str(partial))
            if self.stopping:  # run again at the next start (or by another daemon)
                with self.engine.begin() as conn:
                    rs.finish(conn, report_id, self.owner, {"state": "queued", "owner": None,
                                                            "lease_until": None})
            return False
        except Exception as exc:  # a report's failure is shown on it, not raised
            _remove(str(partial))
            if not isinstance(exc, ApiError):
                log.error("reports: report %s failed: %s", report_id, exc,
                          exc_info=not isinstance(exc, WorkerFailed))
            message = exc.message if isinstance(exc, ApiError) else f"{type(exc).__name__}: {exc}"
            done = wall()
            self.made.labels(row.type, row.format, "failed").inc()
            with self.engine.begin() as conn:
                rs.finish(conn, report_id, self.owner, {
                    "state": "failed", "error": message[:1000], "finished_at": done,
                    "lease_until": None,
                    "expires_at": done + timedelta(days=self.config.expire_days)})
            return False
        done = wall()
        values = {"state": "ready", "progress": 1.0, "rows": rows, "file_path": str(target),
                  "file_size": target.stat().st_size, "file_name": name,
                  "content_type": CONTENT_TYPES[row.format], "finished_at": done,
                  "lease_until": None,
                  "expires_at": done + timedelta(days=self.config.expire_days)}
        if row.email:
            values.update(email_state="pending", email_next_at=done, email_error=None)
        with self.engine.begin() as conn:
            if not rs.finish(conn, report_id, self.owner, values):
                _remove(str(target))  # deleted while it ran
                return False
        self.made.labels(row.type, row.format, "ready").inc()
        self.seconds.labels(row.type).observe(time.monotonic() - started)
        log.info("reports: %s %s report %s ready: %d rows, %d bytes in %.1f s%s", row.type,
                 row.format, report_id, rows, values["file_size"], time.monotonic() - started,
                 " (worker process)" if isolated else "")
        return True

    def _in_worker(self, row: Any, account_name: str, path: Path) -> tuple[int, str]:
        """Render in `python -m smppd.reports.worker` and wait (on this pool thread)."""
        job = {"database": self.settings.database, "report": row.id, "owner": self.owner,
               "account": account_name, "path": str(path)}
        process = subprocess.Popen([sys.executable, "-m", "smppd.reports.worker"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        self.workers.add(process)
        try:
            out, err = process.communicate(json.dumps(job))
        finally:
            self.workers.discard(process)
        answer = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        if process.returncode == 0:
            return int(answer["rows"]), str(answer["name"])
        if process.returncode == 2:
            raise ApiError(400, answer.get("error", "the report failed"))
        if process.returncode == 3 or self.stopping:
            raise Cancelled()
        last = (err.strip().splitlines() or [f"exit status {process.returncode}"])[-1]
        raise WorkerFailed(f"the report worker failed: {last}")

    # Periodic reports ------------------------------------------------------------------

    def create_schedule(self, account: Any, request: dict[str, Any]) -> defer.Deferred[Any]:
        tz = self.timezone(account.id)
        schedule_id = new_id()
        now = self.clock.seconds()
        next_run = periods.boundary_after(request["every"], tz, now)

        def insert() -> dict[str, Any]:
            with self.engine.begin() as conn:
                self._check_scope(conn, account.id, request)
                return rs.schedule_view(rs.insert_schedule(
                    conn, schedule_id, account.id, request["every"],
                    json.dumps(request, separators=(",", ":")),
                    utc_naive(next_run.timestamp()), utc_naive(now)))

        def inserted(view: dict[str, Any]) -> dict[str, Any]:
            self._schedules_made += 1
            self._next_run = None
            self._look_later()  # at once: the new schedule's first run is learnt
            return view

        return self.read_thread(insert).addCallback(inserted)

    def list_schedules(self, account: Any) -> defer.Deferred[Any]:
        return self.read(lambda conn: [rs.schedule_view(row) for row in
                                       rs.list_schedules(conn, account.id)])

    def delete_schedule(self, account: Any, schedule_id: str) -> defer.Deferred[Any]:
        if not looks_like_id(schedule_id):
            return defer.succeed(None)

        def remove(conn: Any) -> Any:
            if not rs.delete_schedule(conn, account.id, schedule_id):
                return None
            return {"id": schedule_id, "deleted": True}

        return self._write(remove)

    def run_schedules(self) -> defer.Deferred[Any] | None:
        """Make the reports of every run that is due (catching up missed ones). Alone,
        this runs when the next run is due (or a schedule was made), not every
        schedule_check: an idle daemon woke once a minute for it (issue 13)."""
        if self.stopping or not self.duty():
            return None  # issue 14: another instance makes the periodic runs
        if self._looking is not None:  # a look is running: this one is that one
            waiter: defer.Deferred[Any] = defer.Deferred()
            self._looking.append(waiter)
            return waiter
        now = self.clock.seconds()
        if not self.shared and self._next_run is not None and now < self._next_run:
            self._look_later()
            return None
        generation = self._schedules_made
        failed = [False]

        def run() -> tuple[int, datetime | None]:
            count = self._make_runs(now)
            with self.engine.connect() as conn:
                return count, rs.first_next_run(conn)

        def made(found: tuple[int, datetime | None]) -> None:
            count, next_run = found
            if count:
                log.info("reports: %d periodic report(s) queued", count)
                self.sweep()
            if generation == self._schedules_made:  # no schedule was made meanwhile
                self._next_run = float("inf") if next_run is None \
                    else next_run.replace(tzinfo=UTC).timestamp()

        def not_made(failure: Any) -> None:
            failed[0] = True
            # The next run is not known any more (it may be the one that failed, now
            # past): looked again after schedule_check, not at once and over and over.
            self._next_run = None
            log.error("reports: periodic runs failed: %s", failure.getErrorMessage())

        def looked(result: Any) -> None:
            if isinstance(result, Failure):  # from `made` itself: said, and looked again
                not_made(result)
            waiting, self._looking = self._looking or [], None
            self._look_later(self.config.schedule_check if failed[0] else 0.0)
            for waiter in waiting:
                waiter.callback(None)

        self._looking = []
        return self.read_thread(run).addCallbacks(made, not_made).addBoth(looked)

    def _look_later(self, unknown: float = 0.0) -> None:
        """Alone: set the timer for the next look at the schedules, at the next run
        (at most MAX_LOOK_DELAY away, so a clock that jumped is noticed within the
        hour), or after `unknown` s when the next run is not known (a schedule made
        during a look, or a look that failed). Without any schedule, no timer."""
        if self.shared or self.stopping:
            return
        if self._next_run is None:
            delay = unknown
        elif self._next_run == float("inf"):
            delay = None  # no schedule: the next one made sets the timer
        else:
            delay = min(MAX_LOOK_DELAY, max(0.0, self._next_run - self.clock.seconds()))
        timer = self._schedule_timer
        if timer is not None and timer.active():
            if delay is not None and timer.getTime() <= self.clock.seconds() + delay:
                return  # one as early is set already
            timer.cancel()
        self._schedule_timer = None if delay is None else \
            self.clock.callLater(delay, self.run_schedules)

    def _make_runs(self, now: float, catch_up: int = 62) -> int:
        made = 0
        with self.engine.connect() as conn:
            due = rs.due_schedules(conn, utc_naive(now))
        for schedule in due:
            request = json.loads(schedule.request)
            tz = self.timezone(schedule.account_id)
            boundary = aware(schedule.next_run, tz)
            for _ in range(catch_up):
                if boundary.timestamp() > now:
                    break
                period = periods.ending_at(schedule.every, tz, boundary)
                run_key = f"{schedule.id}:{period.start_utc:%Y%m%dT%H%M}"
                report = {k: v for k, v in request.items() if k != "every"} | {"async": True}
                try:
                    with self.engine.begin() as conn:
                        rs.insert_report(conn, self._row(
                            new_id(), schedule.account_id, report, period, tz, self._wall(),
                            state="queued", schedule_id=schedule.id, run_key=run_key))
                    made += 1
                except IntegrityError:
                    pass  # this run's report exists already (another daemon, or a restart)
                boundary = periods.boundary_after(schedule.every, tz, boundary.timestamp())
            with self.engine.begin() as conn:
                rs.advance_schedule(conn, schedule.id, schedule.next_run,
                                    utc_naive(boundary.timestamp()), utc_naive(now))
        return made

    # E-mail ------------------------------------------------------------------------------

    def mail_due(self) -> defer.Deferred[Any] | None:
        if self.stopping or self.config.smtp is None:
            return None

        def found(looked: tuple[list[str], datetime | None]) -> None:
            ids, next_at = looked
            for report_id in ids:
                deferToThreadPool(self.reactor, self.interactive, self._mail,
                                  report_id).addErrback(
                    lambda failure: log.error("reports: e-mail failed: %s",
                                              failure.getErrorMessage()))
            self._wake_at("mail", self.mail_due, next_at)

        def look(conn: Any) -> tuple[list[str], datetime | None]:
            return rs.emails_due(conn, self._wall()), rs.next_email_at(conn)

        return self.read(look).addCallbacks(
            found, lambda failure: log.error("reports: cannot read the e-mail outbox: %s",
                                             failure.getErrorMessage()))

    def _mail(self, report_id: str) -> None:
        smtp = self.config.smtp
        assert smtp is not None
        now = self._wall()
        with self.engine.begin() as conn:
            row = rs.claim_email(conn, report_id, now, now + timedelta(minutes=10))
        if row is None:
            return
        base = (self.config.link_base_url or "").rstrip("/")
        link = f"{base}/v1/reports/{row.id}/file"
        try:
            message = mail.compose(smtp.sender, json.loads(row.email), row,
                                   self.config.attach_max_bytes, link)
            mail.deliver(smtp, message)
        except (mail.MailError, OSError) as exc:
            attempts = row.email_attempts
            final = attempts >= self.config.email_attempts
            self.mails.labels("failed" if final else "retry").inc()
            delay = self.config.email_retry * 2 ** (attempts - 1)
            log.warning("reports: e-mail of report %s failed (attempt %d%s): %s", report_id,
                        attempts, ", giving up" if final else f", again in {delay:g} s", exc)
            with self.engine.begin() as conn:
                rs.email_result(conn, report_id, {
                    "email_state": "failed" if final else "pending",
                    "email_error": str(exc)[:1000],
                    "email_next_at": None if final else now + timedelta(seconds=delay)})
            if not final:
                self.reactor.callFromThread(self.reactor.callLater, delay + 0.01,
                                            self.mail_due)
            return
        self.mails.labels("sent").inc()
        with self.engine.begin() as conn:
            rs.email_result(conn, report_id, {"email_state": "sent", "email_error": None,
                                              "email_next_at": None})
        log.info("reports: report %s e-mailed to %d address(es)", report_id,
                 len(json.loads(row.email)))

    # Expiry ------------------------------------------------------------------------------

    def expire(self) -> defer.Deferred[Any] | None:
        def run(conn: Any) -> int:
            found = rs.expired(conn, self._wall())
            for _id, path in found:
                _remove(path)
            rs.delete_ids(conn, [report_id for report_id, _ in found])
            return len(found)

        def done(count: int) -> None:
            if count:
                log.info("reports: %d expired report(s) removed", count)

        return self._write(run).addCallbacks(
            done, lambda failure: log.error("reports: expiry failed: %s",
                                            failure.getErrorMessage()))

    # Information ---------------------------------------------------------------------------

    def statuses(self, account: Any) -> defer.Deferred[Any]:
        from .. import status as st

        def build(conn: Any) -> dict[str, Any]:
            errors = []
            for code, count in errors_seen(conn, account.id):
                kind, description = explain_error(code)
                errors.append({"code": code, "kind": kind, "description": description,
                               "messages": count})
            return {"statuses": [{"status": name, "final": name in st.FINAL,
                                  "description": st.DESCRIPTIONS[name]} for name in st.ALL],
                    "errors": errors}

        return self.read(build)

    def job_numbers(self, account: Any, job_id: str, group: str,
                    fmt: str) -> defer.Deferred[Any]:
        """A job's number group as a CSV or XML file made on a report thread."""
        from .documents import group_numbers, job

        def make() -> Any:
            with self.reader.connect() as conn:
                if not rs.own_jobs(conn, account.id, [job_id]):
                    raise ApiError(404, "no such job", "id")
                path = self.directory / f"numbers-{new_id()}.{fmt}"
                if fmt == "csv":
                    write_numbers_csv(group_numbers(conn, account.id, [job_id], group), path,
                                      group)
                else:
                    ctx = Context(account.id, account.name, {"type": "job"}, None,
                                  self.timezone(account.id), [job_id],
                                  jobs(conn, account.id, job_ids=[job_id]))
                    doc = job(conn, ctx)
                    if not any(g.key == group for g in doc.groups):
                        doc.groups = []
                    write_xml(doc, path, lambda _n: None, [group])
                return path

        if not looks_like_id(job_id):
            return defer.fail(ApiError(404, "no such job", "id"))
        return deferToThreadPool(self.reactor, self.interactive, make)


    def inbound_csv(self, account: Any, kind: str, where: Any) -> defer.Deferred[Any]:
        """GET /v1/inbound/reports/detailed|daily, the plain CSV endpoints of issue 11:
        the `inbound` (with the senders' phonebook fields) or `inbound-daily` report,
        made by the same builders as POST /v1/reports, on a report thread, into a
        one-off file the HTTP server streams and then removes. `where` (since, until,
        number, sender) gives the scope; an open end closes at the first or last
        message."""
        from .inbound_documents import span

        def make() -> Path:
            tz = self.timezone(account.id)
            request = {"type": "inbound" if kind == "detailed" else "inbound-daily",
                       "format": "csv", "include_contacts": kind == "detailed",
                       "number": where.number, "sender": where.sender}
            path = self.directory / f"inbound-{new_id()}.csv"
            with self.reader.connect() as conn:
                ctx = Context(account.id, account.name, request,
                              span(conn, account.id, tz, where), tz)
                write_csv(TYPES[request["type"]].build(conn, ctx), path, lambda _n: None)
            return path

        return deferToThreadPool(self.reactor, self.interactive, make)


class WorkerFailed(RuntimeError):
    """The worker process ended without a report (its traceback is in its stderr)."""


def _view(row: Any) -> Any:
    return None if row is None else rs.report_view(row)


def _remove(path: str | None) -> None:
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("reports: cannot remove %s: %s", path, exc)

