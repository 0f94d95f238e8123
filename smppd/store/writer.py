"""The write-behind thread: every write of the daemon goes through here.

The reactor calls `put(op)` and gets a Deferred that fires (on the reactor thread)
once the batch holding `op` is committed. One thread, one connection: whatever
queued up while the previous batch was committing becomes the next batch, so the
batch size follows the load (group commit) with no timer adding latency when idle.
One writer also suits SQLite, which has one writer at a time anyway.

Failures: operations whose caller can retry (an API accept, an unanswered
deliver_sm) fail back to the caller; facts from the SMSC (a message id, an error)
are kept and retried until the database takes them. A batch that fails for one bad
row is re-run one operation at a time, so one row cannot sink the rest.
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
from twisted.internet import defer

from .batch import BatchApplier
from .operations import describe

log = logging.getLogger("smppd.store")


class WriterStopped(RuntimeError):
    pass


class Writer:
    def __init__(self, engine: Engine, applier: BatchApplier, reactor: Any,
                 max_batch: int = 5000, retry_delay: float = 0.5,
                 on_batch: Callable[[int, float], None] | None = None) -> None:
        self.engine = engine
        self.applier = applier
        self.reactor = reactor
        self.max_batch = max_batch
        self.retry_delay = retry_delay
        self.on_batch = on_batch  # (operations, seconds) for metrics, on the writer thread
        self._queue: deque[tuple[Any, defer.Deferred[Any]]] = deque()
        self._wakeup = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.operations = 0
        self.healthy = True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="smppd-writer", daemon=True)
        self._thread.start()

    def put(self, op: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        if self._stopping:
            d.errback(WriterStopped("the store is shutting down"))
            return d
        with self._wakeup:
            self._queue.append((op, d))
            if len(self._queue) == 1:
                self._wakeup.notify()
        return d

    @property
    def backlog(self) -> int:
        return len(self._queue)

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, then end the thread (blocking: not on the reactor)."""
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    # Writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._queue and not self._stopping:
                    self._wakeup.wait()
                if not self._queue and self._stopping:
                    return
                batch = [self._queue.popleft()
                         for _ in range(min(len(self._queue), self.max_batch))]
            self._write(batch)

    def _write(self, batch: list[tuple[Any, defer.Deferred[Any]]]) -> None:
        started = time.perf_counter()
        ops = [op for op, _ in batch]
        try:
            results = self._transaction(ops)
        except OperationalError as exc:
            self._unavailable(batch, exc)
            return
        except DBAPIError as exc:
            log.warning("store: a batch of %d failed (%s); writing one by one", len(batch),
                        str(exc).splitlines()[0])
            results = [self._one(op) for op in ops]
        except Exception as exc:  # our own bug: fail the batch loudly, keep the thread
            log.exception("store: batch of %d failed", len(batch))
            results = [exc] * len(batch)
        self.healthy = True
        self.batches += 1
        self.operations += len(batch)
        if self.on_batch is not None:
            self.on_batch(len(batch), time.perf_counter() - started)
        self.reactor.callFromThread(_settle, [d for _, d in batch], results)

    def _transaction(self, ops: Sequence[Any]) -> list[Any]:
        pending = self.applier.pending_receipts
        try:
            with self.engine.begin() as conn:
                return self.applier.apply(conn, ops)
        except Exception:
            # The transaction did not happen: undo what the applier assumed it would.
            self.applier.pending_receipts = pending
            self.applier.reset()
            raise

    def _one(self, op: Any) -> Any:
        try:
            return self._transaction([op])[0]
        except Exception as exc:
            log.error("store: cannot write %s: %s", describe(op), str(exc).splitlines()[0])
            return exc

    def _unavailable(self, batch: list[tuple[Any, defer.Deferred[Any]]],
                     exc: Exception) -> None:
        if self.healthy:
            log.error("store: database unavailable: %s", str(exc).splitlines()[0])
        self.healthy = False
        keep = [(op, d) for op, d in batch if op.retry]
        give_back = [(op, d) for op, d in batch if not op.retry]
        if give_back:
            self.reactor.callFromThread(_settle, [d for _, d in give_back],
                                        [exc] * len(give_back))
        if keep:
            with self._wakeup:
                self._queue.extendleft(reversed(keep))
            time.sleep(self.retry_delay)


def _settle(deferreds: list[defer.Deferred[Any]], results: list[Any]) -> None:
    for d, result in zip(deferreds, results, strict=True):
        if isinstance(result, BaseException):
            d.errback(result)
        else:
            d.callback(result)
