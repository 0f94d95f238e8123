"""The drainer's process is told to read when the daemon's writer commits, at most once
per NUDGE_EVERY, so that alone on its database it polls only slowly (an idle daemon's
worker makes no reads) while a busy one's reads as often as before. On a task.Clock."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import task

from smppd.callbacks import drainer, process, worker
from smppd.callbacks.process import NUDGE_EVERY, NUDGED_POLL, DrainerProcess
from smppd.config import CallbackSettings
from smppd.store.limits import StoreLimits


class Pipe:
    """What the daemon writes to the worker's stdin."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def writeToChild(self, fd: int, data: bytes) -> None:
        assert fd == 0
        self.lines.extend(json.loads(line) for line in data.splitlines())


def running_process(clock: task.Clock) -> tuple[DrainerProcess, Pipe]:
    proc = DrainerProcess(clock, lambda duty: "{}", metrics=None, put=lambda op: None)
    pipe = Pipe()
    proc.transport, proc.running = pipe, True
    return proc, pipe


def reads(pipe: Pipe) -> int:
    return sum(1 for line in pipe.lines if line.get("read"))


def test_a_burst_of_commits_is_one_read_now_and_one_after_the_interval() -> None:
    clock = task.Clock()
    proc, pipe = running_process(clock)
    proc.nudge()
    assert reads(pipe) == 1  # the first at once
    for _ in range(50):  # fifty batches within the interval
        clock.advance(NUDGE_EVERY / 100)
        proc.nudge()
    assert reads(pipe) == 1
    clock.advance(NUDGE_EVERY)
    assert reads(pipe) == 2  # the rest: one read, when the interval is over
    clock.advance(10 * NUDGE_EVERY)
    assert reads(pipe) == 2  # no commit, no read


def test_no_nudge_reaches_a_worker_that_is_not_running_and_stop_cancels_one() -> None:
    clock = task.Clock()
    proc, pipe = running_process(clock)
    proc.running = False
    proc.nudge()
    assert reads(pipe) == 0
    proc.running = True
    proc.nudge()
    proc.nudge()  # waits for the interval
    proc.stop()
    clock.advance(NUDGE_EVERY * 2)
    assert reads(pipe) == 1


def test_the_worker_polls_slowly_only_when_it_is_nudged() -> None:
    settings = CallbackSettings()
    alone = json.loads(worker.spec("sqlite:///x.db", settings, StoreLimits(), "info", True,
                                   process.NUDGED_POLL))
    assert alone["poll"] == NUDGED_POLL > drainer.TICK
    default = json.loads(worker.spec("sqlite:///x.db", settings, StoreLimits(), "info", True))
    assert default["poll"] == drainer.TICK  # several instances: as the drainer always did
