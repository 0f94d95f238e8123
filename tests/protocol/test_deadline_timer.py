"""The session's timer on the real reactor: a Linux timerfd that moves later without
a wake-up at its old deadline (issue 13: an idle daemon's wake-ups)."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import pytest
from twisted.internet import reactor
from twisted.internet.task import Clock

from smppd.protocol import deadline_timer as timers
from tests.conftest import call, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="timerfd is Linux's; elsewhere the DelayedCall is used")


def _kernel_timer(fired: list[float]) -> timers.KernelTimer:
    timer = call(timers.deadline_timer, reactor, lambda: fired.append(time.monotonic()))
    assert isinstance(timer, timers.KernelTimer)
    return timer


def test_a_timer_moved_later_does_not_fire_at_its_old_deadline(reactor_running: Any) -> None:
    fired: list[float] = []
    timer = _kernel_timer(fired)
    try:
        start = time.monotonic()
        call(lambda: timer.set(reactor.seconds() + 0.2))
        call(lambda: timer.set(reactor.seconds() + 1.5))  # the answer came: later
        # Nothing of it is left in Twisted's heap of timed calls, which decides how
        # long the reactor sleeps.
        assert not [c for c in call(reactor.getDelayedCalls)
                    if getattr(c.func, "__self__", None) is timer]
        time.sleep(0.6)
        assert fired == []  # not at 0.2
        wait_for(lambda: fired, timeout=10, what="the timer at its new deadline")
        assert len(fired) == 1 and fired[0] - start >= 1.4
        assert not call(lambda: timer.armed)
    finally:
        call(timer.close)


def test_a_deadline_already_past_fires_at_once_and_a_cleared_one_never(
        reactor_running: Any) -> None:
    fired: list[float] = []
    timer = _kernel_timer(fired)
    try:
        call(lambda: timer.set(reactor.seconds() - 5))  # past: all zeros would disarm
        wait_for(lambda: fired, what="a past deadline fired")
        call(lambda: timer.set(reactor.seconds() + 0.1))
        call(timer.clear)
        time.sleep(0.4)
        assert len(fired) == 1
    finally:
        call(timer.close)


def test_a_tick_that_fails_is_logged_and_the_timer_stays(
        reactor_running: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Raised out of doRead, the reactor would close the timer for good: every later
    deadline of the session lost, and `set` on a closed descriptor an error."""
    fired: list[float] = []

    def tick() -> None:
        fired.append(time.monotonic())
        if len(fired) == 1:
            raise RuntimeError("a handler's bug")

    timer = call(timers.deadline_timer, reactor, tick)
    try:
        call(lambda: timer.set(reactor.seconds() + 0.05))
        wait_for(lambda: fired, what="the first tick")
        assert not call(lambda: timer.closed) and timer in call(reactor.getReaders)
        call(lambda: timer.set(reactor.seconds() + 0.05))
        wait_for(lambda: len(fired) == 2, what="the timer set again after the error")
        assert "its tick failed" in caplog.text
    finally:
        call(timer.close)


def test_close_gives_back_the_descriptor(reactor_running: Any) -> None:
    timer = _kernel_timer([])
    fd = timer.fileno()
    call(lambda: timer.set(reactor.seconds() + 30))
    call(timer.close)
    assert timer.closed and timer not in call(reactor.getReaders)
    with pytest.raises(OSError):
        os.fstat(fd)
    call(timer.close)  # twice is harmless


def test_a_test_clock_gets_a_delayed_call() -> None:
    clock = Clock()
    timer = timers.deadline_timer(clock, lambda: None)
    assert isinstance(timer, timers.CallLaterTimer)
    timer.set(10.0)
    timer.set(10.5)  # within the slack: kept
    assert [c.getTime() for c in clock.getDelayedCalls()] == [10.0]
    timer.set(30.0)  # too early now: moved
    assert [c.getTime() for c in clock.getDelayedCalls() if c.active()] == [30.0]


def test_a_bound_link_waits_on_a_kernel_timer_after_an_enquire_link(connect: Any) -> None:
    """Over real TCP to the fake SMSC: the answered enquire_link leaves no DelayedCall
    of the session's behind (with one, the reactor woke at the answer's old deadline)."""
    connector, _listener = connect(enquire_link_interval=0.3, enquire_link_timeout=5.0)
    link = connector.links[0]
    protocol = link.protocol
    assert protocol is not None
    wait_for(lambda: protocol.session._last_received > 0, what="bound")
    time.sleep(1.0)  # three enquire_links or so, each answered
    assert connector.bound
    assert isinstance(protocol._timer, timers.KernelTimer)
    assert not [c for c in call(reactor.getDelayedCalls)
                if getattr(c.func, "__self__", None) is protocol]
