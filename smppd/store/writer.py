"""The write-behind thread: every write of the daemon goes through here.

The reactor calls `put(op)` and gets a Deferred that fires (on the reactor thread)
once the batch holding `op` is committed. One thread, one connection: whatever
queued up while the previous batch was committing becomes the next batch, so the
batch size follows the load (group commit) with no timer adding latency when idle.
One writer also suits SQLite, which has one writer at a time anyway.

Failures: operations whose caller can retry (an API accept, an unanswered
deliver_sm) fail back to the caller; facts from the SMSC (a message id, an error)
are kept and retried until the database takes them. A batch that fails for one bad
row is re-run one operation at a time, so one row cannot sink the rest; if the
database goes away during that, what is left waits like any batch in an outage.

A database that stops answering (rather than refusing) is bounded twice. Each wait
on it ends by the engine's limits (smppd.store.limits). And the writer is "stalled"
once work has waited `stall_timeout` without a commit: from then on what the
caller can retry is not kept waiting behind the stuck transaction but refused at
once (the API answers 503, deliver_sm ESME_RX_T_APPN), and /readyz says so. While
the store is unavailable and nothing is queued, the writer probes it, so that an
idle daemon becomes ready again without waiting for traffic.

Lingering (issue 14). At a contract rate (100/s, sent in one release a second by
default) the SMSC's responses and receipts for one release come in over a few ms;
written as they come, each becomes a transaction (an fsync on SQLite) and a wake-up
of both threads. So after a quiet period (the writer waited `quiet` s or more for
work), when what arrives is only of the `linger_kinds` (outcomes and receipts, whose
senders wait on nothing but a window slot or a deliver_sm_resp), the writer waits up
to `linger` s from the first one's arrival for the rest, then writes them as one
batch. Anything else (an API accept: a client waits for its 201) ends the wait at
once. Under load the writer is never quiet, so it never lingers.

Group commit under concurrency (issues 13 and 14). With twenty clients posting at
once, "whatever queued during the last commit" came to batches of about eight, and
each batch pays a commit (an fsync, the WAL pages it touched written again, a
wake-up of the reactor): per accept, the writer cost as much CPU as the whole HTTP
exchange. So once the last batch shows concurrency (`gather_after` operations or
more), the writer waits up to `gather` s from the oldest queued operation, or until
`gather_batch` are queued, before it writes. Measured on the intake alone (20,000
POSTs, c=20): CPU per accept 0.39 -> 0.23-0.31 ms and, with fewer commits taking
the GIL and the second core, more requests a second, not fewer. A lone client (batches
of one) never waits: what PostgreSQL's commit_delay/commit_siblings do, for the same
reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from twisted.internet import defer, task

from .batch import BatchApplier
from .child import WriterProcess, WriterProcessGone
from .operations import describe
from .recovery import NoRecovery, Recovery

log = logging.getLogger("smppd.store")
# MAX_BATCH_WHY: a batch of 5,000 MO votes (routing, vote, charged reply each) took over
# `stall_timeout` even on a quiet machine, so the stall guard refused the flood behind it
# (5,388 redeliveries in bench/inbound.py); 1,000 commits well within it at the same
# throughput, and at full sending speed batches are ~40 operations anyway.
SHED_INTERVAL = 0.25  # seconds between looks for waiting work to refuse while stalled

Entry = tuple[Any, "defer.Deferred[Any]", float]  # operation, its Deferred, when put


class WriterStopped(RuntimeError):
    pass


class StoreUnavailable(RuntimeError):
    """The database has not committed anything for too long; the caller may retry."""


def unavailable(exc: BaseException) -> bool:
    """The database, not the operation, is the problem: connection refused, lost or
    timed out, disk full, no free pooled connection."""
    if isinstance(exc, OperationalError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class Writer:
    def __init__(self, engine: Engine, applier: BatchApplier, reactor: Any,
                 max_batch: int = 1000, retry_delay: float = 0.5,  # see MAX_BATCH_WHY
                 on_batch: Callable[[int, float], None] | None = None,
                 stall_timeout: float = 3.0, recovery: Recovery | None = None,
                 clock: Callable[[], float] = time.monotonic, linger: float = 0.0,
                 quiet: float = 0.02, linger_kinds: Sequence[type] = (),
                 gather: float = 0.0, gather_after: int = 4, gather_batch: int = 16,
                 process: WriterProcess | None = None,
                 on_process_gone: Callable[[str], None] | None = None) -> None:
        self.engine = engine
        self.applier = applier
        # Issue 14: the batches' transactions in a process of their own (smppd.store.child);
        # None: in this thread. Should that process die, `on_process_gone` is called
        # (on this thread) with how it ended.
        self.process = process
        self.on_process_gone = on_process_gone
        self.reactor = reactor
        self.max_batch = max_batch
        self.retry_delay = retry_delay
        self.on_batch = on_batch  # (operations, seconds) for metrics, on the writer thread
        self.stall_timeout = stall_timeout
        self.recovery: Recovery = recovery or NoRecovery()
        self.clock = clock
        self.linger = linger
        self.quiet = quiet
        self.linger_kinds = frozenset(linger_kinds)
        self._lingering = False
        self._urgent = False  # something not of linger_kinds came since the writer idled
        self.lingered = 0  # batches gathered by lingering (for tests and metrics)
        self.gather = gather
        self.gather_after = gather_after
        self.gather_batch = min(gather_batch, max_batch)
        self._last_batch = 0  # size of the batch written last: concurrency shows in it
        self._gathering = False
        self.gathered = 0  # batches the writer waited for under concurrency
        self._queue: deque[Entry] = deque()
        self._wakeup = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._shedder: task.LoopingCall | None = None
        self._batch_since: float | None = None  # when the batch being written was taken
        self._current: list[Entry] | None = None  # that batch
        self._claimed = False  # it has a connection: its fate is the database's now
        self.last_commit = clock()
        self.batches = 0
        self.operations = 0
        self.healthy = True

    def start(self) -> None:
        if self.process is not None:
            self.process.start()
        self._thread = threading.Thread(target=self._run, name="smppd-writer", daemon=True)
        self._thread.start()
        self._shedder = task.LoopingCall(self._shed)
        self._shedder.clock = self.reactor

    def put(self, op: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        if self._stopping:
            d.errback(WriterStopped("the store is shutting down"))
            return d
        if not op.retry and self.stalled:
            d.errback(self._stall_error())
            return d
        with self._wakeup:
            self._queue.append((op, d, self.clock()))
            if type(op) not in self.linger_kinds:
                self._urgent = True
                if self._lingering:
                    self._wakeup.notify()
            if len(self._queue) == 1 or \
                    (self._gathering and len(self._queue) >= self.gather_batch):
                self._wakeup.notify()
        if self._shedder is not None and not self._shedder.running:
            # Looks for stalled work only while there is work: an idle daemon does not
            # wake four times a second for nothing (issue 13).
            self._shedder.start(SHED_INTERVAL, now=False)
        return d

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def backlog(self) -> int:
        """Operations not yet written: queued, and in the batch being written."""
        current = self._current
        return len(self._queue) + (len(current) if current is not None else 0)

    def stalled_for(self) -> float:
        """Seconds work has waited with no commit meanwhile (0 when idle)."""
        with self._wakeup:
            oldest = self._queue[0][2] if self._queue else None
        waiting = [t for t in (oldest, self._batch_since) if t is not None]
        if not waiting:
            return 0.0
        return max(0.0, self.clock() - max(min(waiting), self.last_commit))

    @property
    def stalled(self) -> bool:
        # Fast path for the hot put(): a recent commit means nothing is overdue.
        if self.clock() - self.last_commit <= self.stall_timeout:
            return False
        return self.stalled_for() > self.stall_timeout

    @property
    def available(self) -> bool:
        """What /readyz reports for the store."""
        return self.healthy and not self.stalled

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, then end the thread (blocking: not on the reactor)."""
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
        if self._shedder is not None:
            self.reactor.callFromThread(self._stop_shedder)
        if self._thread is not None:
            self._thread.join(timeout)
        if self.process is not None and not self.running:
            # Not under a thread still writing (past `timeout`): the process then ends
            # with the daemon (smppd.store.child).
            self.process.stop()

    # Reactor thread ---------------------------------------------------------------

    def _stop_shedder(self) -> None:
        if self._shedder is not None and self._shedder.running:
            self._shedder.stop()

    def _stall_error(self) -> StoreUnavailable:
        return StoreUnavailable(f"the database has committed nothing for "
                                f"{self.stalled_for():.1f} s")

    def _shed(self) -> None:
        """While stalled, refuse what the caller can retry instead of holding it
        behind the stuck transaction: all of it in the queue, and that of the batch
        being written as long as the writer is still getting a connection for it
        (nothing of that batch has reached the database, so refusing is the truth)."""
        if not self.stalled:
            if not self._queue and self._current is None and self._shedder is not None:
                self._shedder.stop()  # nothing waits; put() starts it again
            return
        error = self._stall_error()
        with self._wakeup:
            shed = _take_retriable(self._queue)
            if self._current is not None and not self._claimed:
                shed += _take_retriable(self._current)
        if shed:
            log.warning("store: %d waiting operation(s) refused: %s", len(shed), error)
            _settle([d for _, d, _ in shed], [error] * len(shed))

    # Writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wakeup:
                idle_since = None
                while not self._queue and not self._stopping and self.healthy:
                    if idle_since is None:
                        idle_since = self.clock()
                        self._urgent = False
                    self._wakeup.wait()
                if self._queue and idle_since is not None and self.linger > 0 and \
                        self._queue[0][2] - idle_since >= self.quiet:
                    self._gather()
                elif self._queue and self.gather > 0 and \
                        self._last_batch >= self.gather_after:
                    self._gather_concurrent()
                if not self._queue:
                    if self._stopping:
                        return
                    batch = None  # unavailable and idle: look again after a pause
                    self._wakeup.wait(self.retry_delay)
                else:
                    batch = [self._queue.popleft()
                             for _ in range(min(len(self._queue), self.max_batch))]
                    self._last_batch = len(batch)
                    self._batch_since = min(entry[2] for entry in batch)
                    self._current, self._claimed = batch, False
            if batch is None:
                self._probe()
                continue
            try:
                self._write(batch)
            finally:
                with self._wakeup:
                    self._batch_since = self._current = None

    def _gather(self) -> None:
        """Wait (holding the condition) up to `linger` s from the first arrival for the
        rest of a burst of outcomes; ends early for anything urgent or a full batch."""
        self._lingering = True
        try:
            self._wait_for_more(self.linger, lambda: not self._urgent and
                                len(self._queue) < self.max_batch)
        finally:
            self._lingering = False
        self.lingered += 1

    def _gather_concurrent(self) -> None:
        """Group commit (holding the condition): wait up to `gather` s from the oldest
        queued operation until `gather_batch` are queued."""
        if len(self._queue) >= self.gather_batch:
            return
        self._gathering = True
        try:
            self._wait_for_more(self.gather, lambda: len(self._queue) < self.gather_batch)
        finally:
            self._gathering = False
        self.gathered += 1

    def _wait_for_more(self, seconds: float, wanted: Callable[[], bool]) -> None:
        """Wait on the condition (held) while `wanted()`, for up to `seconds` from the
        oldest queued operation's arrival, or until the writer stops."""
        deadline = self._queue[0][2] + seconds
        while not self._stopping and wanted():
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            self._wakeup.wait(remaining)

    def _claim(self, batch: list[Entry]) -> list[Entry]:
        """The batch as it goes to the database: what the shedder has not refused."""
        with self._wakeup:
            self._claimed = True
            return list(batch)

    def _probe(self) -> None:
        with self._wakeup:
            if self._queue:
                return  # the next batch is the probe
        try:
            self._check_recovery()
            with self.engine.begin() as conn:
                conn.exec_driver_sql("SELECT 1")
        except Exception as exc:
            self.recovery.failed(exc)
            return
        log.warning("store: database available again")
        self.healthy = True

    def _write(self, batch: list[Entry]) -> None:
        started = time.perf_counter()
        claimed = batch

        def claim() -> list[Any]:
            nonlocal claimed
            claimed = self._claim(batch)
            return [op for op, _, _ in claimed]

        try:
            results: list[Any] | None = self._transaction(claim)
        except Exception as exc:
            claimed = self._claim(batch)
            if unavailable(exc):
                self._unavailable(claimed, exc)
                return
            if isinstance(exc, DBAPIError):
                log.warning("store: a batch of %d failed (%s); writing one by one",
                            len(claimed), str(exc).splitlines()[0])
                results = self._one_by_one(claimed)
                if results is None:
                    return
            else:  # our own bug: fail the batch loudly, keep the thread
                log.exception("store: batch of %d failed", len(claimed))
                results = [exc] * len(claimed)
        self.healthy = True
        self.batches += 1
        self.operations += len(claimed)
        if self.on_batch is not None:
            self.on_batch(len(claimed), time.perf_counter() - started)
        self.reactor.callFromThread(_settle, [d for _, d, _ in claimed], results)

    def _check_recovery(self) -> None:
        problem = self.recovery.ready()
        if problem is not None:
            raise _Unwritable(problem)

    def _transaction(self, ops: Sequence[Any] | Callable[[], list[Any]]) -> list[Any]:
        """One transaction; `ops` may be a callable, called once the connection is
        in hand and before anything of the batch is sent."""
        self._check_recovery()
        try:
            if self.process is not None:
                results = self.process.apply(ops() if callable(ops) else list(ops))
            else:
                results = self._in_thread(ops)
        except WriterProcessGone as exc:
            if self.on_process_gone is not None and not self._stopping:
                self.on_process_gone(exc.how)
            raise
        except Exception as exc:
            self.recovery.failed(exc)
            raise
        self.last_commit = self.clock()
        self.recovery.committed()
        return results

    def _in_thread(self, ops: Sequence[Any] | Callable[[], list[Any]]) -> list[Any]:
        pending = self.applier.pending_receipts
        try:
            with self.engine.begin() as conn:
                return self.applier.apply(conn, ops() if callable(ops) else ops)
        except Exception:
            # The transaction did not happen: undo what the applier assumed it would.
            # (A writer process undoes its own: smppd.store.child.)
            self.applier.pending_receipts = pending
            self.applier.reset()
            raise

    def _one_by_one(self, batch: list[Entry]) -> list[Any] | None:
        """Each operation in a transaction of its own; None when the database went
        away meanwhile (what is left then waits as in any outage)."""
        results: list[Any] = []
        for index, (op, _d, _t) in enumerate(batch):
            try:
                results.append(self._transaction([op])[0])
            except Exception as exc:
                if unavailable(exc):
                    self.reactor.callFromThread(
                        _settle, [entry[1] for entry in batch[:index]], results)
                    self._unavailable(batch[index:], exc)
                    return None
                log.error("store: cannot write %s: %s", describe(op),
                          str(exc).splitlines()[0])
                results.append(exc)
        return results

    def _unavailable(self, batch: list[Entry], exc: Exception) -> None:
        if self.healthy:
            log.error("store: database unavailable: %s", str(exc).splitlines()[0])
        self.healthy = False
        keep = [entry for entry in batch if entry[0].retry]
        give_back = [entry for entry in batch if not entry[0].retry]
        if give_back:
            self.reactor.callFromThread(_settle, [d for _, d, _ in give_back],
                                        [exc] * len(give_back))
        if keep:
            with self._wakeup:
                self._queue.extendleft(reversed(keep))
            time.sleep(self.retry_delay)


def _take_retriable(entries: deque[Entry] | list[Entry]) -> list[Entry]:
    """Remove (in place) and return the entries whose caller can retry them."""
    taken = [entry for entry in entries if not entry[0].retry]
    if taken:
        kept = [entry for entry in entries if entry[0].retry]
        entries.clear()
        entries.extend(kept)
    return taken


class _Unwritable(OperationalError):
    """The store cannot be written yet: its recovery has not succeeded (e.g. the
    checkpoint after a full disk still finds it full)."""

    def __init__(self, reason: BaseException) -> None:
        super().__init__(None, None, reason)  # type: ignore[arg-type]

    def __str__(self) -> str:
        original = getattr(self.orig, "orig", None) or self.orig
        return f"recovering: {str(original).splitlines()[0]}"


def _settle(deferreds: list[defer.Deferred[Any]], results: list[Any]) -> None:
    for d, result in zip(deferreds, results, strict=True):
        if isinstance(result, BaseException):
            d.errback(result)
        else:
            d.callback(result)
