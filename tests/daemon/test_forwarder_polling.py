"""The e-mail forwarder polls its outbox only while e-mail can be sent (issue 13: an
idle daemon without smtp settings was woken every 30 s for a poll with nothing to do)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock

from smppd.config import SmtpSettings
from smppd.daemon.mail_outbox import POLL_SECONDS, Forwarder


class Wired:
    def __init__(self, smtp: SmtpSettings | None) -> None:
        self.clock = Clock()
        self.smtp = smtp
        self.reads = 0

        def read(_query: Any) -> defer.Deferred[Any]:
            self.reads += 1
            return defer.succeed([])  # nothing due

        self.forwarder = Forwarder(self.clock, read, lambda op: defer.succeed(None),
                                   lambda fn, *args: defer.succeed(None), lambda: self.smtp)

    def pending(self) -> list[float]:
        return [call.getTime() for call in self.clock.getDelayedCalls() if call.active()]


def _smtp() -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=2525)


def test_without_smtp_nothing_is_scheduled() -> None:
    wired = Wired(None)
    wired.forwarder.start()
    assert wired.pending() == []
    wired.forwarder.wake()  # an MO's commit still wakes it: a round with nothing to do
    assert wired.reads == 0


def test_with_smtp_the_outbox_is_polled_every_interval() -> None:
    wired = Wired(_smtp())
    wired.forwarder.start()
    assert wired.reads == 1  # at once: what a restart left pending
    assert wired.pending() == [POLL_SECONDS]
    wired.clock.advance(POLL_SECONDS)
    assert wired.reads == 2


def test_a_reload_that_adds_or_removes_smtp_starts_or_stops_the_polling() -> None:
    wired = Wired(None)
    wired.forwarder.start()
    wired.smtp = _smtp()
    wired.forwarder.resume()  # what Inbound.configure does on a reload
    assert wired.reads == 1 and wired.pending() == [POLL_SECONDS]
    wired.forwarder.resume()  # a reload that changes nothing: one loop, not two
    assert wired.pending() == [POLL_SECONDS]
    wired.smtp = None
    wired.forwarder.resume()
    assert wired.pending() == []


def test_a_stopped_forwarder_stays_stopped_through_a_reload() -> None:
    wired = Wired(_smtp())
    wired.forwarder.start()
    wired.forwarder.stop()
    wired.forwarder.resume()
    assert wired.pending() == []
