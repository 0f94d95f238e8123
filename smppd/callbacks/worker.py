"""The drainer in a process of its own (`python -m smppd.callbacks.worker SPEC`),
spawned and watched by the daemon (smppd.callbacks.process).

Why a process: measured in bench/callbacks.py, a delivery costs the daemon about
0.4 ms of CPU (the outbox read and the body, the signature, the POST and its
answer, the result's write), and the daemon's one interpreter (one GIL) is already
busy accepting and sending: with the drainer inside it, callbacks and sending
shared one core while the machine's second stood idle, and deliveries stayed
far under the 2,000/s of issue 12. Here the drainer has an interpreter, a reactor
and a core of its own, and the daemon only writes outbox rows in the transactions
it was writing anyway.

It reads the outbox itself, on its own read pool (on SQLite, deferred
transactions: a read never takes the write lock, nor waits for it). It writes
nothing itself: what became of its attempts goes to the daemon over the pipe, and
the daemon's one writer records it in the transactions it commits anyway. (A
first version wrote through a writer of its own: on SQLite the two writers then
took turns at the lock through the busy handler's sleeps, and both the sending
and the deliveries slowed to a third.) At least once holds as before: an event
leaves the outbox only when its 2xx is recorded, so a worker that dies (or is
killed with its daemon) loses memory, never events.

The pipe to the daemon is lines of JSON. stdin (from the daemon): `{"go": true}`
(start draining; answered `{"ready": true}`), `{"duty": bool}` (several instances:
only the holder of the "callbacks" duty drains), `{"sweep": true}` (a resend is
waiting: sweep now), `{"read": true}` (the daemon's writer committed: read new events
now; without it the worker reads every `poll` seconds), `{"done": n, "result": ...}`
or `{"done": n, "error": text}` (the daemon's writer committed, or refused, write n)
and `{"stop": true}` (write what is left, then exit); EOF (the daemon died) ends the
worker at once. stdout (to the daemon): `{"put": n, "op": ...}` (a write, see
encode_op), `{"results": {result: n}, "buckets": [n, ...], "seconds": s, "gave_up": n}` (the
attempts since the last report, as tally.Tally counts them) every REPORT_EVERY
seconds, so that the daemon's /metrics count deliveries as before.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, stdio, task
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from .. import logs
from ..store import database
from ..store.callback_operations import DeliveryResults, ExpireTarget
from ..store.limits import StoreLimits
from . import priority
from .delivery import Sender
from .drainer import TICK, Drainer, DrainSettings
from .tally import Tally

if TYPE_CHECKING:  # smppd.config is not imported at run time: it is slow to import
    from ..config import CallbackSettings

log = logging.getLogger("smppd.callbacks")
REPORT_EVERY = 0.25  # seconds between metric reports to the daemon
# The worker runs on the CPU the daemon leaves, once it is ready (priority.py).


def spec(database_url: str, callbacks: CallbackSettings, limits: StoreLimits,
         log_level: str, duty: bool, poll: float = TICK) -> str:
    """The worker's command-line argument: what it needs of the daemon's settings, and
    how often to look for new events unasked (`poll`)."""
    return json.dumps({"database": database_url, "callbacks": asdict(callbacks),
                       "store": asdict(limits), "log_level": log_level, "duty": duty,
                       "poll": poll})


def encode_op(op: DeliveryResults | ExpireTarget) -> dict[str, Any]:
    """The drainer's writes as the pipe carries them."""
    if isinstance(op, DeliveryResults):
        return {"kind": "results", "rows": op.rows, "delivered": op.delivered}
    return {"kind": "expire", "target": op.target, "before": op.before, "error": op.error}


def decode_op(data: dict[str, Any]) -> DeliveryResults | ExpireTarget:
    if data["kind"] == "results":
        return DeliveryResults(
            tuple(tuple(row) for row in data["rows"]),
            tuple((float(finished), int(attempts), status, tuple(seqs))
                  for finished, attempts, status, seqs in data.get("delivered", ())))
    if data["kind"] == "expire":
        return ExpireTarget(str(data["target"]), float(data["before"]), str(data["error"]))
    raise ValueError(f"not a callbacks write: {data.get('kind')!r}")


class DaemonGone(Exception):
    """The daemon's end of the pipe closed with a write unanswered."""


class Relay:
    """The drainer's metrics (smppd.callbacks.metrics.CallbackMetrics's attempt and
    gave_up) counted here and reported to the daemon, which owns /metrics: counts,
    not a line per attempt (tally.py says why)."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.tally = Tally()
        self.gave_up_count = 0

    def attempt(self, result: str, seconds: float) -> None:
        self.tally.add(result, seconds)

    def gave_up(self) -> None:
        self.gave_up_count += 1

    def report(self) -> None:
        tally = self.tally
        if not tally and not self.gave_up_count:
            return
        line = json.dumps({"results": tally.results, "buckets": tally.buckets,
                           "seconds": round(tally.seconds, 6),
                           "gave_up": self.gave_up_count}, separators=(",", ":"))
        self.tally, self.gave_up_count = Tally(), 0
        self.out.write(line.encode() + b"\n")


@implementer(IHalfCloseableProtocol)
class Commands(Protocol):
    """The daemon's lines on stdin; EOF ends the worker. Half-closeable, so that
    stdout still takes the last report after stdin has closed."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            if line.strip():
                self.worker.command(json.loads(line))

    def readConnectionLost(self) -> None:
        self.worker.daemon_gone()

    def writeConnectionLost(self) -> None:
        self.worker.daemon_gone()

    def connectionLost(self, reason: Any = None) -> None:
        self.worker.daemon_gone()


class Worker:
    def __init__(self, reactor: Any, options: dict[str, Any], out: Any) -> None:
        self.reactor = reactor
        settings = options["callbacks"]  # CallbackSettings as a dict
        limits = StoreLimits(**options["store"])
        url = options["database"]
        # Reads start deferred: on SQLite a BEGIN IMMEDIATE read would queue for the
        # write lock behind the daemon's writer (and hold it up in turn).
        self.reader = database.make_engine(url, pool_size=2, immediate=False, limits=limits)
        self.pool = ThreadPool(minthreads=1, maxthreads=2, name="smppd-drain-read")
        self.relay = Relay(out)
        self._puts: dict[int, defer.Deferred[Any]] = {}
        self._next_put = 0
        self._gone = False
        self.sender = Sender(reactor, settings["timeout"], settings["concurrency"],
                             settings["ca_file"])
        self.drainer = Drainer(reactor, self.read, self.put, self.sender.send,
                               DrainSettings(settings["concurrency"], settings["max_age"],
                                             settings["retry_initial"], settings["retry_max"]),
                               self.relay)
        self.duty = bool(options.get("duty", True))
        self.poll = float(options.get("poll", TICK))
        self.drainer.duty = lambda: self.duty
        self._report = task.LoopingCall(self.relay.report)
        self._report.clock = reactor
        self._stopping = False
        self._started = False
        self.lower_priority = False  # main() sets it: not in a test's own process

    def read(self, fn: Any, *args: Any) -> defer.Deferred[Any]:
        def run() -> Any:
            with self.reader.connect() as conn:
                return fn(conn, *args)
        return deferToThreadPool(self.reactor, self.pool, run)

    def put(self, op: Any) -> defer.Deferred[Any]:
        """A write for the daemon's writer; fires with its result once committed."""
        if self._gone:
            return defer.fail(DaemonGone("the daemon is gone"))
        self._next_put += 1
        number = self._next_put
        d: defer.Deferred[Any] = defer.Deferred()
        self._puts[number] = d
        line = json.dumps({"put": number, "op": encode_op(op)}, separators=(",", ":"))
        self.relay.out.write(line.encode() + b"\n")
        return d

    def _done(self, message: dict[str, Any]) -> None:
        d = self._puts.pop(int(message["done"]), None)
        if d is None:
            return
        if "error" in message:
            d.errback(RuntimeError(str(message["error"])))
        else:
            d.callback(message.get("result"))

    def daemon_gone(self) -> None:
        """EOF from the daemon: it died (or closed the pipe). Nothing can be written
        any more: writes under way fail (their events are still pending and will be
        sent again by the next worker), and the worker ends."""
        if self._gone:
            return
        self._gone = True
        puts, self._puts = self._puts, {}
        for d in puts.values():
            d.errback(DaemonGone("the daemon is gone"))
        self.shutdown()

    def start(self) -> None:
        if self._started or self._stopping:
            return
        self._started = True
        self.pool.start()
        self.drainer.start(self.poll)
        self._report.start(REPORT_EVERY, now=False)
        self.relay.out.write(b'{"ready":true}\n')
        if self.lower_priority:  # from now on, on the CPU the daemon leaves
            log.debug("callbacks worker: CPU priority %s", priority.lower())

    def command(self, message: dict[str, Any]) -> None:
        if "done" in message:
            self._done(message)
            return
        if message.get("go"):
            self.start()
        if message.get("stop"):
            self.shutdown()
        if "duty" in message:
            self.duty = bool(message["duty"])
        if message.get("sweep"):
            self.drainer.sweep_soon()
        if message.get("read"):  # the daemon's writer committed: events may be new
            self.drainer.read_now()

    @defer.inlineCallbacks
    def shutdown(self) -> Any:
        """The attempts under way end as they end; their results, and every result
        not yet written, are written (by the daemon, if it is still there) before
        the process exits."""
        if self._stopping:
            return
        self._stopping = True
        try:
            if self._started:
                yield self.drainer.stop()
                yield self.sender.close()
                self.relay.report()
                if self._report.running:
                    self._report.stop()
        except Exception:
            log.exception("callbacks worker: stopping failed")
        finally:
            if self._started:
                self.pool.stop()
            self.reader.dispose()
            self.reactor.stop()


def main(argv: list[str]) -> int:
    options = json.loads(argv[0])
    logs.configure(options.get("log_level", "info"))
    from twisted.internet import reactor

    from ..twistedlog import install

    install(reactor)

    worker = Worker(reactor, options, None)
    worker.lower_priority = True

    def begin() -> None:
        # stdout as a transport: a report waits in its buffer, never on the pipe. The
        # drainer starts at the daemon's {"go": true}: spawned early, the worker has
        # imported while the daemon started, and drains once the schema is migrated.
        worker.relay.out = stdio.StandardIO(Commands(worker))

    reactor.callWhenRunning(begin)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
