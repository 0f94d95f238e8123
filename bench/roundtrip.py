"""submit_sm round trips per second through one bind to the fake SMSC.

The fake SMSC runs in its own process (`smppd fake-smsc`), as a real SMSC would, so
the two cores are shared the way production shares them. Receipts are off: this
measures the submit path. Prints figures; asserts nothing.

    python bench/roundtrip.py [--count 20000] [--windows 10 100]
"""

from __future__ import annotations

import argparse
import resource
import socket
import subprocess
import sys
import time
from typing import Any

from e2e import wait_port  # bench/ is the script's folder
from twisted.internet import reactor

from smppd.daemon.app import reconnect_backoff
from smppd.protocol.connector import Connector, ConnectorConfig, ConnectorListener, Link
from smppd.protocol.session import SessionConfig


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Counter(ConnectorListener):
    def __init__(self, total: int, connector_ref: list[Connector]) -> None:
        self.total = total
        self.sent = 0
        self.done = 0
        self.errors = 0
        self.started = 0.0
        self.finished = 0.0
        self.ref = connector_ref

    def bound(self, link: Link) -> None:
        self.started = time.perf_counter()
        self.pump()

    def pump(self) -> None:
        connector = self.ref[0]
        fields = {"source_addr": "Acme", "source_addr_ton": 5, "destination_addr": "48500100200",
                  "dest_addr_ton": 1, "dest_addr_npi": 1, "short_message": b"benchmark text"}
        while self.sent < self.total and connector.window_available > 0:
            connector.submit(fields, self.sent, flush=False)
            self.sent += 1
        connector.flush()

    def submit_result(self, link: Link, event: Any) -> None:
        self.done += 1
        self.errors += event.status != 0
        if self.done == self.total:
            self.finished = time.perf_counter()
            reactor.stop()
        elif self.done % 8 == 0 or self.sent - self.done < 4:
            self.pump()


def run_one(window: int, count: int) -> None:
    port = free_port()
    smsc = subprocess.Popen([sys.executable, "-m", "smppd.cli", "--log-level", "warning",
                             "fake-smsc", "--port", str(port)])
    try:
        wait_port(port, 10)
        ref: list[Connector] = []
        counter = Counter(count, ref)
        connector = Connector(ConnectorConfig("bench", "127.0.0.1", port,
                                              SessionConfig("bench", "x", window=window)),
                              counter, reactor, reconnect_backoff)
        ref.append(connector)
        cpu_before = time.process_time()
        reactor.callWhenRunning(connector.start)
        reactor.callLater(120, reactor.stop)
        reactor.run()
        cpu = time.process_time() - cpu_before
        elapsed = counter.finished - counter.started if counter.finished else float("nan")
        print(f"window {window:>3}: {counter.done:,} submit_sm round trips in {elapsed:.2f} s = "
              f"{counter.done / elapsed:,.0f}/s; ESME CPU {cpu / counter.done * 1000:.3f} s per "
              f"1,000; errors {counter.errors}")
    finally:
        smsc.terminate()
        smsc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--windows", type=int, nargs="+", default=[10, 100])
    args = parser.parse_args()
    # The reactor cannot be restarted in one process: one window per child process.
    if len(args.windows) > 1:
        for window in args.windows:
            subprocess.run([sys.executable, __file__, "--count", str(args.count),
                            "--windows", str(window)], check=True)
        return
    run_one(args.windows[0], args.count)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"           peak RSS of the ESME process {peak:.0f} MiB")


if __name__ == "__main__":
    main()
