"""The daemon's listener without a network: MO reassembly bookkeeping and expiry."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock

from smppd.daemon.listener import DaemonListener, dedupe_key
from smppd.daemon.metrics import Metrics
from smppd.protocol.inbound import Concat, MoFragment
from smppd.store import operations as ops


def _listener() -> tuple[DaemonListener, Clock, list[Any]]:
    clock = Clock()
    written: list[Any] = []

    def put(op: Any) -> defer.Deferred[Any]:
        written.append(op)
        return defer.succeed(len(written))

    return DaemonListener(None, put, Metrics(), clock, reassembly_timeout=600), clock, written


def _part(number: int, payload: bytes = b"x") -> MoFragment:
    return MoFragment("48500100200", "1234", 0, payload, Concat(9, 2, number))


def test_a_message_whose_parts_stop_coming_expires_and_is_counted() -> None:
    listener, clock, written = _listener()
    listener.add_fragment("smsc", _part(1), 11)
    clock.advance(601)
    listener.expire()
    assert listener.metrics.inbound_expired._value.get() == 1
    assert listener._fragment_ids == {}
    listener.add_fragment("smsc", _part(2), 12)  # a late part starts a new group
    assert not any(isinstance(op, ops.InboundComplete) for op in written)


def test_a_complete_message_is_written_with_all_its_fragment_rows() -> None:
    listener, _clock, written = _listener()
    listener.add_fragment("smsc", _part(2, b"world"), 21)
    listener.add_fragment("smsc", _part(1, b"hello "), 20)
    complete = [op for op in written if isinstance(op, ops.InboundComplete)]
    assert len(complete) == 1
    assert complete[0].text == "hello world" and sorted(complete[0].fragment_ids) == [20, 21]


def test_dedupe_keys_differ_by_part_and_content() -> None:
    keys = {dedupe_key("smsc", _part(1)), dedupe_key("smsc", _part(2)),
            dedupe_key("smsc", _part(1, b"y")), dedupe_key("other", _part(1))}
    assert len(keys) == 4
    assert dedupe_key("smsc", _part(1)) == dedupe_key("smsc", _part(1))


def test_expiry_runs_only_while_parts_wait() -> None:
    """Issue 13: an idle daemon woke once a minute to expire nothing. The expiry timer
    runs from the first waiting part until the reassembler holds nothing."""
    listener, clock, _ = _listener()
    assert clock.getDelayedCalls() == []  # idle: nothing scheduled
    listener.add_fragment("smsc", _part(1), 11)
    assert [call.getTime() for call in clock.getDelayedCalls()] == [60.0]
    clock.advance(599)
    assert listener.metrics.inbound_expired._value.get() == 0
    clock.advance(1)  # the part is 600 s old at the tick at 600 s
    assert listener.metrics.inbound_expired._value.get() == 1
    assert clock.getDelayedCalls() == []  # nothing left to expire: no more ticks


def test_a_completed_message_is_remembered_for_its_timeout_then_the_timer_stops() -> None:
    listener, clock, _ = _listener()
    listener.add_fragment("smsc", _part(1, b"hello "), 20)
    listener.add_fragment("smsc", _part(2, b"world"), 21)  # complete: kept for redeliveries
    assert listener.reassembler.idle() is False
    clock.advance(600)
    assert listener.reassembler.idle() and clock.getDelayedCalls() == []
    assert listener.metrics.inbound_expired._value.get() == 0  # completed, not expired


def test_no_expiry_timer_after_shutdown() -> None:
    listener, clock, _ = _listener()
    listener.add_fragment("smsc", _part(1), 11)
    listener.stop_expiry()
    assert clock.getDelayedCalls() == []
    listener.add_fragment("smsc", _part(1, b"late"), 12)  # a part after the stop
    assert clock.getDelayedCalls() == []
