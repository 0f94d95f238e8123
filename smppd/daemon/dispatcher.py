"""The dispatcher: queued messages -> submit_sm on the bound SMSCs.

Event driven, never polling: it runs when a message is accepted, when a window
slot frees, when a bind comes up and when a throttle timer is due, and does
nothing at all while no SMSC is bound (checklist 15: no requeue storm).

How duplicates stay bounded after a kill -9: a part's slot is given back only when
its outcome (the SMSC id, or the error) is committed, not when the response
arrives. So at any moment at most `window` parts per SMSC have been sent without
a durable record; after a crash exactly those are still `queued` and are sent
again. That is the documented duplicate bound: at most the window per SMSC.

The store is the queue: memory holds at most `memory_limit` messages. Beyond that
new messages stay only in the database and are read back in id order (which is
accept order) when memory runs low; start-up recovery is the same read.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer

from ..config import SmscSettings
from ..protocol import command_status
from ..protocol import constants as c
from ..protocol.command_status import Action
from ..protocol.connector import Connector
from ..protocol.message_id import IdPolicy
from ..protocol.segmentation import SplitPolicy, split
from ..protocol.session import SubmitResult, SubmitUnknown
from ..protocol.text import CharsetProfile, Encoding
from ..status import Status
from ..store import operations as ops
from ..store.queries import QueuedMessage
from ..throttle.bucket import TokenBucket

log = logging.getLogger("smppd.dispatcher")
DEFAULT_ROUTE = "*"  # no routes configured: any SMSC
NO_ROUTE = ""  # routes are configured and none matches


@dataclass(slots=True)
class Outgoing:
    """A message on its way out: what the store holds (`queued`) plus the progress
    of sending it; `unsent` are the part numbers not yet submitted."""

    queued: QueuedMessage
    route: str
    unsent: deque[int]
    fields: list[dict[str, Any]] | None = None  # the parts' submit_sm fields, once split
    failed: bool = False
    attempts: dict[int, int] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.queued.id

    @classmethod
    def from_queued(cls, message: QueuedMessage, route: str) -> Outgoing:
        return cls(message, route, deque(message.unsent))


@dataclass(slots=True)
class PartToken:
    """What the session carries for one submit and hands back with its outcome."""

    message: Outgoing
    part_no: int
    channel: Channel
    sent_at: float


@dataclass(frozen=True, slots=True)
class TextSettings:
    profile: CharsetProfile
    policy: SplitPolicy

    @classmethod
    def of(cls, smsc: SmscSettings) -> TextSettings:
        return cls(CharsetProfile(smsc.dcs0_charset, smsc.latin1),
                   SplitPolicy(smsc.split, smsc.max_parts))


class JobFeeder:
    """One job's messages, read from the store a page at a time in id order, so a
    million-message job costs a page of memory. Paused feeders are skipped; a
    per-job cap is a bucket of its own."""

    PAGE = 2000

    def __init__(self, job_id: str, account_id: int, cap: float | None, now: float,
                 paused: bool = False) -> None:
        self.job_id = job_id
        self.account_id = account_id
        self.paused = paused
        self.bucket = TokenBucket(cap, now=now) if cap else None
        self.queues: dict[str, deque[Outgoing]] = {}
        self.buffered = 0
        self.cursor = ""
        self.exhausted = False
        self.loading = False
        self.sent = 0
        self.rate = 0.0  # messages per second, smoothed
        self._rate_mark = (now, 0)

    def pop(self, serves: Callable[[str], bool]) -> Outgoing | None:
        for route, queue in self.queues.items():
            if queue and serves(route):
                self.buffered -= 1
                self.sent += 1
                return queue.popleft()
        return None

    def has(self, serves: Callable[[str], bool]) -> bool:
        return any(queue and serves(route) for route, queue in self.queues.items())

    def update_rate(self, now: float) -> None:
        since, sent = self._rate_mark
        if now - since >= 1.0:
            current = (self.sent - sent) / (now - since)
            self.rate = current if self.rate == 0 else 0.7 * self.rate + 0.3 * current
            self._rate_mark = (now, self.sent)


class Channel:
    """The dispatcher's view of one SMSC: its connector, bucket and work."""

    def __init__(self, settings: SmscSettings, connector: Connector, now: float) -> None:
        self.name = settings.name
        self.connector = connector
        self.settings = settings
        self.text = TextSettings.of(settings)
        self.ids = IdPolicy(settings.id_format_response, settings.id_format_receipt)
        self.bucket = TokenBucket(settings.throughput, now=now)
        self.current: Outgoing | None = None  # the message whose parts are being sent
        self.retries: deque[tuple[Outgoing, int]] = deque()
        self.unsettled = 0  # parts sent whose outcome is not yet committed
        self.throttled_streak = 0
        self.submitted = 0  # submits sent, for the measured rate
        self.recent_rate = 0.0  # submits per second over the last tick
        self._last_tick = (now, 0)
        self.ceiling = 0.0  # for an unlimited SMSC, the rate at which it throttled us

    @property
    def configured_rate(self) -> float:
        return self.settings.throughput  # 0 = no limit

    def slow_down(self, now: float) -> None:
        """ESME_RTHROTTLED: halve the rate (from the measured one when unlimited)."""
        current = self.bucket.rate if self.bucket.rate > 0 else max(self.recent_rate, 2.0)
        if self.configured_rate == 0:
            self.ceiling = max(self.ceiling, current)
        self.bucket.set_rate(max(1.0, current / 2))

    def tick(self, now: float) -> bool:
        """Once a second: measure the rate, and win back a tenth of the way towards
        the configured rate (or unlimited) after a throttle. True if the rate rose."""
        since, count = self._last_tick
        if now > since:
            self.recent_rate = (self.submitted - count) / (now - since)
        self._last_tick = (now, self.submitted)
        if self.bucket.rate <= 0 or now < self.bucket.paused_until:
            return False
        target = self.configured_rate or self.ceiling
        if self.bucket.rate < target:
            step = max(1.0, target / 10)
            self.bucket.set_rate(min(target, self.bucket.rate + step))
            return True
        if self.configured_rate == 0:
            self.bucket.set_rate(0)  # recovered: unlimited again
            self.ceiling = 0.0
            return True
        return False

    @property
    def window(self) -> int:
        return self.settings.window * sum(1 for _ in self.connector.transmitters)

    def reconfigure(self, settings: SmscSettings) -> None:
        self.settings = settings
        self.text = TextSettings.of(settings)
        self.ids = IdPolicy(settings.id_format_response, settings.id_format_receipt)
        self.bucket.set_rate(settings.throughput)


class Dispatcher:
    def __init__(self, reactor: Any, put: Callable[[Any], defer.Deferred[Any]],
                 load: Callable[[str, int], defer.Deferred[Any]],
                 routes: dict[str, str], default_text: TextSettings,
                 retry_initial: float = 1.0, retry_max: float = 60.0, max_attempts: int = 10,
                 memory_limit: int = 20_000, metrics: Any = None) -> None:
        self.reactor = reactor
        self.put = put  # Writer.put
        self.load = load  # (after_id, limit) -> Deferred[(list[QueuedMessage], last_id)]
        self.channels: dict[str, Channel] = {}
        self.routes: dict[str, str] = {}  # prefix -> route key ("a" or "a|b")
        self.route_members: dict[str, tuple[str, ...]] = {}
        self._route_lengths: list[int] = []
        self.set_routes(routes)
        self.default_text = default_text
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.max_attempts = max_attempts
        self.memory_limit = memory_limit
        self.metrics = metrics
        self.queues: dict[str, deque[Outgoing]] = {DEFAULT_ROUTE: deque()}
        # Jobs, fed from the store; taken in turn with the single messages above, so
        # one message sent through the API never waits behind a million-message job.
        self.feeders: dict[str, JobFeeder] = {}
        self.load_job: Callable[[str, str, int], defer.Deferred[Any]] | None = None
        self._turn = 0
        self._in_flight: dict[str, dict[str, int]] = {}  # job -> message id -> parts out
        self.in_memory = 0
        self.spilled = True  # the database may hold work: read it at start
        self.cursor = ""
        self._refilling = False
        self._missed = False  # a message stayed in the database during a refill
        self._timer: Any = None
        self._pump_call: Any = None
        self.passes = 0  # pump passes: flat while nothing can be sent (checklist 15)
        self.accepting = True
        self.stopped = False

    # Wiring ------------------------------------------------------------------------

    def add_channel(self, channel: Channel) -> None:
        self.channels[channel.name] = channel

    def set_routes(self, routes: dict[str, tuple[str, ...] | str]) -> None:
        """Destination prefix (digits) -> SMSC names in order of preference; the
        longest prefix wins. Without routes, any SMSC takes any number."""
        members = {prefix: (smscs,) if isinstance(smscs, str) else tuple(smscs)
                   for prefix, smscs in routes.items()}
        self.routes = {prefix: "|".join(smscs) for prefix, smscs in members.items()}
        self.route_members = {"|".join(smscs): smscs for smscs in members.values()}
        self._route_lengths = sorted({len(p) for p in routes}, reverse=True)

    def route_for(self, recipient: str) -> str:
        for length in self._route_lengths:
            target = self.routes.get(recipient[:length])
            if target is not None:
                return target
        return NO_ROUTE if self.routes else DEFAULT_ROUTE

    def text_for(self, route: str) -> TextSettings:
        """The text settings of the route's first SMSC (all its parts are cut alike)."""
        members = self.route_members.get(route)
        channel = self.channels.get(members[0] if members else route)
        return channel.text if channel is not None else self.default_text

    def serves(self, channel: Channel) -> Callable[[str], bool]:
        """Whether `channel` takes a route's messages now: any channel for `*`, else
        the first SMSC of the route that is bound (failover in order)."""

        def check(route: str) -> bool:
            if route == DEFAULT_ROUTE:
                return True
            for name in self.route_members.get(route, (route,)):
                if name == channel.name:
                    return True
                other = self.channels.get(name)
                if other is not None and other.connector.bound:
                    return False  # a preferred SMSC is up and takes it
            return False

        return check

    @property
    def depth(self) -> int:
        """Messages waiting in memory (the database may hold more when spilled)."""
        return self.in_memory

    # New work ----------------------------------------------------------------------

    def accepted(self, message: QueuedMessage) -> None:
        """A message is committed as queued; send it when there is room."""
        if self.spilled or self.in_memory >= self.memory_limit:
            self.spilled = True  # it stays in the database; refill reads it in order
            self._missed = True  # so a refill under way cannot declare the backlog empty
        else:
            self._enqueue(message)
            self.cursor = message.id
        self.pump_soon()

    def _enqueue(self, message: QueuedMessage) -> None:
        route = self._route_of(message)
        self.queues.setdefault(route, deque()).append(Outgoing.from_queued(message, route))
        self.in_memory += 1

    def _route_of(self, message: QueuedMessage) -> str:
        route = message.smsc or self.route_for(message.recipient)
        if route == DEFAULT_ROUTE or route in self.route_members or route in self.channels:
            return route
        # Its route left the configuration since it was accepted: send it by the
        # current routes (or, with none, by any SMSC).
        current = self.route_for(message.recipient)
        return DEFAULT_ROUTE if current == NO_ROUTE else current

    def refill(self) -> None:
        if self._refilling or not self.spilled or self.stopped:
            return
        self._refilling = True
        self._missed = False
        limit = max(1, self.memory_limit - self.in_memory)
        d = self.load(self.cursor, limit)

        def loaded(result: tuple[list[QueuedMessage], str | None]) -> None:
            messages, last_id = result
            self._refilling = False
            for message in messages:
                self._enqueue(message)
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

        d.addCallbacks(loaded, failed)

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
        if self.stopped:
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
        if self.spilled and self.in_memory < self.memory_limit // 2:
            self.refill()

    def _timer_due(self) -> None:
        self._timer = None
        self.pump()

    def _send(self, channel: Channel, now: float) -> float | None:
        """Submit what this channel may send now; returns when to try again if the
        throttle, not the window, is what held work back."""
        connector = channel.connector
        room = min(connector.window_available, channel.window - channel.unsettled)
        if room <= 0 or not self.accepting:
            return None
        tokens = channel.bucket.available(now)
        sent = 0
        while sent < min(room, tokens):
            picked = self._next_part(channel)
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
            channel.bucket.spend(sent, now)
            connector.flush()
        if sent < room:
            work = self._work_wait(channel, now)
            if work is not None:  # the throttle, not the window, held it back
                return max(work, channel.bucket.wait(now))
        return None

    def _work_wait(self, channel: Channel, now: float) -> float | None:
        """0 when this channel has work it could send now, the seconds until a capped
        job may send again when only capped jobs have work, None when idle."""
        serves = self.serves(channel)
        if (channel.retries or (channel.current and channel.current.unsent)
                or any(queue and serves(route) for route, queue in self.queues.items())):
            return 0.0
        wait: float | None = None
        for feeder in self.feeders.values():
            if feeder.paused or not feeder.has(serves):
                continue
            delay = feeder.bucket.wait(now) if feeder.bucket is not None else 0.0
            wait = delay if wait is None else min(wait, delay)
        return wait

    def _next_part(self, channel: Channel) -> tuple[Outgoing, int] | None:
        while channel.retries:
            message, part_no = channel.retries.popleft()
            if not message.failed:
                return message, part_no
        message = channel.current
        while message is None or message.failed or not message.unsent:
            message = channel.current = self._next_message(channel)
            if message is None:
                return None
        return message, message.unsent.popleft()

    def _next_message(self, channel: Channel) -> Outgoing | None:
        """The next message for this channel, the sources taken in turn: the single
        messages, then each running job (within its own cap)."""
        feeders = [f for f in self.feeders.values() if not f.paused]
        sources = len(feeders) + 1
        now = self.reactor.seconds()
        serves = self.serves(channel)
        for step in range(sources):
            index = (self._turn + step) % sources
            if index == 0:
                queue = next((q for route, q in self.queues.items() if q and serves(route)),
                             None)
                if queue is None:
                    continue
                self.in_memory -= 1
                message = queue.popleft()
            else:
                feeder = feeders[index - 1]
                if feeder.bucket is not None and feeder.bucket.available(now) < 1:
                    continue
                message = feeder.pop(serves)
                if message is None:
                    continue
                if feeder.bucket is not None:
                    feeder.bucket.spend(1, now)
                if feeder.buffered < JobFeeder.PAGE // 2:
                    self._feed(feeder)
            self._turn = index + 1
            return message
        return None

    def _submit(self, channel: Channel, message: Outgoing, part_no: int, now: float) -> None:
        if message.fields is None:
            text = self.text_for(message.route)
            queued = message.queued
            _info, message.fields = split(queued.text, text.profile, text.policy,
                                          Encoding(queued.encoding), reference=queued.concat_ref)
        fields = dict(message.fields[part_no - 1])
        fields.update(_addresses(message.queued.sender, message.queued.recipient))
        fields["registered_delivery"] = c.REGISTERED_DELIVERY_FINAL
        token = PartToken(message, part_no, channel, now)
        channel.connector.submit(fields, token, flush=False)
        channel.submitted += 1
        self._hold(channel, message)

    def _hold(self, channel: Channel, message: Outgoing) -> None:
        """A part is out (or failing): its window slot is taken until its outcome is
        committed, and its job is not finished before that."""
        channel.unsettled += 1
        job = message.queued.job_id
        if job is not None:
            parts = self._in_flight.setdefault(job, {})
            parts[message.id] = parts.get(message.id, 0) + 1

    def _release(self, channel: Channel, message: Outgoing) -> None:
        channel.unsettled -= 1
        job = message.queued.job_id
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
                                                      Status.FAILED, f"unsendable: {exc}"[:32]))

    # Outcomes (the connector listener calls these) ---------------------------------

    def submit_result(self, event: SubmitResult) -> None:
        token: PartToken = event.token
        channel = token.channel
        now = self.reactor.seconds()
        if self.metrics is not None:
            self.metrics.response(channel.name, event.status, now - token.sent_at)
        message = token.message
        if event.status == c.ESME_ROK and event.message_id is not None:
            channel.throttled_streak = 0
            self._record(channel, message, ops.PartSubmitted(
                message.id, token.part_no, channel.name, event.message_id,
                channel.ids.from_response(event.message_id)))
            return
        action = (Action.FAIL if event.status == c.ESME_ROK  # accepted with no id: broken
                  else command_status.classify_submit(event.status))
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
        delay = min(self.retry_max, self.retry_initial * 2 ** (attempts - 1))
        if action is Action.THROTTLED:
            # The SMSC asks us to slow down: hold the whole channel, not just this part.
            channel.throttled_streak += 1
            if channel.throttled_streak == 1 or channel.throttled_streak % 10 == 0:
                channel.slow_down(now)  # once per burst of refusals, not per PDU
            channel.bucket.pause(min(self.retry_max, 0.1 * 2 ** channel.throttled_streak), now)
            if self.metrics is not None:
                self.metrics.throttled(channel.name)
            delay = 0.0
        elif action is Action.QUEUE_FULL:
            channel.throttled_streak += 1
            if channel.throttled_streak == 1:
                channel.slow_down(now)  # a full queue is slower than its contract
            channel.bucket.pause(delay, now)
        log.info("message=%s part=%d smsc=%s %s, retry %d in %.1f s", message.id,
                 token.part_no, channel.name, code, attempts, delay)
        self.reactor.callLater(delay, self._retry, channel, message, token.part_no)

    def _retry(self, channel: Channel, message: Outgoing, part_no: int) -> None:
        channel.retries.append((message, part_no))
        self.pump_soon()

    def submit_unknown(self, event: SubmitUnknown) -> None:
        """No response: it may have been sent. Recorded `unknown`, never resent blindly
        (a resend could deliver and bill twice; checklist 7), except when the SMSC
        itself unbound before answering."""
        token: PartToken = event.token
        if event.declined and not token.message.failed:
            # The SMSC unbound with it unanswered: it was declined, not lost. Send it
            # again once a bind is back (checklist 12).
            log.info("message=%s part=%d smsc=%s %s before answering; sent again after "
                     "the next bind", token.message.id, token.part_no, token.channel.name,
                     event.reason)
            self._release(token.channel, token.message)
            token.channel.retries.append((token.message, token.part_no))
            return
        log.warning("message=%s part=%d smsc=%s outcome unknown: %s", token.message.id,
                    token.part_no, token.channel.name, event.reason)
        if self.metrics is not None:
            self.metrics.unknown(token.channel.name)
        self._record(token.channel, token.message, ops.PartUnknown(
            token.message.id, token.part_no, token.channel.name, event.reason))

    def late_response(self, token: PartToken, status: int, message_id: str | None) -> None:
        if status == c.ESME_ROK and message_id:
            channel = token.channel
            self.put(ops.LateId(token.message.id, token.part_no, channel.name, message_id,
                                channel.ids.from_response(message_id), status)).addErrback(
                lambda failure: log.error("message=%s late id %s not stored: %s",
                                          token.message.id, message_id,
                                          failure.getErrorMessage()))

    def _record(self, channel: Channel, message: Outgoing, op: Any) -> None:
        """Write an outcome; its window slot comes back only once it is committed."""

        def settled(result: Any) -> Any:
            self._release(channel, message)
            self.pump_soon()
            return None

        self.put(op).addBoth(settled)

    # Lifecycle -----------------------------------------------------------------------

    def tick(self) -> None:
        """Once a second (the daemon's clock): rates and throttle recovery."""
        now = self.reactor.seconds()
        if any([channel.tick(now) for channel in self.channels.values()]):
            self.pump_soon()

    # Jobs ----------------------------------------------------------------------------

    def add_job(self, feeder: JobFeeder) -> None:
        self.feeders[feeder.job_id] = feeder
        self._feed(feeder)

    def _feed(self, feeder: JobFeeder) -> None:
        if feeder.loading or feeder.exhausted or self.load_job is None or self.stopped:
            return
        feeder.loading = True

        def loaded(result: tuple[list[QueuedMessage], str | None]) -> None:
            messages, last_id = result
            feeder.loading = False
            if self.feeders.get(feeder.job_id) is not feeder:
                return  # stopped meanwhile
            for message in messages:
                route = self._route_of(message)
                feeder.queues.setdefault(route, deque()).append(
                    Outgoing.from_queued(message, route))
            feeder.buffered += len(messages)
            # Untouched messages only: the writer then needs no read for their outcomes.
            warm = tuple((m.id, m.account_id, m.points, m.smsc, m.parts) for m in messages
                         if len(m.unsent) == m.parts)
            if warm:
                self.put(ops.Warm(warm)).addErrback(lambda _: None)
            if last_id is None:
                feeder.exhausted = True
            else:
                feeder.cursor = last_id
            self.pump_soon()

        def failed(failure: Any) -> None:
            feeder.loading = False
            log.error("job=%s cannot read its messages: %s; retrying in 5 s", feeder.job_id,
                      failure.getErrorMessage())
            self.reactor.callLater(5.0, self._feed, feeder)

        self.load_job(feeder.job_id, feeder.cursor, JobFeeder.PAGE).addCallbacks(
            loaded, failed)

    def pause_job(self, job_id: str, paused: bool) -> None:
        feeder = self.feeders.get(job_id)
        if feeder is not None:
            feeder.paused = paused
            if not paused:
                self.pump_soon()

    def drop_job(self, job_id: str) -> frozenset[str]:
        """Stop feeding a job; returns the ids of its messages being sent right now
        (partly sent, or awaiting a retry), which a stop must not cancel."""
        self.feeders.pop(job_id, None)
        busy = set()
        for channel in self.channels.values():
            if channel.current is not None and channel.current.queued.job_id == job_id:
                busy.add(channel.current.id)
            busy.update(m.id for m, _ in channel.retries if m.queued.job_id == job_id)
        busy.update(self._in_flight.get(job_id, ()))
        return frozenset(busy)

    def job_drained(self, job_id: str) -> bool:
        """All of the job's messages have been taken from the store and sent."""
        feeder = self.feeders.get(job_id)
        return feeder is not None and feeder.exhausted and feeder.buffered == 0 \
            and not self._in_flight.get(job_id)

    def stop(self) -> None:
        """Take no new parts (drain); responses in flight still settle."""
        self.accepting = False
        self.stopped = True
        for call in (self._timer, self._pump_call):
            if call is not None and call.active():
                call.cancel()
        self._timer = self._pump_call = None

    @property
    def unsettled(self) -> int:
        return sum(channel.unsettled for channel in self.channels.values())


def _addresses(sender: str, recipient: str) -> dict[str, Any]:
    if sender.isdigit() or (sender.startswith("+") and sender[1:].isdigit()):
        digits = sender.lstrip("+")
        international = sender.startswith("+") or len(digits) > 8
        source = {"source_addr": digits,
                  "source_addr_ton": c.TON_INTERNATIONAL if international else c.TON_UNKNOWN,
                  "source_addr_npi": c.NPI_ISDN}
    else:
        source = {"source_addr": sender, "source_addr_ton": c.TON_ALPHANUMERIC,
                  "source_addr_npi": c.NPI_UNKNOWN}
    source.update(destination_addr=recipient, dest_addr_ton=c.TON_INTERNATIONAL,
                  dest_addr_npi=c.NPI_ISDN)
    return source
