"""Rate-limited logging with an injected clock: bursts, summaries, keys, memory."""

from __future__ import annotations

import logging

import pytest
from twisted.internet.task import Clock

from smppd.ratelog import RateLimitedLog


@pytest.fixture
def logger(caplog: pytest.LogCaptureFixture) -> logging.Logger:
    caplog.set_level(logging.DEBUG, logger="test.ratelog")
    return logging.getLogger("test.ratelog")


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "test.ratelog"]


def test_burst_then_one_summary_at_the_end_of_the_interval(
        logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    flood = RateLimitedLog(logger, clock, burst=3, interval=60)
    written = [flood.warning("peer-a", "bad PDU %d", n) for n in range(1000)]
    assert written == [True] * 3 + [False] * 997
    assert _lines(caplog) == ["bad PDU 0", "bad PDU 1", "bad PDU 2"]
    assert flood.suppressed("peer-a") == 997
    clock.advance(59.9)
    assert len(_lines(caplog)) == 3  # the summary waits for the interval to end
    clock.advance(0.1)
    assert _lines(caplog)[3] == "peer-a: 997 more like this suppressed in the last 60 s"
    assert flood.suppressed("peer-a") == 0 and flood.total_suppressed == 997
    # A new interval starts with a fresh burst.
    assert flood.warning("peer-a", "bad PDU again")
    assert _lines(caplog)[-1] == "bad PDU again"


def test_no_summary_when_nothing_was_suppressed(
        logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    flood = RateLimitedLog(logger, clock, burst=5, interval=10)
    for n in range(5):
        flood.info("k", "line %d", n)
    clock.advance(100)
    assert len(_lines(caplog)) == 5
    assert clock.getDelayedCalls() == []  # no timer left behind


def test_keys_are_limited_separately_and_tuples_read_well(
        logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    flood = RateLimitedLog(logger, clock, burst=1, interval=5)
    for _ in range(3):
        flood.warning(("auth", "10.0.0.1"), "failed from %s", "10.0.0.1")
        flood.warning(("auth", "10.0.0.2"), "failed from %s", "10.0.0.2")
    assert _lines(caplog) == ["failed from 10.0.0.1", "failed from 10.0.0.2"]
    clock.advance(5)
    assert sorted(_lines(caplog)[2:]) == [
        "auth 10.0.0.1: 2 more like this suppressed in the last 5 s",
        "auth 10.0.0.2: 2 more like this suppressed in the last 5 s"]


def test_summary_keeps_the_highest_level_suppressed(
        logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    flood = RateLimitedLog(logger, clock, burst=1, interval=1)
    flood.info("k", "first")
    flood.info("k", "second")
    flood.error("k", "third")
    clock.advance(1)
    summary = [r for r in caplog.records if "suppressed" in r.getMessage()]
    assert [r.levelno for r in summary] == [logging.ERROR]


def test_lines_below_the_logger_level_cost_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    quiet = logging.getLogger("test.ratelog.quiet")
    quiet.setLevel(logging.ERROR)
    clock = Clock()
    flood = RateLimitedLog(quiet, clock, burst=1, interval=1)
    for _ in range(10):
        assert not flood.warning("k", "ignored")
    assert flood.suppressed("k") == 0 and clock.getDelayedCalls() == []


def test_the_number_of_keys_is_bounded_and_no_count_is_lost(
        logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    flood = RateLimitedLog(logger, clock, burst=1, interval=60, max_keys=10)
    for address in range(100):
        flood.warning(address, "from %d", address)
        flood.warning(address, "from %d", address)  # suppressed
    assert len(flood._windows) == 10
    clock.advance(60)
    summaries = [line for line in _lines(caplog) if "suppressed" in line]
    assert len(summaries) == 100  # 90 written at eviction, 10 at the interval's end
    assert clock.getDelayedCalls() == []


def test_flush_writes_pending_summaries(logger: logging.Logger,
                                       caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    flood = RateLimitedLog(logger, clock, burst=1, interval=60)
    flood.warning("k", "one")
    flood.warning("k", "two")
    clock.advance(12)
    flood.flush()
    assert _lines(caplog)[-1] == "k: 1 more like this suppressed in the last 12 s"
    assert clock.getDelayedCalls() == []


@pytest.mark.parametrize("kwargs", [{"burst": 0}, {"interval": 0}, {"max_keys": 0}])
def test_nonsense_limits_are_refused(logger: logging.Logger, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RateLimitedLog(logger, Clock(), **kwargs)  # type: ignore[arg-type]
