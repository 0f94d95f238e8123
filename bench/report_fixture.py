"""A large history for the report benchmarks, written straight to the store.

Not through the API (ten million POSTs would take hours): messages are made in
Python with ids spread evenly over the last `days` days and bulk-inserted (SQLite:
executemany in big transactions; PostgreSQL: COPY), with their rollups summed on the
way and written at the end, exactly as the writer would have kept them. The status
mix is fixed (80% delivered, 8% undelivered err 001, 4% expired err 002, 3% rejected
ESME_RINVDSTADR and refunded, 3% unknown, 2% submitted); one part in ten messages
has two parts; the first `job_rows` messages belong to one completed job. The
`parts` table is not filled: reports do not read it.

    python bench/report_fixture.py --url sqlite:////tmp/reports.db --rows 10000000
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from smppd.store import database, queries, rollups
from smppd.store import schema as t

COLUMNS = ("id", "account_id", "job_id", "sender", "recipient", "country", "text", "encoding",
           "parts", "points", "refunded", "concat_ref", "status", "smsc", "error_code",
           "ref_id", "params", "created_at", "updated_at", "submitted_at", "final_at",
           "channel", "sent_by", "partner")
# (share out of 100, status, error)
MIX = [(80, "delivered", None), (8, "undelivered", "001"), (4, "expired", "002"),
       (3, "rejected", "ESME_RINVDSTADR"), (3, "unknown", "no response within 30 s"),
       (2, "submitted", None)]
COUNTRIES = [("48", "PL"), ("49", "DE"), ("420", "CZ"), ("44", "GB")]
PARTNERS = [None, None, "shop-1", "shop-2", "shop-3"]
JOB_ID = "0" * 12 + "b" * 20
CHUNK = 50_000


def _status_table() -> list[tuple[str, str | None]]:
    table = []
    for share, status, error in MIX:
        table += [(status, error)] * share
    return table


def rows(account_id: int, count: int, days: float, job_rows: int, now: float) -> Any:
    """Yield message rows in id order, and sum the rollups into `deltas`."""
    start_ms = int((now - days * 86400) * 1000)
    step = days * 86400_000 / max(count, 1)
    statuses = _status_table()
    for index in range(count):
        ms = start_ms + int(index * step)
        message_id = f"{ms:012x}{index:020x}"
        status, error = statuses[(index * 37) % 100]
        parts = 2 if index % 10 == 0 else 1
        refunded = parts if status == "rejected" else 0
        code, region = COUNTRIES[index % 4]
        stamp = datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)
        job = JOB_ID if index < job_rows else None
        yield (message_id, account_id, job, "Bench", f"{code}5{index:09d}", region,
               "Your code is 123456", "gsm", parts, parts, refunded, 0, status, None, error,
               f"ref-{index}" if index % 50 == 0 else None, None, stamp, stamp,
               stamp if status != "queued" else None,
               stamp if status not in ("submitted", "queued") else None,
               "job" if job else "api", "token", PARTNERS[index % 5])


def _fresh(url: str) -> None:
    """An empty database: the SQLite file removed, or PostgreSQL's public schema."""
    if url.startswith("sqlite"):
        path = Path(url.split(":///", 1)[1])
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return
    engine = database.make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


def make(url: str, count: int, days: float, job_rows: int) -> dict[str, Any]:
    _fresh(url)
    engine = database.make_engine(url)
    database.upgrade(engine)
    now = time.time()
    # Secondary indexes are built once after the load: maintained row by row they
    # would take most of the time.
    indexes = list(t.messages.indexes)
    with engine.begin() as conn:
        accounts = queries.seed_accounts(conn, [("bench", 10**12), ("other", 1000)])
        account_id = accounts["bench"]
        for index in indexes:
            index.drop(conn)
        if job_rows:
            stamp = datetime.fromtimestamp(now - days * 86400, UTC).replace(tzinfo=None)
            conn.execute(t.jobs.insert().values(
                id=JOB_ID, account_id=account_id, name="Bench job", sender="Bench",
                text="Your code is 123456", state="completed", recipients=job_rows,
                rejected_rows=0, points=job_rows, refunded=0, created_at=stamp,
                updated_at=stamp))
    deltas = rollups.RollupDeltas()
    started = time.perf_counter()
    postgres = engine.dialect.name == "postgresql"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        batch: list[tuple[Any, ...]] = []
        if postgres:
            with cursor.copy(f"COPY messages ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in rows(account_id, count, days, job_rows, now):
                    copy.write_row(row)
                    deltas.add(account_id, row[0], row[12], row[14], row[8], row[9], row[10])
        else:
            cursor.execute("PRAGMA synchronous=OFF")  # a fixture: rebuilt, not recovered
            sql = (f"INSERT INTO messages ({', '.join(COLUMNS)}) VALUES "
                   f"({', '.join('?' * len(COLUMNS))})")
            for row in rows(account_id, count, days, job_rows, now):
                stamp = row[17].isoformat(" ", "microseconds")
                batch.append((*row[:17], stamp, stamp, stamp if row[19] else None,
                              stamp if row[20] else None, *row[21:]))
                deltas.add(account_id, row[0], row[12], row[14], row[8], row[9], row[10])
                if len(batch) >= CHUNK:
                    cursor.execute("BEGIN")
                    cursor.executemany(sql, batch)
                    cursor.execute("COMMIT")
                    batch.clear()
            if batch:
                cursor.execute("BEGIN")
                cursor.executemany(sql, batch)
                cursor.execute("COMMIT")
        raw.commit()
    finally:
        raw.close()
    with engine.begin() as conn:
        deltas.write(conn)
        for index in indexes:
            index.create(conn)
    if postgres:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE messages")
            conn.exec_driver_sql("ANALYZE message_rollups")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    elapsed = time.perf_counter() - started
    engine.dispose()
    return {"rows": count, "seconds": elapsed, "account_id": account_id, "now": now,
            "days": days, "job": JOB_ID if job_rows else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--job-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    found = make(args.url, args.rows, args.days, args.job_rows)
    print(f"fixture: {found['rows']:,} messages over {args.days:g} days in "
          f"{found['seconds']:.0f} s ({found['rows'] / found['seconds']:,.0f} rows/s)")


if __name__ == "__main__":
    main()
