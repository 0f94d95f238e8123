"""The callbacks worker's CPU priority (smppd.callbacks.priority): SCHED_IDLE, else
nice 19, else unchanged with a warning; never an exception that would end the worker.
The calls are replaced here: the test process keeps its own priority."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest

from smppd.callbacks import priority


def refuse(*_: Any) -> Any:
    raise PermissionError(1, "Operation not permitted")


def test_sched_idle_first(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(os, "sched_setscheduler", lambda *args: calls.append(args))
    monkeypatch.setattr(os, "nice", refuse)
    assert priority.lower() == "SCHED_IDLE"
    assert calls[0][:2] == (0, os.SCHED_IDLE)


def test_nice_19_when_sched_idle_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    niceness = [5]

    def nice(increment: int) -> int:
        niceness[0] += increment
        return niceness[0]

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    monkeypatch.setattr(os, "nice", nice)
    assert priority.lower() == "nice 19 (SCHED_IDLE refused (Operation not permitted))"
    assert niceness == [19]


def test_unchanged_and_said_when_both_are_refused(monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    monkeypatch.setattr(os, "nice", refuse)
    with caplog.at_level(logging.WARNING, logger="smppd.callbacks"):
        assert priority.lower() == "unchanged"
    assert "may then slow the sending" in caplog.text
