"""The one timer SessionProtocol keeps at the session's next deadline, on a task.Clock:
an idle bind wakes only when something is due (issue 13)."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from smppd.protocol import pdu as codec
from smppd.protocol.framing import Framer
from smppd.protocol.pdu import Pdu
from smppd.protocol.session import Bound, EsmeSession, SessionConfig
from smppd.protocol.twisted_transport import SessionProtocol

INTERVAL, ANSWER_WITHIN = 30.0, 10.0


class Wired:
    """A SessionProtocol over a StringTransport, the SMSC's side played by hand."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.events: list[Any] = []
        self.session = EsmeSession(SessionConfig(
            system_id="acme", password="pw", window=10, response_timeout=5.0,
            enquire_link_interval=INTERVAL, enquire_link_timeout=ANSWER_WITHIN))
        self.protocol = SessionProtocol(self.session, lambda _p, events: self.events.extend(events),
                                        self.clock, lambda _p, _why: None)
        self.transport = StringTransport()
        self.framer = Framer()
        self.protocol.makeConnection(self.transport)

    def sent(self) -> list[Pdu]:
        data = self.transport.value()
        self.transport.clear()
        return [codec.decode(frame) for frame in self.framer.feed(data)]

    def answer(self, request: Pdu, **fields: Any) -> None:
        self.protocol.dataReceived(codec.encode(codec.response_to(request, **fields)))

    def due(self) -> list[float]:
        """When the clock will next call anything: the protocol's timer only."""
        return sorted(call.getTime() for call in self.clock.getDelayedCalls()
                      if call.active())

    def bind(self) -> None:
        (bind,) = self.sent()
        self.answer(bind, system_id="smsc")
        assert Bound("smsc") in self.events


def test_after_an_answered_enquire_link_the_timer_waits_for_the_next_one() -> None:
    wired = Wired()
    wired.bind()
    assert wired.due() == [INTERVAL]  # the first enquire_link
    wired.clock.advance(INTERVAL)
    (enquire,) = wired.sent()
    assert enquire.command == "enquire_link"
    assert wired.due() == [INTERVAL + ANSWER_WITHIN]  # its answer is awaited
    wired.clock.advance(0.01)
    wired.answer(enquire)
    # Not left at the answer's old deadline (a wake-up with nothing to do).
    assert wired.due() == [INTERVAL + 0.01 + INTERVAL]
    wired.clock.advance(INTERVAL + 0.01)
    (again,) = wired.sent()
    assert again.command == "enquire_link"


def test_an_idle_hour_wakes_the_bind_once_per_enquire_link_and_answer() -> None:
    """Each timer the clock fires is a wake-up of an idle daemon: one to send each
    enquire_link (its answer wakes the daemon through the socket, not the timer)."""
    wired = Wired()
    wired.bind()
    fired = 0
    for _ in range(int(3600 / INTERVAL)):
        wired.clock.advance(wired.due()[0] - wired.clock.seconds())
        fired += 1
        (enquire,) = wired.sent()
        wired.clock.advance(0.005)
        wired.answer(enquire)
    assert fired == 120
    assert wired.due() == [wired.clock.seconds() + INTERVAL]
    assert not [event for event in wired.events if not isinstance(event, Bound)]


def test_a_deadline_that_creeps_forward_keeps_the_timer() -> None:
    """Submits answered one after another move the window's oldest deadline later by
    a little each time: the timer stays (no cancel and new call per response)."""
    wired = Wired()
    wired.bind()
    wired.protocol.submit({"destination_addr": "48500100200", "short_message": b"a"}, "a")
    wired.clock.advance(0.1)
    wired.protocol.submit({"destination_addr": "48500100201", "short_message": b"b"}, "b")
    first, second = wired.sent()
    (timer,) = [call for call in wired.clock.getDelayedCalls() if call.active()]
    assert timer.getTime() == 5.0  # the first submit's timeout
    wired.answer(first, message_id="1")
    # 5.1 is due within the slack: the same call is kept.
    assert [call for call in wired.clock.getDelayedCalls() if call.active()] == [timer]
    wired.answer(second, message_id="2")
    assert wired.due() == [INTERVAL + 0.1]  # nothing open: the next enquire_link

