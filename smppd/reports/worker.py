"""A queued report rendered in its own process: `python -m smppd.reports.worker`, the
job as JSON on stdin, the outcome as JSON on stdout.

Why a process: rendering a million rows is seconds of pure Python; on a thread of
the daemon it would hold the GIL against the reactor and the store's writer, and
every API answer would wait for it in 5 ms slices. In its own process it shares
only the CPU, and its memory comes and goes with it. Small reports, which a client
waits for, still render on a daemon thread (a process start costs more than they do).

Exit codes: 0 ready (stdout {"rows", "name"}), 2 the report failed with a message
for the customer (stdout {"error"}), 3 cancelled (deleted or taken over), 1 a bug
(traceback on stderr).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sqlalchemy import select

from ..checks import ApiError
from ..store import database
from ..store import schema as t
from .runner import Cancelled, Progress, produce


def main() -> int:
    job = json.load(sys.stdin)
    engine = database.make_engine(job["database"], pool_size=1)
    reader = database.make_engine(job["database"], pool_size=1, immediate=False)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(t.reports).where(
                t.reports.c.id == job["report"], t.reports.c.owner == job["owner"],
                t.reports.c.state == "running")).first()
        if row is None:
            return 3
        progress = Progress(engine, row.id, job["owner"])
        try:
            rows, name = produce(reader, row, job["account"], Path(job["path"]), progress)
        except Cancelled:
            return 3
        except ApiError as exc:
            print(json.dumps({"error": exc.message}))
            return 2
        print(json.dumps({"rows": rows, "name": name}))
        return 0
    finally:
        engine.dispose()
        reader.dispose()


if __name__ == "__main__":
    sys.exit(main())
