"""E-mail copies of MO messages, sent from the outbox table.

The copy is written in the MO's own transaction (smppd.store.inbound_routing); this
loop sends what is pending, off the reactor, and records the outcome through the
writer. A restart sends again what was pending, with the same Message-ID, so a
copy is never lost and a mail system can drop a repeat. Temporary failures are
retried with growing delays, up to MAX_ATTEMPTS.

URL forwarding is not sent here: the setting is stored and validated, and the
webhook outbox of the callbacks subsystem (issue 12) delivers it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task
from twisted.python.failure import Failure

from ..config import SmtpSettings
from ..inbound.pool import display
from ..mail import Mail, MailError, send
from ..store import inbound_queries as iq
from ..store.inbound_ops import ForwardDone

log = logging.getLogger("smppd.inbound")
MAX_ATTEMPTS = 10
POLL_SECONDS = 30.0


def delay_after(attempts: int) -> float:
    return min(3600.0, 30.0 * 2 ** attempts)


def mail_for(row: Any) -> Mail:
    sender = display(row.source.removeprefix("+"))
    number = display(row.destination.removeprefix("+"))
    text = (f"From: {sender}\nTo: {number}\nReceived: {row.received_at:%Y-%m-%d %H:%M:%S} UTC\n"
            f"\n{row.text if row.text is not None else '(binary content)'}\n")
    return Mail(tuple(json.loads(row.recipients)), f"SMS from {sender} to {number}", text,
                f"<inbound-forward-{row.id}@smppd>")


class Forwarder:
    def __init__(self, reactor: Any, read: Callable[..., defer.Deferred[Any]],
                 put: Callable[[Any], defer.Deferred[Any]],
                 in_thread: Callable[..., defer.Deferred[Any]],
                 smtp: Callable[[], SmtpSettings | None]) -> None:
        self.reactor = reactor
        self.read = read
        self.put = put
        self.in_thread = in_thread
        self.smtp = smtp
        self.sent = 0
        self.failed = 0
        self._busy = False
        self._again = False
        self._loop: task.LoopingCall | None = None
        self.duty: Callable[[], bool] = lambda: True  # issue 14: one instance sends

    def start(self) -> None:
        self._loop = task.LoopingCall(self.wake)
        self._loop.clock = self.reactor
        self.resume()

    def resume(self) -> None:
        """Poll (for retries, and what a restart left pending) only while e-mail can
        be sent. Without `smtp` a poll finds nothing to do, and it woke an idle
        daemon every 30 s for it, a third of its wake-ups (issue 13). At start, and
        after a reload, which may have added or removed the smtp settings."""
        loop = self._loop
        if loop is None:
            return  # not started, or stopped
        if self.smtp() is None:
            if loop.running:
                loop.stop()
        elif not loop.running:
            loop.start(POLL_SECONDS, now=True)

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()

    def wake(self) -> None:
        """Send what is due; called after an MO with e-mail forwards commits."""
        if not self.duty():
            return
        if self._busy:
            self._again = True
            return
        self._busy = True
        self._round().addBoth(self._done)

    def _done(self, result: Any) -> None:
        self._busy = False
        if isinstance(result, Failure):
            log.error("e-mail forwards: %s", result.getErrorMessage())
        if self._again:
            self._again = False
            self.wake()

    @defer.inlineCallbacks
    def _round(self) -> Any:
        settings = self.smtp()
        if settings is None:
            return
        for row in (yield self.read(iq.due_forwards)):
            try:
                yield self.in_thread(send, settings, mail_for(row))
            except MailError as exc:
                attempts = row.attempts + 1
                retry_at = self.reactor.seconds() + delay_after(attempts) \
                    if exc.temporary and attempts < MAX_ATTEMPTS else None
                log.warning("e-mail forward %d %s: %s", row.id,
                            "will be retried" if retry_at else "failed for good", exc)
                self.failed += retry_at is None
                yield self.put(ForwardDone(row.id, False, str(exc), retry_at))
                continue
            self.sent += 1
            yield self.put(ForwardDone(row.id, True))
