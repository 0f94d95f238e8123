"""The start-up heap is frozen out of the cyclic collector's walks, in the daemon and in
its writer process, and start-up garbage is collected first rather than frozen.

Each check runs in a subprocess: freezing the test runner's own heap would change
every later test's collections."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.polling import until
from tests.support.process import DaemonProcess, free_port, post_many, write_config

FREEZE_PROBE = """
import gc, weakref
from smppd.heap import freeze_startup_heap

class Node:
    pass

kept = [Node() for _ in range(1000)]       # lives for the process's life
cycle = Node(); cycle.me = cycle           # start-up garbage, only a collection frees it
gone = weakref.ref(cycle)
del cycle
frozen = freeze_startup_heap()
tracked = {id(o) for o in gc.get_objects()}
print(frozen, gone() is None, any(id(k) in tracked for k in kept), gc.get_freeze_count())
"""


def test_freeze_collects_start_up_garbage_then_hides_the_survivors() -> None:
    out = subprocess.run([sys.executable, "-c", FREEZE_PROBE], capture_output=True,
                         text=True, check=True, timeout=60).stdout.split()
    frozen, collected, still_walked, count = int(out[0]), out[1], out[2], int(out[3])
    assert collected == "True"  # the cycle was freed, not frozen
    assert still_walked == "False"  # later collections no longer walk the kept objects
    assert frozen == count >= 1000


def test_daemon_and_writer_process_freeze_once_started(smsc: Any, tmp_path: Path) -> None:
    http_port = free_port()
    daemon = DaemonProcess(write_config(tmp_path, smsc.port, http_port, log_level="debug"),
                           http_port)
    try:
        daemon.start()
        assert post_many(http_port, ["after the freeze"]) != {}  # still serves
        until(lambda: "writer process: start-up heap frozen" in daemon.log.read_text(), 30,
              "the writer process's freeze", detail=daemon.log.read_text)
    finally:
        daemon.stop()
    log = daemon.log.read_text()
    counts = {who: int(n) for who, n in
              re.findall(r"(daemon|writer process): start-up heap frozen: (\d+) objects", log)}
    # A started daemon keeps tens of thousands of objects (Twisted, SQLAlchemy, the
    # configuration); the writer process fewer, but far more than a bare interpreter.
    assert counts["daemon"] > 20_000, log
    assert counts["writer process"] > 5_000, log
