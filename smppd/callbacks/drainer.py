"""Draining the outbox: pending events are read on the read pool a page at a time,
queued in memory per target (an endpoint, or a forward URL), and sent with at most
`concurrency` requests per target at once; what became of each attempt goes to the
writer in batches. Nothing here waits: the reactor only starts requests and sorts
their answers.

Isolation: each target has its own queue, its own limit and its own back-off. A
target that fails is paused for the back-off's next delay (capped, jittered: the
project's one Backoff), then probed with one request at a time until an attempt
succeeds; while it is paused, and while it has a full queue in memory, the read
skips its events, so a dead or slow endpoint holds only its own events back and
never a page of anyone else's.

At least once: an event leaves the outbox only when a 2xx is recorded. A crash loses
the memory, not the events: they are still pending and are sent again (same event
id, so the receiver can drop the copy). An event still failing `max_age` seconds
after it happened is failed, with its attempts and the last error kept for the API.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer, task

from ..store import outbox
from ..store.callback_operations import DeliveryResults, ExpireTarget, Result
from ..store.sql import utc
from ..throttle.backoff import Backoff
from . import queries
from .delivery import Outcome
from .queries import Event

log = logging.getLogger("smppd.callbacks")

TICK = 0.25  # seconds between reads of new events when idle
SOON = 0.02  # ...and when the last read left work behind
SWEEP = 30.0  # seconds between sweeps for anything the reads by seq passed over...
BUSY_SWEEP = 1.0  # ...and while a target is catching up or the last sweep found some
PAGE = 2000  # events per read
PER_TARGET = 1000  # events held in memory per target
MAX_HELD = 20_000  # events held in memory in all
FLUSH_DELAY = 0.05  # attempt results wait at most this long for their batch
FLUSH_ROWS = 2000
# Events whose last result (delivered, failed, cancelled) was written are remembered
# this long, and a read that still returns them is not believed. A read on a snapshot
# taken before that write (a deferred read on SQLite, any read on PostgreSQL) can
# end after the write's answer has released the event: without this memory it was
# sent again (bench/callbacks.py: 656 duplicates in 40,000 with the drainer in its
# own process, where the write's answer comes back over a pipe).
RECENT = 30.0

Read = Callable[..., "defer.Deferred[Any]"]
Put = Callable[[Any], "defer.Deferred[Any]"]


@dataclass(frozen=True, slots=True)
class DrainSettings:
    concurrency: int = 10
    max_age: float = 86400.0
    retry_initial: float = 2.0
    retry_max: float = 300.0


@dataclass(eq=False)
class Target:
    key: str
    backoff: Backoff
    queue: deque[Event] = field(default_factory=deque)
    in_flight: int = 0
    failing: bool = False  # since the last failure, until an attempt succeeds
    paused_until: float = 0.0
    last_error: str | None = None
    resume: Any = None  # the pending call that ends the pause
    last_seq: int = 0  # the newest event taken into the queue
    missed_new: bool = False  # skipped by a read while its queue was full
    missed_due: bool = False  # has events waiting in the outbox (retries, or paused)
    reading: bool = False


class Drainer:
    """Reads are by seq (the order events were written) from a cursor, so a read
    returns only events not seen yet, whatever is in memory; a target skipped by a
    read (full, or backing off) reads its own events back when it can take them, and
    a sweep by due time every SWEEP seconds catches anything else (a retry due after
    a restart, a result that could not be written)."""

    def __init__(self, reactor: Any, read: Read, put: Put, send: Callable[[Event], Any],
                 settings: DrainSettings, metrics: Any = None) -> None:
        self.reactor = reactor
        self.read = read
        self.put = put
        self.send = send
        self.settings = settings
        self.metrics = metrics
        self.targets: dict[str, Target] = {}
        self.held: set[int] = set()  # events in memory, in flight, or awaiting their result
        self.cursor: int | None = None  # the newest seq read (None: not started)
        self._swept_at = float("-inf")
        self._sweep_found = False
        self._results: list[tuple[Any, ...]] = []
        self._flush_call: Any = None
        self._flushing: list[defer.Deferred[Any]] = []
        self._recent: deque[tuple[float, tuple[int, ...]]] = deque()  # see RECENT
        self._recent_seqs: set[int] = set()
        self._reading = False
        self._read_call: Any = None
        self._loops: list[task.LoopingCall] = []
        self.stopping = False
        # Several instances (issue 14): drain only on the one holding the duty.
        self.duty: Callable[[], bool] = lambda: True

    # Start and stop ---------------------------------------------------------------

    def start(self, poll: float = TICK) -> None:
        """`poll`: seconds between reads of new events. The worker of a daemon that
        tells it when its writer has committed (smppd.callbacks.process) reads on
        those nudges and polls only slowly."""
        for every, job, now in ((poll, self.read_now, True),
                                (BUSY_SWEEP, self.sweep, False)):
            loop = task.LoopingCall(job)
            loop.clock = self.reactor
            loop.start(every, now=now)
            self._loops.append(loop)

    @defer.inlineCallbacks
    def stop(self) -> Any:
        """No new attempts; what was attempted is written (the writer must still run)."""
        self.stopping = True
        for loop in self._loops:
            if loop.running:
                loop.stop()
        for call in [self._read_call, self._flush_call,
                     *(t.resume for t in self.targets.values())]:
            if call is not None and call.active():
                call.cancel()
        self._flush()
        yield defer.DeferredList(list(self._flushing), consumeErrors=True)

    @property
    def in_flight(self) -> int:
        return sum(target.in_flight for target in self.targets.values())

    # Reading ---------------------------------------------------------------------------

    def _excluded(self, now: float) -> list[str]:
        excluded = []
        for key, target in self.targets.items():
            if target.paused_until > now:
                target.missed_due = True
                excluded.append(key)
            elif len(target.queue) >= PER_TARGET or target.missed_new or target.missed_due:
                # Behind (a full queue, or events back in the outbox after a failure):
                # fed by its own reads (in seq order) until it has caught up, so that
                # no read by seq takes a newer event past an unread one (its seq mark,
                # last_seq, would then pass over them).
                target.missed_new = True
                excluded.append(key)
        return excluded

    def read_now(self) -> None:
        if self._reading or self.stopping or len(self.held) >= MAX_HELD or not self.duty():
            return
        self._reading = True
        if self.cursor is None:
            d = self.read(queries.first_pending).addCallback(self._started)
        else:
            now = self.reactor.seconds()
            limit = min(PAGE, MAX_HELD - len(self.held))
            excluded = self._excluded(now)
            d = self.read(queries.new_events, self.cursor, excluded,
                          limit).addCallback(self._loaded_new, limit, excluded)
        d.addErrback(self._read_failed).addBoth(self._read_done)

    def _started(self, cursor: int) -> None:
        self.cursor = cursor
        self._read_soon()

    def _loaded_new(self, result: tuple[list[Event], int], limit: int,
                    excluded: list[str]) -> None:
        events, cursor = result
        self.cursor = max(self.cursor or 0, cursor)
        for key in excluded:
            # This read passed over the target's new events. If the target caught up
            # meanwhile (its own read ended before this one; or it was forgotten as
            # idle), it believes itself level with a cursor that has moved on since:
            # it must read its own events again, or they wait for the 30 s sweep.
            target = self._target(key)
            if not (target.missed_new or target.missed_due or target.reading):
                target.missed_new = True
                self._pump(target)
        self._take(events)
        if len(events) >= limit:
            self._read_soon()

    def sweep(self) -> None:
        """Every SWEEP seconds, or every BUSY_SWEEP while some target is catching up
        (or the last sweep found work): the due events, oldest first, whatever was
        passed over; those held already are skipped."""
        if self.stopping or len(self.held) >= MAX_HELD or not self.duty():
            return
        now = self.reactor.seconds()
        # A target backing off is not "busy": its events are excluded from the sweep
        # anyway, and sweeping past a dead endpoint's backlog each second would cost
        # a scan of that backlog each second.
        busy = self._sweep_found or any((t.missed_due or t.missed_new)
                                        and t.paused_until <= now
                                        for t in self.targets.values())
        if not busy and now - self._swept_at < SWEEP:
            return
        self._swept_at = now

        def swept(events: list[Event]) -> None:
            self._sweep_found = len(events) > self._take(events)

        self.read(queries.due_events, utc(now), self._excluded(now), PAGE).addCallbacks(
            swept, self._read_failed)

    def sweep_soon(self) -> None:
        """At the next busy tick rather than up to SWEEP seconds later: an event made
        due by hand (a resend) is waiting for a person who just asked for it. The
        events that recently left the outbox are forgotten: the resent one may be
        among them (a copy sent by a stale read is the lesser harm)."""
        self._swept_at = float("-inf")
        self._recent.clear()
        self._recent_seqs.clear()

    def _read_done(self, _: Any) -> None:
        self._reading = False

    def _read_failed(self, failure: Any) -> None:
        log.error("callbacks: cannot read the outbox: %s", failure.getErrorMessage())

    def _take(self, events: list[Event]) -> int:
        """Queue the events not held yet; returns how many were already held."""
        if self.stopping:
            return 0
        touched: dict[str, Target] = {}
        skipped = 0
        for event in events:
            if event.seq in self.held or event.seq in self._recent_seqs:
                skipped += 1
                continue
            self.held.add(event.seq)
            target = self._target(event.target)
            target.queue.append(event)
            target.last_seq = max(target.last_seq, event.seq)
            touched[target.key] = target
        for target in touched.values():
            self._pump(target)
        return skipped

    def _catch_up(self, target: Target) -> None:
        """Read back a target's own events it was skipped for."""
        if target.reading or self.stopping:
            return
        idle = not target.queue and not target.in_flight
        if target.missed_due and idle:
            after = 0  # retries included (they keep their seq): everything due
            target.last_seq = 0  # the mark starts again with this read's pages
        elif target.missed_new and not target.missed_due and len(target.queue) < PER_TARGET // 2:
            after = target.last_seq
        else:
            return
        target.missed_due = False
        target.missed_new = True  # until this read shows it has caught up
        target.reading = True
        room = PER_TARGET - len(target.queue)

        def read(result: tuple[list[Event], int]) -> None:
            events, newest = result
            target.reading = False
            full = len(events) >= room
            if not full:
                # Every due event of this target up to `newest` is in memory now: the
                # next read of its own events starts there. (A full page is in seq
                # order, so it ends where the next starts: at its last seq, which
                # _take makes last_seq.)
                target.last_seq = max(target.last_seq, newest)
            # More to read: a full page, or events written since this read began that
            # the reads by seq passed over.
            target.missed_new = full or (self.cursor or 0) > newest
            if self._take(events):
                # Some are still awaiting their last result's write: read again after it.
                target.missed_due = True
                self.reactor.callLater(FLUSH_DELAY * 2, self._pump, target)
            elif not events:
                self._pump(target)

        def failed(failure: Any) -> None:
            target.reading = False
            target.missed_due = True
            self._read_failed(failure)

        self.read(queries.target_events, target.key, utc(self.reactor.seconds()), room,
                  after).addCallbacks(read, failed)

    def _read_soon(self) -> None:
        if self._read_call is None or not self._read_call.active():
            self._read_call = self.reactor.callLater(SOON, self.read_now)

    def _target(self, key: str) -> Target:
        target = self.targets.get(key)
        if target is None:
            settings = self.settings
            target = self.targets[key] = Target(key, Backoff(settings.retry_initial,
                                                             settings.retry_max))
        return target

    # Sending ---------------------------------------------------------------------------

    def _pump(self, target: Target) -> None:
        if self.stopping:
            return
        now = self.reactor.seconds()
        if target.paused_until > now:
            if target.resume is None or not target.resume.active():
                target.resume = self.reactor.callLater(target.paused_until - now,
                                                       self._pump, target)
            return
        limit = 1 if target.failing else self.settings.concurrency
        while target.queue and target.in_flight < limit:
            event = target.queue.popleft()
            if event.url is None:  # its endpoint was deleted after it was read
                self._record(event.seq, outbox.CANCELLED, event.attempts, now,
                             "the endpoint was deleted", None, now)
                continue
            target.in_flight += 1
            self.send(event).addCallback(self._attempted, target, event)
        if target.missed_new or target.missed_due:
            self._catch_up(target)
        elif not target.queue and not target.in_flight and not target.failing \
                and not target.reading and self.targets.get(target.key) is target:
            del self.targets[target.key]  # forget idle, healthy targets

    def _attempted(self, outcome: Outcome, target: Target, event: Event) -> None:
        target.in_flight -= 1
        now = self.reactor.seconds()
        attempts = event.attempts + 1
        if self.metrics is not None:
            self.metrics.attempt(outcome.result, outcome.seconds)
        if outcome.ok:
            target.failing = False
            target.backoff.reset()
            self._record(event.seq, outbox.DELIVERED, attempts, now, None, outcome.status, now)
        else:
            self._failed(target, event, outcome, attempts, now)
        if self.targets.get(target.key) is not target:
            self.targets[target.key] = target  # it was dropped while idle in between
        self._pump(target)

    def _failed(self, target: Target, event: Event, outcome: Outcome, attempts: int,
                now: float) -> None:
        target.last_error = outcome.error
        target.missed_due = True  # this event goes back to the outbox until it is due
        if target.paused_until <= now:  # not already backing off for a sibling attempt
            target.failing = True
            target.paused_until = now + target.backoff.next_delay()
        deadline = now - self.settings.max_age
        if event.at <= deadline:
            self._give_up(event, attempts, outcome.error, outcome.status, now)
            # Its siblings are as old: fail those in memory, and those still in the
            # outbox in one statement, instead of probing them one by one for days.
            for old in [e for e in target.queue if e.at <= deadline]:
                target.queue.remove(old)
                self._give_up(old, old.attempts, outcome.error, None, now)
            self._flush()  # first: the writer keeps the order, so these are not overtaken
            self.put(ExpireTarget(target.key, deadline, _gave_up(outcome.error))).addErrback(
                lambda f: log.error("callbacks: cannot expire old events: %s",
                                    f.getErrorMessage()))
        else:
            self._record(event.seq, outbox.PENDING, attempts, target.paused_until,
                         outcome.error, outcome.status, None)

    def _give_up(self, event: Event, attempts: int, error: str | None, status: int | None,
                 now: float) -> None:
        if self.metrics is not None:
            self.metrics.gave_up()
        log.warning("callbacks: event %s to target %s failed after %d attempt(s): %s",
                    event.id, event.target, attempts, error)
        self._record(event.seq, outbox.FAILED, attempts, now, _gave_up(error), status, now)

    # Results -------------------------------------------------------------------------

    def _record(self, seq: int, state: str, attempts: int, next_at: float, error: str | None,
                status: int | None, finished: float | None) -> None:
        self._results.append((seq, state, attempts, next_at,
                              None if error is None else error[:256], status, finished))
        if len(self._results) >= FLUSH_ROWS:
            self._flush()
        elif self._flush_call is None or not self._flush_call.active():
            self._flush_call = self.reactor.callLater(FLUSH_DELAY, self._flush)

    def _flush(self) -> None:
        if not self._results:
            return
        rows, self._results = tuple(self._results), []
        d = self.put(compact(rows))
        self._flushing.append(d)

        def written(result: Any) -> Any:
            self._flushing.remove(d)
            if isinstance(result, Exception) or hasattr(result, "getErrorMessage"):
                log.error("callbacks: attempt results not stored (the events will be "
                          "sent again): %s", getattr(result, "getErrorMessage", str)())
            else:
                self._remember([row[0] for row in rows if row[1] != outbox.PENDING])
            self.held.difference_update(row[0] for row in rows)
            return None

        d.addBoth(written)

    def _remember(self, finished: list[int]) -> None:
        """Events that left the outbox (see RECENT); those remembered long enough are
        forgotten."""
        now = self.reactor.seconds()
        if finished:
            self._recent.append((now, tuple(finished)))
            self._recent_seqs.update(finished)
        while self._recent and self._recent[0][0] < now - RECENT:
            self._recent_seqs.difference_update(self._recent.popleft()[1])


def compact(rows: tuple[Result, ...]) -> DeliveryResults:
    """The results as the writer takes them: the successes (the bulk of a drain) as
    seqs grouped by attempts and HTTP status, the rest row by row. A group's
    finished_at is its latest success's: the others' are at most a flush earlier
    (FLUSH_DELAY, or FLUSH_ROWS results)."""
    others: list[Result] = []
    groups: dict[tuple[int, int | None], tuple[float, list[int]]] = {}
    for row in rows:
        seq, state, attempts, next_at, error, status, finished = row
        if state != outbox.DELIVERED or error is not None or finished != next_at:
            others.append(row)
            continue
        key = (attempts, status)
        group = groups.get(key)
        if group is None:
            groups[key] = (finished, [seq])
        else:
            group[1].append(seq)
            if finished > group[0]:
                groups[key] = (finished, group[1])
    return DeliveryResults(tuple(others), tuple(
        (finished, attempts, status, tuple(seqs))
        for (attempts, status), (finished, seqs) in groups.items()))


def _gave_up(error: str | None) -> str:
    return f"gave up: {error or 'no success'}"[:256]
