"""Real faults for store tests: a PostgreSQL behind a proxy that fails on demand, a
small filesystem the test mounts and fills, an SMSC that redelivers what was
refused, and a probe of the parts in flight."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from smppd.fake_smsc import FakeSmsc
from smppd.fake_smsc.server import SmscProtocol
from sqlalchemy.engine import make_url
from twisted.internet import task

from smppd.store import database
from tests.conftest import call
from tests.store.conftest import POSTGRES_URL, _reset_postgres
from tests.support.proxy import TcpProxy


def fresh_postgres() -> str:
    """The test database's URL, its schema emptied; skips when there is none."""
    if not POSTGRES_URL:
        pytest.skip("needs SMPPD_TEST_POSTGRES_URL (e.g. "
                    "postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    engine = database.make_engine(POSTGRES_URL)
    _reset_postgres(engine)
    engine.dispose()
    return POSTGRES_URL


@contextlib.contextmanager
def postgres_behind_proxy() -> Iterator[tuple[TcpProxy, str]]:
    """(the proxy, the URL through it) to a freshly emptied test database."""
    url = fresh_postgres()
    parsed = make_url(url)
    proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    try:
        yield proxy, proxy.url_for(url)
    finally:
        proxy.close()


class PostgresCut:
    """A PostgreSQL outage: every connection through the proxy closed, new ones too."""

    def __init__(self, proxy: TcpProxy) -> None:
        self.proxy = proxy

    def begin(self) -> None:
        self.proxy.down()

    def end(self) -> None:
        self.proxy.resume()


class SqliteWriteLock:
    """A SQLite outage: another process holds the database's write lock (an
    operator's sqlite3 shell left in a transaction, a backup tool), so every write
    waits for its lock timeout and fails."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.holder: sqlite3.Connection | None = None

    def begin(self) -> None:
        self.holder = sqlite3.connect(self.path, isolation_level=None, timeout=30,
                                      check_same_thread=False)
        self.holder.execute("BEGIN IMMEDIATE")

    def end(self) -> None:
        assert self.holder is not None
        self.holder.execute("ROLLBACK")
        self.holder.close()


@contextlib.contextmanager
def small_filesystem(folder: Path, size: str = "3m") -> Iterator[Path]:
    """A tmpfs of `size` mounted on `folder` for the test; skips, saying why, where
    the test cannot mount one."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root (mount -t tmpfs)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


class Ballast:
    """A file that takes every free byte of its filesystem until removed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fill(self) -> int:
        written = 0
        chunk = b"\0" * 65536
        with contextlib.suppress(OSError), self.path.open("ab", buffering=0) as file:
            while True:
                try:
                    written += file.write(chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    if len(chunk) == 1:
                        break
                    chunk = chunk[:len(chunk) // 2]  # top up the last partial block
        return written

    def free(self) -> None:
        self.path.unlink(missing_ok=True)


class RedeliveringSmsc(FakeSmsc):
    """The fake SMSC plus what real ones do with a deliver_sm refused with an error
    (ESME_RX_T_APPN): send it again after `redeliver_after` seconds, until acked."""

    def __init__(self, *args: Any, redeliver_after: float = 0.3, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.redeliver_after = redeliver_after
        self.redelivered = 0
        self.refused = 0
        self._sent: dict[tuple[int, int], tuple[Any, ...]] = {}

    def buildProtocol(self, addr: Any) -> SmscProtocol:
        return _RedeliveringProtocol(self)

    def deliver(self, fields: dict[str, Any], unknown_tlvs: list[tuple[int, bytes]] | None = None,
                system_id: str | None = None, prefer: SmscProtocol | None = None,
                command: str = "deliver_sm") -> int | None:
        sequence = super().deliver(fields, unknown_tlvs, system_id, prefer, command)
        connection = self._receiver(system_id, prefer)
        if sequence is not None and connection is not None:
            self._sent[(id(connection), sequence)] = (fields, unknown_tlvs, system_id, command)
        return sequence

    def refused_deliver(self, connection: SmscProtocol, sequence: int) -> None:
        sent = self._sent.pop((id(connection), sequence), None)
        if sent is None:
            return
        self.refused += 1
        fields, unknown_tlvs, system_id, command = sent

        def again() -> None:
            self.redelivered += 1
            self.deliver(fields, unknown_tlvs, system_id, None, command)

        self.reactor.callLater(self.redeliver_after, again)


class _RedeliveringProtocol(SmscProtocol):
    smsc: RedeliveringSmsc

    def on_deliver_sm_resp(self, pdu: Any) -> None:
        super().on_deliver_sm_resp(pdu)
        if pdu.status:
            self.smsc.refused_deliver(self, pdu.sequence)
        else:
            self.smsc._sent.pop((id(self), pdu.sequence), None)


class InFlight:
    """Samples, on the reactor every few ms, the parts the daemon has sent whose
    outcome is not committed (what the window holds); keeps the maximum."""

    def __init__(self, dispatcher: Any, interval: float = 0.005) -> None:
        self.dispatcher = dispatcher
        self.maximum = 0
        self._loop = task.LoopingCall(self._sample)
        call(lambda: self._loop.start(interval) and None)  # not its end Deferred

    def _sample(self) -> None:
        self.maximum = max(self.maximum, self.dispatcher.unsettled)

    def stop(self) -> int:
        call(self._loop.stop)
        return self.maximum
