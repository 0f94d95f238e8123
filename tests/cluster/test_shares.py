"""Cluster objects on one PostgreSQL database and task.Clock, beating by hand, so every
order of heartbeats can be written down (issue 14): a shared contract while instances
join, leave and flap (the rates of the binds that may send add up to no more than
the contract after each step), and fencing (an instance presumed dead stops, drops
what it queued and comes back under a new id). Skipped with a printed reason
without SMPPD_TEST_POSTGRES_URL."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from twisted.internet import defer, task

from smppd.daemon.cluster import Cluster
from smppd.store import instances
from smppd.throttle.bucket import TokenBucket

CONTRACT = 100.0


class _Rate:
    def __init__(self, clock: task.Clock) -> None:
        self.bucket = TokenBucket(CONTRACT, now=clock.seconds())

    def set_contract(self, rate: float) -> None:
        self.bucket.set_rate(rate)


@dataclass
class _Channel:
    clock: task.Clock
    bound: bool = True
    rate: Any = None
    settings: Any = field(default_factory=lambda: SimpleNamespace(throughput=CONTRACT))

    def __post_init__(self) -> None:
        self.rate = _Rate(self.clock)
        self.connector = SimpleNamespace(bound=self.bound)
        self.current: Any = None
        self.retries: list[Any] = []

    @property
    def bucket(self) -> TokenBucket:
        return self.rate.bucket


class _Dispatcher:
    """What the cluster reads and sets on the dispatcher, for one SMSC "s"."""

    def __init__(self, clock: task.Clock, channel: bool = True) -> None:
        self.clock = clock
        self.channels = {"s": _Channel(clock)} if channel else {}
        self.cleared: set[str] | None = None
        self.feeders: dict[str, Any] = {}
        self.stopped = False
        self.memory_limit = 0  # no free work is looked for
        self.singles = SimpleNamespace(size=0, queues={})
        self.spilled = False
        self.lease_ok: Any = None
        self.on_spill: Any = None

    def pump_soon(self) -> None:
        pass

    def bind(self, up: bool) -> None:
        self.channels["s"].connector.bound = up

    def add_channel(self) -> None:
        self.channels["s"] = _Channel(self.clock)

    @property
    def sending_at(self) -> float:
        """The rate this instance may send to "s" now (0 while held)."""
        if self.cleared is not None and "s" not in self.cleared:
            return 0.0
        return self.channels["s"].bucket.rate


class _Instance:
    def __init__(self, engine: Any, clock: task.Clock, lease: float = 30.0,
                 channel: bool = True) -> None:
        def transaction(fn: Any, *args: Any) -> defer.Deferred[Any]:
            with engine.begin() as conn:
                return defer.succeed(fn(conn, *args))

        self.dispatcher = _Dispatcher(clock, channel)
        self.memory = SimpleNamespace(owner=None)
        self.cluster = Cluster(clock, transaction, self.dispatcher, self.memory,
                               lease=lease, heartbeat=1.0)
        self.cluster.register()

    def beat(self) -> None:
        self.cluster.beat()

    @property
    def sending_at(self) -> float:
        return self.dispatcher.sending_at


HALVES = (CONTRACT / 2, CONTRACT / 2)


def _beat(*order: _Instance) -> None:
    """Heartbeats, one after the other, in this order."""
    for instance in order:
        instance.beat()


def _rates(a: _Instance, b: _Instance) -> tuple[float, float]:
    return a.sending_at, b.sending_at


def test_heartbeats_are_numbered_in_one_order_and_a_fenced_one_gets_none(pg: Any) -> None:
    with pg.begin() as conn:
        instances.register(conn, "a", 60)
        instances.register(conn, "b", 60)
    numbers = []
    for name in ("a", "b", "a", "a", "b"):
        with pg.begin() as conn:
            numbers.append(instances.heartbeat(conn, name, 60, ["s"]))
            seen = {member.id: member.beat for member in instances.live(conn)}
        assert seen[name] == numbers[-1]
    assert numbers == sorted(numbers) and len(set(numbers)) == 5
    with pg.begin() as conn:
        conn.execute(text("UPDATE instances SET lease_until = now() - interval '1 day' "
                          "WHERE id = 'b'"))
        assert instances.heartbeat(conn, "b", 60, ["s"]) is None


def test_a_newcomer_sends_only_once_the_others_have_cut_their_share(pg: Any) -> None:
    clock = task.Clock()
    clock.advance(1_000)
    a = _Instance(pg, clock)
    assert a.sending_at == 0  # registered, not yet beaten: nothing is known
    a.beat()
    assert a.sending_at == CONTRACT  # alone on "s"

    b = _Instance(pg, clock)
    b.beat()  # B announces its bind; A has not seen it yet, still sends it all
    assert _rates(a, b) == (CONTRACT, 0)
    b.beat()  # still not: A has not beaten since
    assert b.sending_at == 0
    a.beat()  # A reads B's row: half
    assert _rates(a, b) == (CONTRACT / 2, 0)
    b.beat()  # A has beaten since B's announcement: B sends its half
    assert _rates(a, b) == HALVES
    bucket = b.dispatcher.channels["s"].bucket
    assert bucket.dry and bucket.available(clock.seconds()) == 0  # nothing saved up

    # B's bind flaps: A takes the whole contract back once it sees B unbound...
    b.dispatcher.bind(False)
    b.beat()
    a.beat()
    assert a.sending_at == CONTRACT
    # ...so B, bound again, waits for A to see it once more.
    b.dispatcher.bind(True)
    b.beat()
    assert _rates(a, b) == (CONTRACT, 0)
    _beat(a, b)
    assert _rates(a, b) == HALVES


def test_two_instances_starting_together_never_both_send_it_all(pg: Any) -> None:
    clock = task.Clock()
    a, b = _Instance(pg, clock), _Instance(pg, clock)
    for step, instance in enumerate((a, b, a, b, a, b)):
        instance.beat()
        assert sum(_rates(a, b)) <= CONTRACT, step
    assert _rates(a, b) == HALVES


def test_a_bind_made_after_registering_waits_as_well(pg: Any) -> None:
    """The daemon registers before it makes its binds: a channel the cluster never
    saw is held too, not free to send the whole contract before the first heartbeat."""
    clock = task.Clock()
    a = _Instance(pg, clock)
    a.beat()
    b = _Instance(pg, clock, channel=False)
    b.dispatcher.add_channel()
    assert _rates(a, b) == (CONTRACT, 0)
    _beat(b, a, b)
    assert _rates(a, b) == HALVES


def test_a_reload_splits_a_changed_contract_again_and_leaves_the_others(pg: Any) -> None:
    clock = task.Clock()
    a, b = _Instance(pg, clock), _Instance(pg, clock)
    _beat(a, b, a, b)
    assert _rates(a, b) == HALVES
    channel = a.dispatcher.channels["s"]
    channel.rate.set_contract(10.0)  # slowed by the SMSC's throttling, say
    a.cluster.reapply([])  # a reload that changed another SMSC, or none
    assert a.sending_at == 10.0
    channel.settings = SimpleNamespace(throughput=80.0)
    channel.rate.set_contract(80.0)  # what Channel.reconfigure does on a reload
    a.cluster.reapply(["s"])
    assert a.sending_at == 40.0


def test_an_instance_presumed_dead_stops_drops_its_queue_and_comes_back_anew(
        pg: Any) -> None:
    clock = task.Clock()
    a = _Instance(pg, clock, lease=3.0)
    a.beat()
    first_id = a.cluster.id
    assert a.memory.owner == first_id and a.cluster.lease_ok()
    # No heartbeat gets through (a pause, a database outage): by its own clock the
    # lease is no longer surely valid one heartbeat before it ends, and nothing is
    # sent from then on (the dispatcher asks lease_ok before every pass).
    clock.advance(3.0 - 1.0)
    assert not a.cluster.lease_ok()
    # Meanwhile the others saw its row expire; its next heartbeat finds that out.
    a.dispatcher.singles.queues["s"] = ["queued here"]
    a.dispatcher.singles.size = 1
    with pg.begin() as conn:
        conn.execute(text("UPDATE instances SET lease_until = now() - interval '1 s' "
                          "WHERE id = :id"), {"id": first_id})
    a.beat()
    assert a.cluster.fenced == 1
    assert a.dispatcher.singles.queues == {} and a.dispatcher.singles.size == 0
    assert a.dispatcher.spilled  # what it dropped is read from the store again
    assert a.cluster.id != first_id and a.memory.owner == a.cluster.id
    assert a.cluster.lease_ok() and a.sending_at == 0  # held until a heartbeat says
    a.beat()
    assert a.sending_at == CONTRACT
    with pg.begin() as conn:
        live = {member.id for member in instances.live(conn)}
    assert live == {a.cluster.id}


def test_a_heartbeat_stalled_while_holding_the_lock_does_not_stop_the_others(
        pg: Any) -> None:
    """A stops (SIGSTOP, a paused VM) right after taking the heartbeats' lock and
    never commits: the server ends its transaction once it has idled `wait` seconds,
    so B's heartbeat, waiting for the lock meanwhile, gets it (without that, B's
    wait would end in a lock timeout: an error, not a number)."""
    with pg.begin() as conn:
        instances.register(conn, "a", 60)
        instances.register(conn, "b", 60)
    stalled = pg.connect()
    stalled.begin()
    assert instances.heartbeat(stalled, "a", 60, ["s"], wait=0.5) is not None
    with pg.begin() as conn:
        assert instances.heartbeat(conn, "b", 60, ["s"], wait=5.0) is not None
    with pytest.raises(DBAPIError):  # A's transaction was ended under it
        stalled.commit()
    stalled.close()

