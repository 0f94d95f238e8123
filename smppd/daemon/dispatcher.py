"""The dispatcher: queued messages -> submit_sm on the bound SMSCs, and what became
of each submit -> the store.

Event driven, never polling: it runs when a message is accepted, when a window
slot frees, when a bind comes up and when a throttle timer is due, and does
nothing at all while no SMSC is bound (checklist 15: no requeue storm). Whose
message goes next is the fairness policy's (smppd.throttle.fairness), how fast a
bind sends is its rate controller's (smppd.throttle.rate), which SMSC takes a
number is the router's.

How duplicates stay bounded after a kill -9: a part's slot is given back only when
its outcome (the SMSC id, or the error) is committed, not when the response
arrives. So at any moment at most `window` parts per SMSC have been sent without
a durable record; after a crash exactly those are still `queued` and are sent
again. That is the documented duplicate bound: at most the window per SMSC.

The store is the queue: memory holds at most `memory_limit` single messages.
Beyond that new messages stay only in the database and are read back in id order
(which is accept order) when memory runs low; start-up recovery is the same read.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task

from ..config import SmscSettings
from ..protocol import command_status, submit_fields
from ..protocol import constants as c
from ..protocol.command_status import Action
from ..protocol.connector import Connector
from ..protocol.message_id import AutoIds, IdFormat, IdPolicy
from ..protocol.segmentation import split
from ..protocol.session import NoResponse, SubmitResult, SubmitUnknown
from ..protocol.text import Encoding
from ..status import Status
from ..store import operations as ops
from ..store.queries import QueuedMessage
from ..throttle.backoff import Backoff
from ..throttle.fairness import RoundRobin, RouteQueues, Source
from ..throttle.rate import AdaptiveRate, FixedRate, Pacing, RateController
from .feeding import JobFeeder, PageLoad, PageReader
from .outgoing import Outgoing, PartToken
from .router import Router

log = logging.getLogger("smppd.dispatcher")
QueueLoad = Callable[[str, int], "defer.Deferred[tuple[list[QueuedMessage], str | None]]"]


class Channel:
    """The dispatcher's view of one SMSC: its connector, rate and work in hand."""

    def __init__(self, settings: SmscSettings, connector: Connector, now: float,
                 pacing: Pacing | None = None) -> None:  # pacing: issue 8 (h8store)
        self.name = settings.name
        self.connector = connector
        self.settings = settings
        self.ids = _ids(settings)
        self.overrides = _overrides(settings)
        self.pacing = pacing or Pacing()
        self.rate = _controller(settings, now, self.pacing)
        self.current: Outgoing | None = None  # the message whose parts are being sent
        self.retries: deque[tuple[Outgoing, int]] = deque()
        self.unsettled = 0  # parts sent whose outcome is not yet committed
        self.retiring: defer.Deferred[None] | None = None  # removed by a reload, unbinding

    @property
    def bucket(self) -> Any:
        return self.rate.bucket

    @property
    def window(self) -> int:
        return self.settings.window * sum(1 for _ in self.connector.transmitters)

    def reconfigure(self, settings: SmscSettings, now: float) -> None:
        old = self.settings
        policy_changed = settings.throttle_policy != old.throttle_policy
        self.settings = settings
        if (settings.id_format_response, settings.id_format_receipt) != (
                old.id_format_response, old.id_format_receipt):
            self.ids = _ids(settings)  # a learnt mode is kept unless the setting changed
        self.overrides = _overrides(settings)
        if policy_changed:
            self.rate = _controller(settings, now, self.pacing)
        else:
            self.rate.bucket.releases = settings.releases_per_second  # set_contract applies it
            self.rate.set_contract(settings.throughput)


def _controller(settings: SmscSettings, now: float, pacing: Pacing) -> RateController:
    """The bind's rate policy by name (config `throttle_policy`)."""
    releases = settings.releases_per_second
    if settings.throttle_policy == "fixed":
        return FixedRate(settings.throughput, now, releases)
    return AdaptiveRate(settings.throughput, now, pacing, releases)


def _ids(settings: SmscSettings) -> AutoIds | IdPolicy:
    """How receipt ids are matched: learnt (auto, the default) or as configured."""
    if settings.id_format_response is IdFormat.AUTO:
        return AutoIds()
    return IdPolicy(settings.id_format_response, settings.id_format_receipt)


def _overrides(settings: SmscSettings) -> dict[int, Action]:
    return {status: Action(action) for status, action in settings.status_overrides}


class Dispatcher:
    def __init__(self, reactor: Any, put: Callable[[Any], defer.Deferred[Any]],
                 load: QueueLoad, load_job: PageLoad, router: Router,
                 retry_initial: float = 1.0, retry_max: float = 60.0, max_attempts: int = 10,
                 memory_limit: int = 20_000, metrics: Any = None) -> None:
        self.reactor = reactor
        self.put = put  # Writer.put
        self.load = load  # (after_id, limit) -> Deferred[(list[QueuedMessage], last_id)]
        self.router = router
        self.channels: dict[str, Channel] = {}
        self.retry_max = retry_max
        self.retries = Backoff(retry_initial, retry_max, 2.0, jitter=False)
        self.max_attempts = max_attempts
        self.memory_limit = memory_limit
        self.metrics = metrics
        self.singles = RouteQueues()  # messages sent one by one (API), in memory
        # Jobs, fed from the store, take turns with the single messages above.
        self.feeders: dict[str, JobFeeder] = {}
        self.fairness = RoundRobin()
        self.pages = PageReader(reactor, load_job, put, self._route_of, self.pump_soon,
                                lambda feeder: self.feeders.get(feeder.job_id) is feeder)
        self._in_flight: dict[str, dict[str, int]] = {}  # job -> message id -> parts out
        self.spilled = True  # the database may hold work: read it at start
        self.cursor = ""
        self._refilling = False
        self._missed = False  # a message stayed in the database during a refill
        self._timer: Any = None
        self._ticker: task.LoopingCall | None = None
        self._tick_interval = 1.0
        self._pump_call: Any = None
        self.passes = 0  # pump passes: flat while nothing can be sent (checklist 15)
        self.accepting = True
        self.stopped = False
        # Several instances (issue 14, smppd.daemon.cluster): send only while this
        # instance's lease holds, and give back to the queue what memory cannot take.
        self.lease_ok: Callable[[], bool] | None = None
        # With several instances, the SMSCs it may send to now (a bind joining a shared
        # contract waits: smppd.daemon.cluster); None: all of them, as a lone daemon.
        self.cleared: set[str] | None = None
        self.on_spill: Callable[[str], None] | None = None

    # Wiring ------------------------------------------------------------------------

    def add_channel(self, channel: Channel) -> None:
        self.channels[channel.name] = channel

    def set_router(self, router: Router) -> None:
        """A reload's routes. Messages in memory under a route the new configuration
        no longer knows take their number's current route."""
        self.router = router
        moved = sum(source.reroute(router.knows, self._reroute)
                    for source in [self.singles, *self.feeders.values()])
        if moved:
            self.pump_soon()

    def _reroute(self, message: Outgoing) -> str:
        message.route = self.router.resolve(message.queued.smsc, message.queued.recipient)
        return message.route

    def retire(self, name: str) -> defer.Deferred[None]:
        """An SMSC a reload removed: it takes no new parts, unbinds gracefully (its
        unanswered submits come back to be sent again, as after any unbind), and once
        every outcome it had out is committed, the parts it still held go to the routes
        that now serve their numbers. Fires when the channel is gone."""
        channel = self.channels[name]
        if channel.retiring is not None:
            return channel.retiring
        done: defer.Deferred[None] = defer.Deferred()
        channel.retiring = done
        channel.connector.stop().addBoth(lambda _: self._hand_over_when_settled(channel))
        return done

    def _hand_over_when_settled(self, channel: Channel) -> None:
        if channel.unsettled:  # outcomes of its last submits are being committed
            self.reactor.callLater(0.05, self._hand_over_when_settled, channel)
            return
        self.channels.pop(channel.name, None)
        held: dict[str, tuple[Outgoing, set[int]]] = {}
        if channel.current is not None and not channel.current.failed:
            held[channel.current.id] = (channel.current, set(channel.current.unsent))
        for message, part_no in channel.retries:
            if not message.failed:
                held.setdefault(message.id, (message, set()))[1].add(part_no)
        channel.current, channel.retries = None, deque()
        for message, parts in held.values():
            if not parts:
                continue
            message.unsent = deque(sorted(parts))
            feeder = self.feeders.get(message.job_id) if message.job_id else None
            (feeder if feeder is not None else self.singles).push(self._reroute(message),
                                                                  message)
        if held:
            log.info("smsc=%s removed: %d message(s) it held go to their new routes",
                     channel.name, len(held))
        assert channel.retiring is not None
        channel.retiring.callback(None)
        self.pump_soon()

    def _is_bound(self, name: str) -> bool:
        channel = self.channels.get(name)
        return channel is not None and channel.connector.bound

    def serves(self, channel: Channel) -> Callable[[str], bool]:
        return self.router.serves(channel.name, self._is_bound)

    def _route_of(self, message: QueuedMessage) -> str:
        return self.router.resolve(message.smsc, message.recipient)

    @property
    def depth(self) -> int:
        """Single messages waiting in memory (the database may hold more when spilled)."""
        return self.singles.size

    # New work ----------------------------------------------------------------------

    def accepted(self, message: QueuedMessage) -> None:
        """A message is committed as queued; send it when there is room."""
        full = self.singles.size >= self.memory_limit
        if self.on_spill is not None and (full or not self.lease_ok or not self.lease_ok()):
            # Leased (issue 14): what memory cannot take, or what this instance may not
            # hold now (its lease lapsed), goes back to the queue. A lease read never
            # returns this instance's own rows, so with room it is taken now even while
            # a refill runs: no order to keep, no duplicate.
            self.on_spill(message.id)
        elif full or (self.spilled and self.on_spill is None):
            self.spilled = True  # it stays in the database; refill reads it in order
            self._missed = True  # so a refill under way cannot declare the backlog empty
        else:
            route = self._route_of(message)
            self.singles.push(route, Outgoing.from_queued(message, route))
            self.cursor = message.id
        self.pump_soon()

    def refill(self) -> None:
        if self._refilling or not self.spilled or self.stopped:
            return
        self._refilling = True
        self._missed = False
        limit = max(1, self.memory_limit - self.singles.size)

        def loaded(result: tuple[list[QueuedMessage], str | None]) -> None:
            messages, last_id = result
            self._refilling = False
            for message in messages:
                route = self._route_of(message)
                self.singles.push(route, Outgoing.from_queued(message, route))
            if last_id is None:
                # Caught up, unless a message was committed after the query began.
                self.spilled = self._missed
            else:
                self.cursor = last_id
            if messages:
                log.info("dispatcher: %d queued messages read from the store", len(messages))
            self.pump()

        def failed(failure: Any) -> None:
            self._refilling = False
            log.error("dispatcher: cannot read queued messages: %s; retrying in 5 s",
                      failure.getErrorMessage())
            self.reactor.callLater(5.0, self.refill)

        self.load(self.cursor, limit).addCallbacks(loaded, failed)

    # Sending -----------------------------------------------------------------------

    def pump_soon(self) -> None:
        """Pump once after the current burst of events: a commit that settles 50
        messages then costs one pass and one write to the socket, not 50."""
        if self._pump_call is None and not self.stopped:
            self._pump_call = self.reactor.callLater(0, self._pump_now)

    def _pump_now(self) -> None:
        self._pump_call = None
        self.pump()

    def pump(self) -> None:
        if self.stopped or (self.lease_ok is not None and not self.lease_ok()):
            return
        self.passes += 1
        now = self.reactor.seconds()
        wait: float | None = None
        for channel in self.channels.values():
            delay = self._send(channel, now)
            if delay is not None:
                wait = delay if wait is None else min(wait, delay)
        if wait is not None and self._timer is None:
            self._timer = self.reactor.callLater(max(wait, 0.001), self._timer_due)
        if self.spilled and self.singles.size < self.memory_limit // 2:
            self.refill()

    def _timer_due(self) -> None:
        self._timer = None
        self.pump()

    def _sources(self) -> list[Source]:
        return [self.singles, *self.feeders.values()]

    def _send(self, channel: Channel, now: float) -> float | None:
        """Submit what this channel may send now; returns when to try again if the
        throttle, not the window, is what held work back."""
        connector = channel.connector
        room = min(connector.window_available, channel.window - channel.unsettled)
        if room <= 0 or not self.accepting or channel.retiring is not None or \
                (self.cleared is not None and channel.name not in self.cleared):
            return None
        bucket = channel.bucket
        tokens = bucket.available(now)
        sent = 0
        serves = self.serves(channel)
        while sent < min(room, tokens):
            picked = self._next_part(channel, serves, now)
            if picked is None:
                break
            message, part_no = picked
            try:
                self._submit(channel, message, part_no, now)
            except ValueError as exc:  # PduEncodeError, or a text the SMSC cannot carry
                self._unsendable(channel, message, part_no, exc)
                continue
            sent += 1
        if sent:
            self._wake_ticker()
            bucket.spend(sent, now)
            channel.rate.meter.add(sent)
            connector.flush()
        if sent < room:
            work = (0.0 if channel.retries or (channel.current and channel.current.unsent)
                    else self.fairness.wait(self._sources(), serves, now))
            if work is not None:  # the throttle, not the window, held it back
                return max(work, bucket.wait(now))
        return None

    def _next_part(self, channel: Channel, serves: Callable[[str], bool],
                   now: float) -> tuple[Outgoing, int] | None:
        while channel.retries:
            message, part_no = channel.retries.popleft()
            if not message.failed:
                return message, part_no
        message = channel.current
        while message is None or message.failed or not message.unsent:
            message = channel.current = self.fairness.next(self._sources(), serves, now)
            if message is None:
                return None
        return message, message.unsent.popleft()

    def _submit(self, channel: Channel, message: Outgoing, part_no: int, now: float) -> None:
        if message.fields is None:
            text = self.router.text_for(message.route)
            queued = message.queued
            _info, message.fields = split(queued.text, text.profile, text.policy,
                                          Encoding(queued.encoding), reference=queued.concat_ref)
        fields = submit_fields.submit_sm(message.fields[part_no - 1], message.queued.sender,
                                         message.queued.recipient)
        channel.connector.submit(fields, PartToken(message, part_no, channel, now),
                                 flush=False)
        self._hold(channel, message)

    def _hold(self, channel: Channel, message: Outgoing) -> None:
        """A part is out (or failing): its window slot is taken until its outcome is
        committed, and its job is not finished before that."""
        channel.unsettled += 1
        job = message.job_id
        if job is not None:
            parts = self._in_flight.setdefault(job, {})
            parts[message.id] = parts.get(message.id, 0) + 1

    def _release(self, channel: Channel, message: Outgoing) -> None:
        channel.unsettled -= 1
        job = message.job_id
        if job is not None:
            parts = self._in_flight.get(job, {})
            left = parts.get(message.id, 1) - 1
            if left > 0:
                parts[message.id] = left
            else:
                parts.pop(message.id, None)
                if not parts:
                    self._in_flight.pop(job, None)

    def _unsendable(self, channel: Channel, message: Outgoing, part_no: int,
                    exc: Exception) -> None:
        """A part SMPP cannot carry (the API should have refused it; a reload may have
        changed the SMSC's text settings since): fail it, refund it, go on."""
        log.error("message=%s part=%d smsc=%s cannot be sent: %s", message.id, part_no,
                  channel.name, exc)
        message.failed = True
        self._hold(channel, message)
        self._record(channel, message, ops.PartFailed(message.id, part_no, channel.name,
                                                      Status.FAILED, f"unsendable: {exc}"))

    # Outcomes (the connector listener calls these) ---------------------------------

    def submit_result(self, event: SubmitResult) -> None:
        token: PartToken = event.token
        channel = token.channel
        now = self.reactor.seconds()
        if self.metrics is not None:
            self.metrics.response(channel.name, event.status, now - token.sent_at)
        message = token.message
        if event.status == c.ESME_ROK and event.message_id is not None:
            channel.rate.on_ok(now)
            self._record(channel, message, ops.PartSubmitted(
                message.id, token.part_no, channel.name, event.message_id,
                channel.ids.from_response(event.message_id)))
            return
        action = (Action.FAIL if event.status == c.ESME_ROK  # accepted with no id: broken
                  else command_status.classify_submit(event.status, channel.overrides))
        code = c.status_name(event.status) if event.status else "no message_id"
        if action is Action.FAIL:
            log.warning("message=%s part=%d smsc=%s rejected: %s", message.id, token.part_no,
                        channel.name, code)
            message.failed = True
            self._record(channel, message, ops.PartFailed(message.id, token.part_no,
                                                          channel.name, Status.REJECTED, code))
            return
        attempts = message.attempts.get(token.part_no, 0) + 1
        message.attempts[token.part_no] = attempts
        if attempts >= self.max_attempts:
            log.warning("message=%s part=%d smsc=%s failed after %d attempts: %s", message.id,
                        token.part_no, channel.name, attempts, code)
            message.failed = True
            self._record(channel, message, ops.PartFailed(message.id, token.part_no,
                                                          channel.name, Status.FAILED, code))
            return
        self._release(channel, message)
        delay = self.retries.ceiling(attempts - 1)
        if action is Action.THROTTLED:
            # The SMSC asks us to slow down: the whole bind waits, not just this part.
            channel.rate.on_throttled(now)
            if self.metrics is not None:
                self.metrics.throttled(channel.name)
            delay = 0.0
        elif action is Action.QUEUE_FULL:
            channel.rate.on_queue_full(now, delay)
        elif action is Action.RECONNECT:
            # The SMSC answers as if we were not bound: bind again, then retry.
            channel.connector.rebind(f"{code} on a submit")
        log.info("message=%s part=%d smsc=%s %s, retry %d in %.1f s", message.id,
                 token.part_no, channel.name, code, attempts, delay)
        self.reactor.callLater(delay, self._retry, channel, message, token.part_no)

    def _retry(self, channel: Channel, message: Outgoing, part_no: int) -> None:
        channel.retries.append((message, part_no))
        self.pump_soon()

    def submit_unknown(self, event: SubmitUnknown) -> None:
        """No response came: the part may or may not have reached the SMSC.

        Sent again after the next bind when the SMSC unbound (it declined it,
        checklist 12) or the connection went away (what sat in its receive buffer was
        never processed), and after a timeout as the SMSC's `wait_ack_expire` says:
        `reconnect` (drop the bind, send again once bound: Kannel's default),
        `resend` (again on the same link) or `never`. At least once: the SMSC may see
        a part twice, at most the window per drop, counted in smppd_resent_total;
        billing stays once, and a receipt for either attempt settles the part.
        `never`, or resends past `max_attempts`, leave it `unknown` (a later receipt
        still settles it)."""
        token: PartToken = event.token
        channel, message = token.channel, token.message
        policy = channel.settings.wait_ack_expire
        resend = event.cause is NoResponse.UNBOUND or (
            policy != "never" and not message.failed)
        attempts = message.attempts.get(token.part_no, 0) + 1
        if resend and attempts < self.max_attempts:
            message.attempts[token.part_no] = attempts
            if event.cause is NoResponse.TIMEOUT and policy == "reconnect":
                channel.connector.rebind(event.reason)
            log.info("message=%s part=%d smsc=%s %s: sent again%s", message.id,
                     token.part_no, channel.name, event.reason,
                     "" if policy == "resend" and event.cause is NoResponse.TIMEOUT
                     else " after the next bind")
            if self.metrics is not None:
                self.metrics.resent(channel.name, event.cause.value)
            self._record(channel, message, ops.PartResent(
                message.id, token.part_no, channel.name, f"resent: {event.reason}"),
                lambda: channel.retries.append((message, token.part_no)))
            return
        log.warning("message=%s part=%d smsc=%s outcome unknown: %s", message.id,
                    token.part_no, channel.name, event.reason)
        if self.metrics is not None:
            self.metrics.unknown(channel.name)
        self._record(channel, message, ops.PartUnknown(
            message.id, token.part_no, channel.name, event.reason))

    def late_response(self, token: PartToken, status: int, message_id: str | None) -> None:
        if status == c.ESME_ROK and message_id:
            channel = token.channel
            self.put(ops.LateId(token.message.id, token.part_no, channel.name, message_id,
                                channel.ids.from_response(message_id), status)).addErrback(
                lambda failure: log.error("message=%s late id %s not stored: %s",
                                          token.message.id, message_id,
                                          failure.getErrorMessage()))

    def _record(self, channel: Channel, message: Outgoing, op: Any,
                then: Callable[[], None] | None = None) -> None:
        """Write an outcome; its window slot comes back only once it is committed
        (`then` runs at that moment, before the next pump)."""

        def settled(result: Any) -> Any:
            self._release(channel, message)
            if then is not None:
                then()
            self.pump_soon()
            return None

        self.put(op).addBoth(settled)

    # Lifecycle -----------------------------------------------------------------------

    def start_ticking(self, interval: float) -> None:
        """Run `tick` every `interval` s while it has something to do: a job is fed, a
        bind sent lately (its meter is still winding down) or has a rate to win back.
        Then it rests, and the next send or job wakes it: an idle daemon does not wake
        every second for it (issue 13: that tick and the job manager's were three
        fifths of an idle daemon's CPU)."""
        self._tick_interval = interval
        self._ticker = task.LoopingCall(self._tick_or_rest)
        self._ticker.clock = self.reactor
        self._wake_ticker()

    def _wake_ticker(self) -> None:
        ticker = self._ticker
        if ticker is None or ticker.running or self.stopped:
            return
        now = self.reactor.seconds()
        for channel in self.channels.values():
            channel.rate.meter.rebase(now)
        ticker.start(self._tick_interval, now=False)

    def _tick_or_rest(self) -> None:
        self.tick()
        now = self.reactor.seconds()
        if not self.feeders and self._ticker is not None and \
                all(channel.rate.at_rest(now) for channel in self.channels.values()):
            self._ticker.stop()

    @property
    def ticking(self) -> bool:
        return self._ticker is not None and self._ticker.running

    def tick(self) -> None:
        """Once a second (the daemon's clock): rates measured, throttles recovered."""
        now = self.reactor.seconds()
        for feeder in self.feeders.values():
            feeder.meter.update(now)
        if any([channel.rate.tick(now) for channel in self.channels.values()]):
            self.pump_soon()

    def stop(self) -> None:
        """Take no new parts (drain); responses in flight still settle."""
        self.accepting = False
        self.stopped = True
        self.pages.stopped = True
        for call in (self._timer, self._pump_call):
            if call is not None and call.active():
                call.cancel()
        self._timer = self._pump_call = None
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()

    @property
    def unsettled(self) -> int:
        return sum(channel.unsettled for channel in self.channels.values())

    # Jobs (the job manager's port) ---------------------------------------------------

    def add_job(self, job_id: str, account_id: int, cap: float | None,
                paused: bool = False) -> None:
        feeder = JobFeeder(job_id, account_id, cap, self.reactor.seconds(), paused,
                           self.pages)
        self.feeders[job_id] = feeder
        self.pages.read(feeder)
        self._wake_ticker()

    def pause_job(self, job_id: str, paused: bool) -> None:
        feeder = self.feeders.get(job_id)
        if feeder is not None:
            feeder.paused = paused
            if not paused:
                self.pump_soon()

    def job_rate(self, job_id: str) -> float:
        """Messages per second the job is sent at now (0 when paused or not fed)."""
        feeder = self.feeders.get(job_id)
        return feeder.meter.rate if feeder is not None and not feeder.paused else 0.0

    def drop_job(self, job_id: str) -> frozenset[str]:
        """Stop feeding a job; returns the ids of its messages being sent right now
        (partly sent, or awaiting a retry), which a stop must not cancel."""
        self.feeders.pop(job_id, None)
        busy = set()
        for channel in self.channels.values():
            if channel.current is not None and channel.current.job_id == job_id:
                busy.add(channel.current.id)
            busy.update(m.id for m, _ in channel.retries if m.job_id == job_id)
        busy.update(self._in_flight.get(job_id, ()))
        return frozenset(busy)

    def job_drained(self, job_id: str) -> bool:
        """All of the job's messages have been taken from the store and sent."""
        feeder = self.feeders.get(job_id)
        return feeder is not None and feeder.exhausted and feeder.buffered == 0 \
            and not self._in_flight.get(job_id)
