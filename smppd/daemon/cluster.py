"""This daemon as one of several on one PostgreSQL database (issue 14).

What it does, once a heartbeat (every `cluster.heartbeat` seconds, on a pool thread):
- keeps this instance's row alive (smppd.store.instances) and reads who else is;
- splits each SMSC's throughput contract by the live instances bound to it, so the
  sum stays within the contract (see `share`);
- claims the duties that must run on one instance at a time (sweepers, schedules,
  the callback drainer, monthly fees);
- looks for queued work nobody live holds (a dead instance's, or what an instance
  with a full queue gave back) and for job pages left, and leases it.

Fencing: the dispatcher sends only while this instance's lease is surely valid by
its own clock (the moment the last heartbeat was sent, plus the lease, minus one
heartbeat). If a heartbeat then finds the lease expired, others may hold its work:
the queues in memory are dropped (what is in flight still settles) and it registers
again under a new id.

Joining a shared contract. The others learn of a newcomer at their next heartbeat
and go on sending their old share until then, so a newcomer that sent at once would
push the sum past the contract for up to a heartbeat (1.5 times it, for two
instances). So an instance holds each SMSC with a contract (sends nothing to it)
from its registration until it has announced the bind in a heartbeat and every other
live instance bound to that SMSC has beaten since (their heartbeat numbers are
higher than its announcement's): each of them has then read the newcomer's row and
cut its share. The held bind's bucket then starts empty, on the release grid, not
with a saved-up burst. The cost: a bind joins up to about two heartbeats late; alone
on an SMSC, it sends after its first heartbeat. A reload, which puts the whole
contract back on a changed SMSC's rate, splits it again at once from the last view.

Why split the contract rather than coordinate each submit through the database:
a submit costs a fraction of a millisecond, a round trip to PostgreSQL about as much
again and a lock across instances much more; an even split by the heartbeats' count
needs one read a second. Its cost: an instance with nothing to send leaves its share
unused (the sum is within the contract, not always at it), and for one lease after
an instance dies the survivors still send at their old share.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer, task

from ..store import instances, leases
from .outgoing import Outgoing

log = logging.getLogger("smppd.cluster")
DUTIES = ("purge", "callbacks", "mail", "monthly", "report-schedules")


@dataclass
class View:
    """What one heartbeat learnt."""

    alive: bool  # our lease was still valid
    members: list[instances.Live] = field(default_factory=list)
    duties: frozenset[str] = frozenset()
    leased: int = 0
    beat: int = 0  # this heartbeat's number (smppd.store.instances)


class Cluster:
    def __init__(self, reactor: Any, transaction: Callable[..., defer.Deferred[Any]],
                 dispatcher: Any, applier_memory: Any, lease: float = 10.0,
                 heartbeat: float = 1.0, metrics: Any = None) -> None:
        self.reactor = reactor
        self.transaction = transaction  # (fn(conn, *args), *args) in a transaction
        self.dispatcher = dispatcher
        self.memory = applier_memory  # the writer's: its `owner` is this instance's id
        self.lease = lease
        self.heartbeat = heartbeat
        self.metrics = metrics
        self.id = instances.new_instance_id()
        self.valid_until = 0.0
        self.members: list[instances.Live] = []
        self.duties: frozenset[str] = frozenset()
        self.leased = 0
        self._caps: dict[str, float | None] = {}  # job -> its cap as configured
        self._shares: dict[str, tuple[float, float]] = {}  # smsc -> (contract, share)
        self._loop: task.LoopingCall | None = None
        self._beating = False
        self._taking = False
        self._releasing: list[str] = []
        self.fenced = 0  # times this instance found itself presumed dead
        # smsc -> the number of our first heartbeat that said we are bound to it (the
        # announcement the others must have beaten after; see the module docstring)
        self._announced: dict[str, int] = {}
        self._held_since: dict[str, float] = {}  # smsc -> when it was first held
        self._told: set[str] = set()  # held SMSCs whose wait was logged

    # Start and stop ------------------------------------------------------------------

    @defer.inlineCallbacks
    def register(self) -> Any:
        """Before the writer starts: what the API accepts is leased to this id."""
        sent = self.reactor.seconds()
        yield self.transaction(instances.register, self.id, self.lease)
        self.memory.owner = self.id
        self.valid_until = sent + self.lease - self.heartbeat
        self.dispatcher.lease_ok = self.lease_ok
        self.dispatcher.on_spill = self._spilled
        self.dispatcher.cleared = set()  # no SMSC until a heartbeat says (even one
        # whose channel does not exist yet: binds are made after this)
        log.info("cluster: instance %s registered (lease %.1f s)", self.id, self.lease)

    def start(self) -> None:
        """Once the binds are made: heartbeats, which also look for work."""
        self.beat()
        self._loop = task.LoopingCall(self.beat)
        self._loop.clock = self.reactor
        self._loop.start(self.heartbeat, now=False)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def retire(self) -> defer.Deferred[Any]:
        """After the drain: what this instance still holds goes back to the queue now."""
        self.valid_until = 0.0
        return self.transaction(instances.retire, self.id).addCallbacks(
            lambda released: log.info("cluster: instance %s retired; %d queued message(s) "
                                      "released", self.id, released),
            lambda failure: log.error("cluster: cannot retire %s: %s (its leases expire "
                                      "by themselves)", self.id, failure.getErrorMessage()))

    # Questions the daemon asks -----------------------------------------------------------

    def lease_ok(self) -> bool:
        return self.reactor.seconds() < self.valid_until

    def holds(self, duty: str) -> bool:
        return duty in self.duties and self.lease_ok()

    def share(self, smsc: str, contract: float) -> float:
        """This instance's part of an SMSC's contract: an even split among the live
        instances bound to it (at least this one). 0 (no limit) stays 0."""
        if contract <= 0:
            return contract
        bound = sum(1 for member in self.members
                    if smsc in member.smscs and member.id != self.id)
        return contract / (bound + 1)

    # The heartbeat -------------------------------------------------------------------------

    def beat(self) -> None:
        if self._beating:
            return  # the previous one still waits on the database
        self._beating = True
        sent = self.reactor.seconds()
        bound = [name for name, channel in self.dispatcher.channels.items()
                 if channel.connector.bound]
        cleared = self.dispatcher.cleared
        if cleared is not None:  # a bind that is down now is announced afresh when back,
            cleared.intersection_update(bound)  # even before this heartbeat ends

        def done(view: View) -> None:
            self._beating = False
            if not view.alive:
                self._fenced()
                return
            self.valid_until = sent + self.lease - self.heartbeat
            self.members, self.duties, self.leased = view.members, view.duties, view.leased
            self._announce(bound, view.beat)
            self._apply_shares()
            self._look_for_work()
            self.dispatcher.pump_soon()

        def failed(failure: Any) -> None:
            self._beating = False
            log.warning("cluster: heartbeat failed: %s (sending stops in %.1f s unless "
                        "one succeeds)", failure.getErrorMessage(),
                        max(0.0, self.valid_until - self.reactor.seconds()))

        self.transaction(self._beat, bound).addCallbacks(done, failed)

    def _beat(self, conn: Any, bound: list[str]) -> View:
        """On a pool thread, one transaction. The count first: the heartbeat takes
        the lock that orders all heartbeats, held from there to the commit."""
        leased = instances.leased_count(conn, self.id)
        beat = instances.heartbeat(conn, self.id, self.lease, bound, self.heartbeat)
        if beat is None:
            return View(alive=False)
        duties = frozenset(name for name in DUTIES
                           if instances.claim_duty(conn, name, self.id, self.lease))
        return View(True, instances.live(conn), duties, leased, beat)

    def _announce(self, bound: list[str], beat: int) -> None:
        """Remember when each bind was first announced; a bind that went down is
        announced afresh when it is back (the others may have taken its share)."""
        for name in bound:
            self._announced.setdefault(name, beat)
        for name in set(self._announced) - set(bound):
            del self._announced[name]

    def _waiting(self, smsc: str) -> None:
        """Say once, after a few heartbeats, who a held bind waits for: an instance of
        an older version never numbers its heartbeats, and holds it until it stops."""
        since = self._held_since.setdefault(smsc, self.reactor.seconds())
        if smsc in self._told or self.reactor.seconds() - since < 5 * self.heartbeat:
            return
        self._told.add(smsc)
        announced = self._announced.get(smsc)
        waiting = [member.id for member in self.members if member.id != self.id
                   and smsc in member.smscs and (announced is None or member.beat <= announced)]
        log.warning("cluster: smsc=%s is held here: waiting for %s to have a heartbeat "
                    "since this instance announced its bind (an instance of an older smppd "
                    "never does; it holds this bind until it stops)", smsc,
                    ", ".join(waiting) or "this instance's own heartbeat")

    def acknowledged(self, smsc: str) -> bool:
        """Every other live instance bound to `smsc` has beaten since we announced
        our bind to it: they count us in their shares."""
        announced = self._announced.get(smsc)
        return announced is not None and all(
            member.beat > announced for member in self.members
            if member.id != self.id and smsc in member.smscs)

    def reapply(self, changed: list[str]) -> None:
        """After a reload, which put the whole contract back on the rates of the SMSCs
        whose settings `changed` (and added new ones): split theirs again now, from the
        last heartbeat's view. The others are left as they are (a rate an SMSC's
        throttling slowed stays slowed)."""
        for name in changed:
            self._shares.pop(name, None)
        self._apply_shares()

    def _apply_shares(self) -> None:
        dispatcher = self.dispatcher
        now = self.reactor.seconds()
        cleared = dispatcher.cleared
        if cleared is None:  # not registered yet: nothing was held
            cleared = dispatcher.cleared = set()
        for name, channel in dispatcher.channels.items():
            contract = channel.settings.throughput
            share = self.share(name, contract)
            # Compared with what was applied for this contract (reapply forgets it,
            # after a reload has put the whole contract back).
            if self._shares.get(name) != (contract, share):
                self._shares[name] = (contract, share)
                if share != contract:
                    log.info("cluster: smsc=%s sends %.1f/s here (its %g/s shared)", name,
                             share, contract)
                channel.rate.set_contract(share)
            if contract > 0 and not self.acknowledged(name):
                cleared.discard(name)
                self._waiting(name)
            elif name not in cleared:
                cleared.add(name)
                self._held_since.pop(name, None)
                self._told.discard(name)
                channel.bucket.restart(now)  # from the release grid, no saved-up burst
        members = max(1, len(self.members))
        for job_id, feeder in self.dispatcher.feeders.items():
            if feeder.cap is None:
                continue
            base = self._caps.setdefault(job_id, feeder.cap.rate)
            if base and feeder.cap.rate != base / members:
                feeder.cap.set_rate(base / members)

    def _look_for_work(self) -> None:
        """Work nobody live holds (a dead instance's, or what one gave back): lease
        what memory has room for, and feed jobs whose pages seemed exhausted."""
        dispatcher = self.dispatcher
        if dispatcher.stopped:
            return
        self._take_free()
        for feeder in list(dispatcher.feeders.values()):
            if feeder.exhausted and not feeder.loading and \
                    feeder.buffered < feeder.PAGE // 2:
                feeder.exhausted = False
                dispatcher.pages.read(feeder)

    def _take_free(self) -> None:
        """Beside the dispatcher's own refill (which runs while its memory overflowed):
        leased rows are this instance's alone, so the two never read the same one."""
        dispatcher = self.dispatcher
        room = dispatcher.memory_limit - dispatcher.singles.size
        if self._taking or room <= 0:
            return
        self._taking = True

        def loaded(result: tuple[list[Any], str | None]) -> None:
            self._taking = False
            messages, _ = result
            for message in messages:
                route = dispatcher._route_of(message)
                dispatcher.singles.push(route, Outgoing.from_queued(message, route))
            if messages:
                log.info("cluster: %d queued message(s) nobody held leased here",
                         len(messages))
                dispatcher.pump_soon()

        def failed(failure: Any) -> None:
            self._taking = False
            log.warning("cluster: free work not read: %s", failure.getErrorMessage())

        dispatcher.load("", room).addCallbacks(loaded, failed)

    def _spilled(self, message_id: str) -> None:
        """The dispatcher's memory is full: give the message back to the queue (in
        one statement per tenth of a second, not one per message)."""
        self._releasing.append(message_id)
        if len(self._releasing) == 1:
            self.reactor.callLater(0.1, self._release)

    def _release(self) -> None:
        ids, self._releasing = self._releasing, []
        self.transaction(leases.release, self.id, ids).addErrback(
            lambda failure: log.warning("cluster: %d message(s) not released: %s (they "
                                        "come back when this instance's lease expires)",
                                        len(ids), failure.getErrorMessage()))

    def _fenced(self) -> None:
        """Presumed dead by the others: drop what is queued here and start over."""
        self.fenced += 1
        log.error("cluster: instance %s found its lease expired (a pause or an outage "
                  "longer than %.1f s); its queued work may be another's now: dropping "
                  "it and registering again", self.id, self.lease)
        forget_queued(self.dispatcher)
        self.valid_until = 0.0  # nothing is sent or taken into memory until registered
        self._announced.clear()  # the new id announces its binds afresh
        self.dispatcher.cleared = set()
        # Until then accepts are still leased to the old, dead id: free for any
        # instance, and given back by this one (its lease is not valid).
        new_id = instances.new_instance_id()
        sent = self.reactor.seconds()

        def registered(_: Any) -> None:
            self.id = self.memory.owner = new_id
            self.valid_until = sent + self.lease - self.heartbeat
            self._look_for_work()

        self.transaction(instances.register, new_id, self.lease).addCallbacks(
            registered, lambda failure: log.error("cluster: cannot register again: %s",
                                                  failure.getErrorMessage()))


def forget_queued(dispatcher: Any) -> None:
    """Drop every queued message the dispatcher holds in memory (not what is in
    flight: its outcomes still settle), so that it reads its work from the store."""
    dispatcher.singles.queues.clear()
    dispatcher.singles.size = 0
    for feeder in dispatcher.feeders.values():
        feeder.queues.clear()
        feeder.size = 0
        feeder.exhausted = False
    for channel in dispatcher.channels.values():
        channel.current = None
        channel.retries.clear()
    dispatcher.spilled = True


class ClusterCollector:
    """What to watch with several instances, read at scrape time (README: Several
    instances)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        cluster = self.cluster
        yield GaugeMetricFamily("smppd_cluster_instances",
                                "Live smppd instances on this database (by heartbeat)",
                                value=len(cluster.members))
        yield GaugeMetricFamily("smppd_cluster_leased_messages",
                                "Queued messages this instance holds (leased)",
                                value=cluster.leased)
        yield GaugeMetricFamily("smppd_cluster_lease_seconds",
                                "Seconds this instance's lease surely holds; 0: it does "
                                "not send", value=max(0.0, cluster.valid_until
                                                      - cluster.reactor.seconds()))
        yield CounterMetricFamily("smppd_cluster_fenced",
                                  "Times this instance found itself presumed dead",
                                  value=cluster.fenced)
        duties = GaugeMetricFamily("smppd_cluster_duty",
                                   "1 for each one-instance duty this instance runs",
                                   labels=["duty"])
        for duty in DUTIES:
            duties.add_metric([duty], 1.0 if cluster.holds(duty) else 0.0)
        yield duties
        shares = GaugeMetricFamily("smppd_cluster_smsc_share",
                                   "submit_sm per second this instance may send to each "
                                   "SMSC (its share of the contract; 0: no limit)",
                                   labels=["smsc"])
        for name, (_contract, share) in list(cluster._shares.items()):
            shares.add_metric([name], share)
        yield shares
        held = GaugeMetricFamily("smppd_cluster_smsc_held",
                                 "1 while this instance holds an SMSC's bind back: it "
                                 "joined a shared contract and waits for the other "
                                 "instances bound to it to cut their shares",
                                 labels=["smsc"])
        cleared = cluster.dispatcher.cleared
        for name in list(cluster.dispatcher.channels):
            held.add_metric([name], 0.0 if cleared is None or name in cleared else 1.0)
        yield held
