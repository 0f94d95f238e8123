"""The callbacks worker's CPU priority (smppd.callbacks.priority): SCHED_IDLE (else
SCHED_BATCH) and nice 19 for every thread; what is refused is skipped, and a worker
left at the daemon's priority says so; never an exception that would end the
worker. The calls are replaced here: the test process keeps its own priority."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest

from smppd.callbacks import priority


def refuse(*_: Any) -> Any:
    raise PermissionError(1, "Operation not permitted")


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    tids = [101, 102, 103]
    monkeypatch.setattr(priority, "_threads", lambda: tids)
    return tids


def test_idle_and_nice_19_for_every_thread(monkeypatch: pytest.MonkeyPatch,
                                            threads: list[int]) -> None:
    policies: dict[int, int] = {}
    niceness: dict[int, int] = {}

    def gone(tid: int, *_: Any) -> None:
        raise ProcessLookupError(3, "No such process")

    monkeypatch.setattr(os, "sched_setscheduler",
                        lambda tid, policy, _param: policies.__setitem__(tid, policy))
    monkeypatch.setattr(os, "setpriority",
                        lambda _which, tid, value: niceness.__setitem__(tid, value))
    assert priority.lower() == "SCHED_IDLE and nice 19"
    assert policies == {tid: os.SCHED_IDLE for tid in threads}
    assert niceness == {tid: 19 for tid in threads}
    threads.append(104)  # a thread that ended in between is skipped
    monkeypatch.setattr(os, "setpriority", lambda _w, tid, _v: gone(tid) if tid == 104
                        else None)
    assert priority.lower() == "SCHED_IDLE and nice 19"


def test_batch_when_idle_is_refused_and_nice_19_alone(monkeypatch: pytest.MonkeyPatch,
                                                      threads: list[int]) -> None:
    policies: dict[int, int] = {}
    niceness: dict[int, int] = {}

    def only_batch(tid: int, policy: int, _param: Any) -> None:
        if policy != os.SCHED_BATCH:
            refuse()
        policies[tid] = policy

    monkeypatch.setattr(os, "sched_setscheduler", only_batch)
    monkeypatch.setattr(os, "setpriority",
                        lambda _which, tid, value: niceness.__setitem__(tid, value))
    assert priority.lower() == \
        "SCHED_BATCH and nice 19 (refused: SCHED_IDLE (Operation not permitted))"
    assert policies == {tid: os.SCHED_BATCH for tid in threads}
    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    assert priority.lower() == ("nice 19 (refused: SCHED_IDLE (Operation not permitted), "
                                "SCHED_BATCH (Operation not permitted))")
    assert niceness == {tid: 19 for tid in threads}


def test_unchanged_and_said_when_both_are_refused(monkeypatch: pytest.MonkeyPatch,
                                                  threads: list[int],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    monkeypatch.setattr(os, "setpriority", refuse)
    with caplog.at_level(logging.WARNING, logger="smppd.callbacks"):
        assert priority.lower() == "unchanged"
    assert "may then slow the sending" in caplog.text


def test_threads_of_this_process() -> None:
    assert os.getpid() in priority._threads()  # the main thread's id is the pid
