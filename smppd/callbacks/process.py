"""The daemon's side of the drainer process (smppd.callbacks.worker): spawn it, tell
it its duty and when to sweep, count what it reports in the daemon's metrics,
start it again when it dies, stop it last thing.

A worker that dies is started again after RESTART_DELAY seconds: its events are
still pending in the outbox, and the new one reads them from the oldest (some may
be sent twice: the event id lets the receiver drop the copy). A daemon killed with
kill -9 takes its worker with it, through the end of the worker's stdin.

The worker writes nothing to the database itself: its writes (attempt results,
expiries) come over the pipe and go to the daemon's writer (worker.py says why),
and each answer goes back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, error, task
from twisted.internet.protocol import ProcessProtocol

from . import worker

log = logging.getLogger("smppd.callbacks")
RESTART_DELAY = 1.0  # seconds before a worker that died is started again
DUTY_EVERY = 1.0  # seconds between looks at the duty (several instances)
MAX_LINE = 4 * 1024 * 1024  # a report longer than this is a broken worker
REAP_EVERY = 0.05  # seconds between looks for an exiting worker's end
READY_TIMEOUT = 30.0  # seconds the daemon's start waits for the worker's first answer
NUDGE_EVERY = 0.25  # seconds at least between two "read now" to the worker (its TICK)
NUDGED_POLL = 5.0  # seconds between the worker's own reads when it is nudged


class DrainerProcess(ProcessProtocol):
    def __init__(self, reactor: Any, spec: Callable[[bool], str], metrics: Any,
                 put: Callable[[Any], defer.Deferred[Any]],
                 stop_timeout: float = 30.0) -> None:
        self.reactor = reactor
        self.put = put  # the daemon's writer: the worker's writes are recorded there
        self.spec = spec  # duty -> the worker's argument (see worker.spec)
        self.metrics = metrics  # CallbackMetrics: attempt(result, seconds), gave_up()
        self.stop_timeout = stop_timeout
        self.duty: Callable[[], bool] = lambda: True
        self.running = False  # a worker process is alive
        self.stopping = False
        self.pid: int | None = None
        self._told_duty: bool | None = None
        self._buffer = b""
        self._ended: defer.Deferred[None] | None = None
        self._restart: Any = None
        self._duty_loop: task.LoopingCall | None = None
        self._nudge: Any = None  # a nudge waiting for NUDGE_EVERY to pass
        self._nudged_at = float("-inf")
        self._go = False  # the daemon has started: a worker drains from its start
        self._ready: defer.Deferred[None] | None = None
        self._reaper: task.LoopingCall | None = None

    def start(self) -> defer.Deferred[None]:
        """The worker drains; fires once it says so (or after READY_TIMEOUT, with an
        error logged: the daemon does not hang on a worker that cannot start)."""
        self._go = True
        self._ready = ready = defer.Deferred()
        if self.running:
            self._send({"go": True})
        else:
            self._spawn()
        self._duty_loop = task.LoopingCall(self._check_duty)
        self._duty_loop.clock = self.reactor
        self._duty_loop.start(DUTY_EVERY, now=False)

        def late() -> None:
            log.error("callbacks worker: not ready after %g s; the daemon starts without "
                      "waiting for it", READY_TIMEOUT)
            self._set_ready()

        timer = self.reactor.callLater(READY_TIMEOUT, late)
        ready.addBoth(lambda result: timer.cancel() if timer.active() else None)
        return ready

    def _set_ready(self) -> None:
        ready, self._ready = self._ready, None
        if ready is not None:
            ready.callback(None)

    def _spawn(self) -> None:
        if self.stopping:
            return
        self._restart = None
        self._buffer = b""
        self._told_duty = self.duty()
        self._ended = defer.Deferred()
        argv = [sys.executable, "-m", "smppd.callbacks.worker", self.spec(self._told_duty)]
        transport = self.reactor.spawnProcess(self, sys.executable, argv, env=dict(os.environ),
                                              childFDs={0: "w", 1: "r", 2: 2})
        self.pid = transport.pid
        self.running = True
        if self._go:
            self._send({"go": True})

    # What the daemon tells the worker ----------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        if self.running and self.transport is not None:
            self.transport.writeToChild(0, json.dumps(message).encode() + b"\n")

    def _check_duty(self) -> None:
        duty = self.duty()
        if duty != self._told_duty:
            self._told_duty = duty
            self._send({"duty": duty})

    def nudge(self) -> None:
        """The daemon's writer committed a batch, which may have written events: the
        worker reads new events, at most once per NUDGE_EVERY. With these the worker
        polls only slowly (worker.spec's `poll`), so an idle daemon's worker makes no
        reads, and a busy one's as many as before (issue 13)."""
        if self._nudge is not None or not self.running:
            return
        wait = self._nudged_at + NUDGE_EVERY - self.reactor.seconds()
        if wait <= 0:
            self._send_nudge()
        else:
            self._nudge = self.reactor.callLater(wait, self._send_nudge)

    def _send_nudge(self) -> None:
        self._nudge = None
        self._nudged_at = self.reactor.seconds()
        self._send({"read": True})

    def sweep_soon(self) -> None:
        """A resend made an event due now: the worker sweeps at its next tick."""
        self._send({"sweep": True})

    # What the worker tells the daemon ----------------------------------------------------

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        if b"\n" not in data:
            if len(self._buffer) > MAX_LINE:
                log.error("callbacks worker: an over-long report; restarting it")
                self._buffer = b""
                self.transport.signalProcess("KILL")
            return
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            try:
                report = json.loads(line)
                if "put" in report:
                    self._write(int(report["put"]), worker.decode_op(report["op"]))
                    continue
                if report.get("ready"):
                    self._set_ready()
                    continue
                if "results" in report:
                    self.metrics.attempts(report["results"], report["buckets"],
                                          float(report["seconds"]))
                for _ in range(int(report.get("gave_up", 0))):
                    self.metrics.gave_up()
            except (ValueError, TypeError, AttributeError):
                log.error("callbacks worker: unreadable report %r", line[:200])

    def outConnectionLost(self) -> None:
        """The worker closed its stdout: it is exiting. Reap it by polling: a reactor
        run without signal handlers (embedded, or the tests') never hears SIGCHLD,
        and processEnded would then never come."""
        if self._reaper is None or not self._reaper.running:
            self._reaper = task.LoopingCall(self._reap)
            self._reaper.clock = self.reactor
            self._reaper.start(REAP_EVERY, now=False)

    def _reap(self) -> None:
        if self.running and self.transport is not None:
            self.transport.reapProcess()
        elif self._reaper is not None and self._reaper.running:
            self._reaper.stop()

    def _write(self, number: int, op: Any) -> None:
        """A write of the worker's through the daemon's writer; its result goes back
        to the worker that asked (a new worker knows nothing of an old one's)."""
        asker = self.transport

        def answer(result: Any) -> None:
            if self.running and self.transport is asker:
                self._send({"done": number, "result": result})

        def refused(failure: Any) -> None:
            if self.running and self.transport is asker:
                self._send({"done": number, "error": failure.getErrorMessage()})

        self.put(op).addCallbacks(answer, refused)

    def processEnded(self, reason: Any) -> None:
        self.running = False
        if self._reaper is not None and self._reaper.running:
            self._reaper.stop()
        ended, self._ended = self._ended, None
        if self.stopping:
            if ended is not None:
                ended.callback(None)
            self._set_ready()
            return
        log.error("callbacks worker (pid %s) ended: %s; starting another in %g s",
                  self.pid, reason.getErrorMessage(), RESTART_DELAY)
        if ended is not None:
            ended.callback(None)
        self._restart = self.reactor.callLater(RESTART_DELAY, self._spawn)

    # Stop ------------------------------------------------------------------------------

    def stop(self) -> defer.Deferred[None]:
        """Tell the worker to stop (its last results come through the daemon's
        writer, which must still run); killed if it has not ended within
        stop_timeout."""
        self.stopping = True
        if self._duty_loop is not None and self._duty_loop.running:
            self._duty_loop.stop()
        if self._restart is not None and self._restart.active():
            self._restart.cancel()
        if self._nudge is not None and self._nudge.active():
            self._nudge.cancel()
        ended = self._ended
        if not self.running or ended is None:
            return defer.succeed(None)
        self._send({"stop": True})
        timer = self.reactor.callLater(self.stop_timeout, self._kill)
        waiter: defer.Deferred[None] = defer.Deferred()

        def done(_: Any) -> None:
            if timer.active():
                timer.cancel()
            waiter.callback(None)

        ended.addCallback(done)
        return waiter

    def _kill(self) -> None:
        log.error("callbacks worker (pid %s) did not stop in %g s: killed", self.pid,
                  self.stop_timeout)
        with contextlib.suppress(error.ProcessExitedAlready):
            self.transport.signalProcess("KILL")
