"""Twisted's log events reach Python logging; accept failures are rate-limited."""

from __future__ import annotations

import logging

import pytest
from twisted.internet.task import Clock
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from smppd.twistedlog import AcceptFailures, TwistedLogBridge

PORT = "twisted.internet.tcp.Port"


def _event(form: str, level: LogLevel = LogLevel.info, namespace: str = PORT,
           **fields: object) -> dict[str, object]:
    return {"log_format": form, "log_level": level, "log_namespace": namespace, **fields}


def test_emfile_closures_become_a_few_lines_and_a_count(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    bridge = TwistedLogBridge(clock)
    for n in range(2000):
        bridge(_event("EMFILE encountered; releasing reserved file descriptor."))
        bridge(_event("EMFILE recovery: Closed socket from {address}",
                      address=("10.0.0.7", 1000 + n)))
        bridge(_event("Re-reserving EMFILE recovery file descriptor."))
    bridge(_event("Could not accept new connection ({acceptError})", acceptError="ENFILE"))
    clock.advance(60)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 + 1 + 1  # three samples, one summary, the ENFILE line
    assert "out of file descriptors" in lines[0] and "10.0.0.7" in lines[0]
    assert "1997 more like this suppressed" in lines[-1]
    assert "ENFILE" in lines[3]
    assert bridge.accept_failures == 2001
    metric = next(iter(AcceptFailures(bridge).collect()))
    assert metric.samples[0].value == 2001


def test_warnings_and_errors_pass_through_and_chatter_stays_out(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bridge = TwistedLogBridge(Clock())
    bridge(_event("Starting factory {factory!r}", factory="f", namespace="twisted.x"))
    bridge(_event("Unhandled error in Deferred:", LogLevel.critical, "twisted.internet.defer",
                  log_failure=Failure(ValueError("boom"))))
    bridge(_event("something odd: {what}", LogLevel.warn, "twisted.y", what="x"))
    records = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert records[0][:2] == ("smppd.twisted", logging.CRITICAL)
    assert "Unhandled error in Deferred" in records[0][2] and "ValueError: boom" in records[0][2]
    assert records[1] == ("smppd.twisted", logging.WARNING, "something odd: x")
    assert len(records) == 2
