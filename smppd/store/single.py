"""One smppd per SQLite file (issue 14).

Several instances need PostgreSQL: a second daemon on the same SQLite file would
send the same queued messages again (the dispatcher's queue is in memory; there
are no leases on SQLite). So `smppd run` takes an exclusive lock on a file beside
the database (`<file>.lock`, flock: released by the kernel when the process dies,
kill -9 included) and a second process is refused with an error naming the file.
"""

from __future__ import annotations

import fcntl
import os
from typing import IO

from sqlalchemy.engine import make_url

from .database import DatabaseError


def lock_sqlite(url: str) -> IO[bytes] | None:
    """Hold the lock for the life of the process (keep the returned file open).
    None for PostgreSQL or an in-memory SQLite database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database \
            or parsed.database == ":memory:":
        return None
    path = os.path.abspath(parsed.database) + ".lock"
    try:
        handle = open(path, "ab")  # noqa: SIM115 - held open until the process ends
    except OSError as exc:
        raise DatabaseError(f"database: cannot open the lock file {path}: {exc}") from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DatabaseError(
            f"database: another smppd process is using {parsed.database} (it holds "
            f"{path}); one SQLite database serves one instance: stop the other, or use "
            "PostgreSQL to run several instances on one database") from None
    return handle
