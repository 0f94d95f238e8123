"""The writer's transactions in a process of their own, on the machine's other core.

Why (issue 14): the daemon was one interpreter, so the reactor (HTTP, SMPP) and the
writer (the Python around every batch's SQL) took turns on one GIL and the daemon
used one core of two. Measured on the intake alone (20,000 POSTs, c=20): with the
writer's work taken off the GIL the reactor answered 4,500-6,300 requests a second
instead of 3,000-3,400.

What moves: only `BatchApplier.apply` and its transaction. The writer thread stays
in the daemon with everything that decides what a batch is and what becomes of it
(group commit, lingering, the stall guard, shedding, retries, one-by-one after a bad
row, recovery after a full disk): it sends the batch here and waits for the answer
(its wait releases the GIL), so "accepted = committed before 201" holds as before.
A batch is pickled (about 7 µs an accept on the daemon's side) and its results come
back pickled; the results are pickled before the commit, so one that cannot travel
rolls the batch back instead of leaving it committed and unanswered.

What the writer remembers between batches (smppd.store.context.WriterMemory) lives
here now; what the daemon changes in it (receipt policies on reload, the inbound
pool and intake, the instance's id, the pending-receipts hint at start) is sent
before the next batch whenever it differs from what was last sent.

Crash policy: the child is the daemon's own hand. It ignores SIGTERM, SIGINT and
SIGHUP (systemd signals the whole unit; the daemon's shutdown still writes what is
queued through it), ends when the daemon closes the connection, and is killed with
it (PR_SET_PDEATHSIG). If it dies on its own the daemon exits at once (EX_SOFTWARE)
and systemd restarts it: a kill -9 of the child is a kill -9 of the daemon, whose
recovery already holds (a part in flight is resent at most once, never charged
twice), instead of a daemon left guessing whether its last batch was committed.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError

from .context import WriterMemory
from .limits import StoreLimits
from .recovery import is_io_error

log = logging.getLogger("smppd.store")
PROTOCOL = 5
EXIT_CHILD_GONE = 70  # EX_SOFTWARE: the writer process died under the daemon
_PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class WriterProcessGone(OperationalError):
    """The writer process ended under the daemon (see the module's docstring)."""

    def __init__(self, how: str) -> None:
        super().__init__(None, None, RuntimeError(how))
        self.how = how

    def __str__(self) -> str:
        return f"the writer process ended: {self.how}"


def _memory_state(memory: WriterMemory) -> dict[str, Any]:
    """What the daemon decides in the writer's memory; compared by identity for the
    snapshots swapped whole (pool, admission), by value for the rest."""
    intake = memory.inbound.intake
    return {"log_level": logging.getLogger().level,  # a reload may change it
            "receipt_policy": dict(memory.receipt_policy), "owner": memory.owner,
            "pending_receipts": memory.pending_receipts, "pool": memory.inbound.pool,
            "admission": intake.admission if intake is not None else None}


class WriterProcess:
    """The daemon's side: used by the writer thread alone (one batch at a time)."""

    def __init__(self, url: str, limits: StoreLimits | None, memory: WriterMemory,
                 log_level: str = "warning") -> None:
        self.url = url
        self.limits = limits
        self.memory = memory
        self.log_level = log_level
        self.process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._sent: dict[str, Any] = {}

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        ours, theirs = socket.socketpair()
        # Born with the unit's stop signals blocked (a mask survives exec), so one
        # that comes while it is still importing is held until main() ignores it.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            with theirs:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "smppd.store.child", str(theirs.fileno()),
                     str(os.getpid())],
                    pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=_child_env())
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        self._conn = Connection(ours.detach())
        self._conn.send_bytes(pickle.dumps((self.url, self.limits, self.log_level),
                                           PROTOCOL))
        self._sent = {}

    def apply(self, ops: list[Any]) -> list[Any]:
        """One batch in one transaction in the child; its results, or its exception."""
        conn = self._conn
        if conn is None:
            raise WriterProcessGone("not started")
        try:
            changed = self._changes()
            if changed:
                conn.send_bytes(pickle.dumps(("memory", changed), PROTOCOL))
                self._sent.update(changed)  # only once it is sent
            conn.send_bytes(pickle.dumps(("apply", ops), PROTOCOL))
            kind, payload = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError) as exc:
            raise WriterProcessGone(self._how_it_ended(exc)) from None
        if kind == "error":
            raise payload
        return payload  # type: ignore[no-any-return]

    def _changes(self) -> dict[str, Any]:
        state = _memory_state(self.memory)
        changed = {}
        for key, value in state.items():
            if key not in self._sent or (
                    self._sent[key] is not value if key in ("pool", "admission")
                    else self._sent[key] != value):
                changed[key] = value
        return changed

    def _how_it_ended(self, exc: BaseException) -> str:
        code = None
        if self.process is not None:  # its end is seen a moment after its socket's
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.process.wait(1.0)
        if code is not None and code < 0:
            return f"killed by signal {-code}"
        if code is not None:
            return f"exit status {code}"
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    def stop(self, timeout: float = 10.0) -> None:
        """The connection closed: the child ends once its batch (if any) is done."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.process is not None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _child_env() -> dict[str, str]:
    """The daemon's environment without systemd's notification and watchdog: only
    the daemon speaks to systemd (NotifyAccess=main)."""
    return {key: value for key, value in os.environ.items()
            if key not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}


# The child ------------------------------------------------------------------------------

def portable(exc: BaseException) -> BaseException:
    """`exc` as it can cross to the daemon: itself if it pickles, else an exception
    of the kind the writer acts on (an unavailable database, a bad row, a bug)."""
    with contextlib.suppress(Exception):
        pickle.loads(pickle.dumps(exc, PROTOCOL))
        return exc
    detail = RuntimeError(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, OperationalError):
        return OperationalError(None, None, detail)
    if isinstance(exc, DBAPIError):
        return DBAPIError(None, None, detail,
                          connection_invalidated=exc.connection_invalidated)
    return detail


def _die_with_parent(daemon: int) -> None:
    """SIGKILL when the daemon (pid `daemon`) dies, however it dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # Gone before the line above: this process was handed to another parent. (Not
    # "the parent is 1": in a container the daemon may be PID 1 itself.)
    if os.getppid() != daemon:
        os._exit(0)


def serve(conn: Connection) -> None:
    """Batches until the daemon closes the connection."""
    from . import database
    from .batch import BatchApplier

    url, limits, level = pickle.loads(conn.recv_bytes())
    from .. import logs
    from ..heap import freeze_startup_heap

    logs.configure(level)
    link = Link(database.make_engine(url, limits=limits))
    applier = BatchApplier()
    log.debug("writer process: start-up heap frozen: %d objects", freeze_startup_heap())
    try:
        while True:
            try:
                kind, payload = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                return
            if kind == "memory":
                _remember(applier.memory, payload)
            else:
                conn.send_bytes(_apply(link, applier, payload))
    finally:
        link.close()


class Link:
    """This process's way to the database: one connection kept for its life on SQLite,
    SQLAlchemy's pool on a server.

    Why keep one: a checkout from the pool and its return (with the rollback that
    resets the connection) cost about a seventh of this process's CPU at the 20 or so
    messages a batch of the HTTP intake (py-spy, bench/intake.py), and one batch at a
    time has nothing to share a pool with. Not on a server: there the pool's pre-ping
    reconnects after a server restart without failing a batch, which a kept
    connection would."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._keep = engine.dialect.name == "sqlite"
        self._kept: Any = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """A connection in a transaction, committed when the block ends cleanly."""
        if not self._keep:
            with self.engine.begin() as conn:
                yield conn
            return
        if self._kept is None:
            self._kept = self.engine.connect()
        with self._kept.begin():
            yield self._kept

    def failed(self, io_error: bool) -> None:
        """After a failed batch the kept connection is not trusted again (a begin that
        failed half-way leaves SQLAlchemy's state in doubt); after an I/O error no
        pooled one is either."""
        if self._kept is not None:
            with contextlib.suppress(Exception):
                self._kept.invalidate()
            self._kept = None
        if io_error:  # as the daemon's recovery does with its own (recovery.py)
            self.engine.dispose()

    def close(self) -> None:
        if self._kept is not None:
            with contextlib.suppress(Exception):
                self._kept.close()
            self._kept = None
        self.engine.dispose()


def _remember(memory: WriterMemory, changed: dict[str, Any]) -> None:
    if "log_level" in changed:
        logging.getLogger().setLevel(changed["log_level"])
    if "receipt_policy" in changed:
        memory.receipt_policy = changed["receipt_policy"]
    if "owner" in changed:
        memory.owner = changed["owner"]
    if "pending_receipts" in changed:
        memory.pending_receipts = changed["pending_receipts"]
    if "pool" in changed:
        memory.inbound.pool = changed["pool"]
    if "admission" in changed:
        memory.inbound.intake = _Intake(changed["admission"]) \
            if changed["admission"] is not None else None
        if memory.inbound.references is None:
            from ..protocol.segmentation import ConcatReferences

            memory.inbound.references = ConcatReferences(bits=16)  # this process's own


class _Intake:
    """What inbound routing reads of the daemon's Intake: its current admission."""

    __slots__ = ("admission",)

    def __init__(self, admission: Any) -> None:
        self.admission = admission


def _apply(link: Link, applier: Any, ops: list[Any]) -> bytes:
    pending = applier.pending_receipts
    try:
        with link.transaction() as conn:
            results = applier.apply(conn, ops)
            # Before the commit: results that cannot travel (either way) roll the
            # batch back instead of leaving it committed and unanswered.
            answer = pickle.dumps(("ok", results), PROTOCOL)
            pickle.loads(answer)
        return answer
    except Exception as exc:
        # The transaction did not happen: undo what the applier assumed it would.
        applier.pending_receipts = pending
        applier.reset()
        link.failed(is_io_error(exc))
        return pickle.dumps(("error", portable(exc)), PROTOCOL)


def main() -> None:
    _die_with_parent(int(sys.argv[2]))
    for signum in STOP_SIGNALS:  # a pending one is dropped, then nothing blocks
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    conn = Connection(int(sys.argv[1]))
    try:
        serve(conn)
    finally:
        conn.close()


if __name__ == "__main__":
    main()
