"""Getting a SQLite store writing again after the disk filled or failed.

On a small filesystem the write-ahead log is what fills it: SQLite checkpoints it
into the database file only once it reaches 1000 pages (4 MB), and never shrinks
the file by itself. Once a write has failed with SQLITE_FULL or SQLITE_IOERR the
connection may keep failing even after space is freed, and the WAL keeps the room
it took. So after such an error the writer reopens its connections (the pool is
disposed) and, before writing again, checkpoints the WAL with TRUNCATE, which
moves its pages into the database file and cuts it to zero bytes. Until that
checkpoint succeeds (it needs room for the database file to grow) the store counts
as unavailable and the writer tries again later.

In between, a WAL that has grown larger than the room left on its disk is
checkpointed after a commit (PASSIVE: it never waits for readers, so the writer is
not held; the WAL's frames become reusable and it stops growing), so that a nearly
full disk is not filled by the WAL alone.

PostgreSQL needs none of this (SQLAlchemy drops a broken connection from its pool;
the server manages its own log), hence `NoRecovery`.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Protocol

from sqlalchemy import Engine

log = logging.getLogger("smppd.store")

_IO_ERRORS = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN")
_IO_MESSAGES = ("database or disk is full", "disk i/o error", "unable to open database")
WAL_FLOOR = 64 << 10  # a WAL below 64 KB is never worth a checkpoint of its own


class Recovery(Protocol):
    def failed(self, exc: BaseException) -> None:
        """A transaction failed with `exc` (on the writer thread)."""

    def ready(self) -> BaseException | None:
        """Before a transaction: None when writing may go on, else why not yet."""

    def committed(self) -> None:
        """After a commit."""


class NoRecovery:
    def failed(self, exc: BaseException) -> None:
        pass

    def ready(self) -> BaseException | None:
        return None

    def committed(self) -> None:
        pass


def is_io_error(exc: BaseException) -> bool:
    """SQLITE_FULL, SQLITE_IOERR (any extended code) or SQLITE_CANTOPEN."""
    original = getattr(exc, "orig", None) or exc
    name = getattr(original, "sqlite_errorname", "") or ""
    return name.startswith(_IO_ERRORS) or any(
        text in str(original).lower() for text in _IO_MESSAGES)


class SqliteRecovery:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        database = engine.url.database or ""
        self.wal = f"{database}-wal"
        self.folder = os.path.dirname(os.path.abspath(database))
        self.checkpoint_due = False
        self.recoveries = 0  # completed, for tests and logs
        self._guard_failed = False  # said once until a checkpoint succeeds again

    def failed(self, exc: BaseException) -> None:
        if not is_io_error(exc):
            return
        if not self.checkpoint_due:
            log.error("store: SQLite I/O error (%s); reopening the database and "
                      "checkpointing its WAL once the disk allows",
                      str(getattr(exc, "orig", exc)).splitlines()[0])
        self.checkpoint_due = True
        # Connections that saw the error may keep failing: open new ones.
        self.engine.dispose()

    def ready(self) -> BaseException | None:
        if not self.checkpoint_due:
            return None
        try:
            busy, frames, done = self._checkpoint("TRUNCATE")
        except Exception as exc:  # still full, or still failing: try again later
            self.engine.dispose()
            return exc
        if busy:
            return RuntimeError(f"WAL checkpoint waits for readers ({done} of {frames} "
                                "frames copied)")
        self.checkpoint_due = False
        self.recoveries += 1
        log.warning("store: SQLite writable again; WAL checkpointed and truncated")
        return None

    def committed(self) -> None:
        """Checkpoint a WAL that has outgrown the room left beside it (a stat and a
        statvfs per commit: microseconds)."""
        try:
            size = os.stat(self.wal).st_size
            if size < WAL_FLOOR:
                return
            disk = os.statvfs(self.folder)
        except OSError:
            return
        if size >= disk.f_bavail * disk.f_frsize:
            try:
                self._checkpoint("PASSIVE")
            except Exception as exc:  # the next write will say what is wrong
                if not self._guard_failed:
                    log.warning("store: WAL checkpoint failed: %s", str(exc).splitlines()[0])
                self._guard_failed = True
            else:
                self._guard_failed = False

    def _checkpoint(self, mode: str) -> tuple[int, int, int]:
        """(busy, frames in the WAL, frames copied). On the driver's connection, as
        a checkpoint cannot run inside the transaction SQLAlchemy would begin."""
        assert mode in ("PASSIVE", "TRUNCATE")
        with self.engine.connect() as conn:
            raw: Any = conn.connection.dbapi_connection
            row = raw.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        return int(row[0]), int(row[1]), int(row[2])


def for_engine(engine: Engine) -> Recovery:
    if engine.dialect.name == "sqlite":
        return SqliteRecovery(engine)
    return NoRecovery()
