"""Speed of the reports issue 11 and 12 added to: prints figures, asserts nothing.

1. A fixture written straight to the store (not through the API): --messages sent
   messages over 30 days (bench/report_fixture.py; the first tenth one bulk job whose
   messages each have a short link, a tenth of those clicked by a phone and as many
   fetched by a preview robot), --contacts contacts with custom fields whose phones
   are recipients and MO senders, --rows inbound messages over 30 days to three
   numbers, and a poll on one of them with --votes votes.
2. In this process, with the code the daemon runs: `detailed` CSV of the sent
   messages without and with `include_contacts` (and what the `clicked` lookup costs
   the query), `inbound` CSV without and with contacts, `inbound-daily` and the
   `inbound` PDF summary over 30 days, the `jobs` and `job` reports with their CTR,
   and the `poll` report.

    python bench/inbound_reports.py [--url sqlite:////tmp/inbound-reports.db]
        [--messages 1000000] [--rows 1000000] [--contacts 100000] [--votes 1000000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import report_fixture

from smppd.reports import periods
from smppd.reports import queries as q
from smppd.reports.catalog import TYPES
from smppd.reports.documents import Context
from smppd.reports.queries import jobs
from smppd.reports.render import render
from smppd.store import database
from smppd.store import schema as t

TZ = "Europe/Warsaw"
NUMBERS = ("48500600700", "48500600701", "4600")
POLL_ID = "0" * 12 + "c" * 20
CHUNK = 50_000


def _stamp(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC).replace(tzinfo=None)


def _load(engine: Any, table: Any, columns: tuple[str, ...], rows: Any) -> int:
    """Bulk insert: COPY on PostgreSQL, executemany in big transactions on SQLite."""
    raw = engine.raw_connection()
    count = 0
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
        else:
            sql = (f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
                   f"({', '.join('?' * len(columns))})")
            batch: list[tuple[Any, ...]] = []
            for row in rows:
                batch.append(tuple(value.isoformat(" ", "microseconds")
                                   if isinstance(value, datetime) else value for value in row))
                if len(batch) >= CHUNK:
                    cursor.executemany(sql, batch)
                    count += len(batch)
                    batch.clear()
            cursor.executemany(sql, batch)
            count += len(batch)
        raw.commit()
    finally:
        raw.close()
    return count


def make(url: str, messages: int, inbound: int, contacts: int, votes: int) -> dict[str, Any]:
    job_rows = messages // 10
    fixture = report_fixture.make(url, messages, 30.0, job_rows)
    engine = database.make_engine(url)
    account, now = fixture["account_id"], fixture["now"]
    started = time.perf_counter()
    # Indexes built after the load, as report_fixture does for messages.
    tables = (t.inbound_messages, t.contacts, t.links, t.link_clicks, t.poll_votes)
    indexes = [index for table in tables for index in table.indexes]
    with engine.begin() as conn:
        for index in indexes:
            index.drop(conn)
        conn.execute(t.polls.insert().values(
            id=POLL_ID, account_id=account, name="Bench poll", number=NUMBERS[0], prefix=None,
            prefix_key="", starts_at=_stamp(now - 30 * 86400), ends_at=_stamp(now + 86400),
            sender="Bench", replies="{}", limit_votes=0, limit_seconds=None, groups=None,
            discount_pool=None, created_at=_stamp(now - 30 * 86400)))
        conn.execute(t.poll_options.insert(), [
            {"poll_id": POLL_ID, "option_no": n, "keyword": k, "keyword_key": k.lower(),
             "reply": None} for n, k in enumerate(("A", "B", "C"), 1)])
    # Contacts: every tenth sent message's recipient, and the first half of the MO
    # senders (48600000000 + i), with two custom fields.
    phones = [row[4] for row in report_fixture.rows(account, min(messages, contacts * 5),
                                                    30.0, 0, now)][::10][:contacts // 2]
    phones += [f"486{i:08d}" for i in range(contacts - len(phones))]
    stamp = _stamp(now)
    _load(engine, t.contacts, ("account_id", "phone", "first_name", "last_name", "email",
                               "fields", "created_at", "updated_at"),
          ((account, phone, f"First{i}", f"Last{i}", f"c{i}@example.com",
            json.dumps({"city": "Kraków", "tier": str(i % 3)}), stamp, stamp)
           for i, phone in enumerate(phones)))
    # Short links on the job's messages; clicks on a tenth of them (a phone), and a
    # preview robot's fetch on another tenth.
    job_ids = [row[0] for row in itertools.islice(
        report_fixture.rows(account, messages, 30.0, job_rows, now), job_rows)]
    _load(engine, t.links, ("code", "message_id", "account_id", "job_id", "url",
                            "created_at", "clicks"),
          ((f"L{i:08d}", message_id, account, report_fixture.JOB_ID, "https://x.example/",
            stamp, 1 if i % 10 in (0, 1) else 0) for i, message_id in enumerate(job_ids)))
    _load(engine, t.link_clicks, ("code", "message_id", "account_id", "job_id", "at",
                                  "agent", "is_repeat"),
          ((f"L{i:08d}", message_id, account, report_fixture.JOB_ID, stamp,
            "mobile" if i % 10 == 0 else "bot", False)
           for i, message_id in enumerate(job_ids) if i % 10 in (0, 1)))
    start = now - 30 * 86400
    step = 30 * 86400 / max(inbound, 1)
    _load(engine, t.inbound_messages, (
        "smsc", "source", "destination", "data_coding", "text", "payload", "parts",
        "received_at", "account_id", "prefix", "body", "route"),
        (("bench", f"486{i % (contacts * 2):08d}", NUMBERS[i % 3], 0, f"reply {i}", b"", 1,
          _stamp(start + i * step), account, None, f"reply {i}", "dedicated")
         for i in range(inbound)))
    step = 30 * 86400 / max(votes, 1)
    outcomes = ["accepted"] * 8 + ["over_limit", "unknown_option"]
    _load(engine, t.poll_votes, ("id", "poll_id", "inbound_id", "sender", "option_no",
                                 "answer", "outcome", "code", "reply_message_id",
                                 "received_at"),
          ((f"{int((start + i * step) * 1000):012x}{i:020x}", POLL_ID, i,
            f"486{i % 50_000:08d}", None if outcomes[i % 10] == "unknown_option" else i % 3 + 1,
            "A", outcomes[i % 10], None, None, _stamp(start + i * step))
           for i in range(votes)))
    with engine.begin() as conn:
        for index in indexes:
            index.create(conn)
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    print(f"fixture: {messages:,} sent ({job_rows:,} with short links), {len(phones):,} "
          f"contacts, {inbound:,} inbound, {votes:,} votes: "
          f"{fixture['seconds'] + time.perf_counter() - started:.0f} s")
    return {**fixture, "job_rows": job_rows}


def timed(engine: Any, account: int, kind: str, fmt: str, period: Any, folder: Path,
          **request: Any) -> tuple[float, int, int]:
    """(seconds, rows, bytes) to build and write one report, as the service does."""
    path = folder / f"{kind}.{fmt}"
    started = time.perf_counter()
    with engine.connect() as conn:
        ctx = Context(account, "bench", {"type": kind, "format": fmt, **request}, period,
                      periods.zone(TZ))
        if request.get("job"):
            ctx.job_ids = [request["job"]]
            ctx.job_rows = jobs(conn, account, job_ids=ctx.job_ids)
        elif kind == "jobs":
            ctx.job_rows = jobs(conn, account)
        elif kind == "poll":
            from smppd.store import inbound_queries as iq

            ctx.poll = iq.poll(conn, account, request["poll"])
        rows = render(TYPES[kind].build(conn, ctx), fmt, path, lambda _n: None, {})
    return time.perf_counter() - started, rows, path.stat().st_size


def query_seconds(engine: Any, account: int, clicked: bool) -> float:
    """Reading the detailed query's rows alone, with or without `clicked`."""
    from sqlalchemy import select

    m = t.messages.c
    columns = [getattr(m, name) for name in q.DETAILED]
    if clicked:
        columns.append(q.clicked_column())
    started = time.perf_counter()
    with engine.connect() as conn:
        for _row in q.stream(conn, select(*columns).where(m.account_id == account)
                             .order_by(m.id)):
            pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="database (default: a temporary SQLite)")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--rows", type=int, default=1_000_000, help="inbound messages")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--votes", type=int, default=1_000_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="smppd-inbound-reports-bench-"))
    url = args.url or f"sqlite:///{folder / 'bench.db'}"
    fixture = make(url, args.messages, args.rows, args.contacts, args.votes)
    engine = database.make_engine(url)
    account, now = fixture["account_id"], fixture["now"]
    tz = periods.zone(TZ)
    whole = periods.Period(datetime.fromtimestamp(now - 30 * 86400 - 60, tz),
                           datetime.fromtimestamp(now + 60, tz), tz)
    for label, request in (("detailed csv", {}),
                           ("detailed csv, include_contacts", {"include_contacts": True})):
        seconds, rows, size = timed(engine, account, "detailed", "csv", whole, folder,
                                    **request)
        print(f"{label + ',':32} {rows:,} rows: {seconds:6.2f} s ({size / 2**20:.0f} MiB)")
    without, with_clicked = query_seconds(engine, account, False), \
        query_seconds(engine, account, True)
    print(f"detailed query alone, {args.messages:,} rows: {without:.2f} s without `clicked`, "
          f"{with_clicked:.2f} s with it")
    for label, request in (("inbound csv", {}),
                           ("inbound csv, include_contacts", {"include_contacts": True})):
        seconds, rows, size = timed(engine, account, "inbound", "csv", whole, folder,
                                    **request)
        print(f"{label + ',':32} {rows:,} rows: {seconds:6.2f} s ({size / 2**20:.0f} MiB)")
    for kind, fmt in (("inbound-daily", "json"), ("inbound", "pdf")):
        seconds, rows, size = timed(engine, account, kind, fmt, whole, folder)
        print(f"{kind} {fmt} over {args.rows:,} messages, 30 days: {seconds:6.2f} s")
    for kind, request in (("jobs", {}), ("job", {"job": report_fixture.JOB_ID})):
        seconds, rows, size = timed(engine, account, kind, "json", whole if kind == "jobs"
                                    else None, folder, **request)
        links = json.loads((folder / f"{kind}.json").read_text())["links"]
        print(f"{kind} json of a {fixture['job_rows']:,}-message job with links: "
              f"{seconds:6.2f} s (CTR {links['ctr']}, {links['clicks']:,} clicks)")
    for fmt in ("json", "pdf"):
        seconds, rows, size = timed(engine, account, "poll", fmt, None, folder, poll=POLL_ID)
        print(f"poll {fmt} over {args.votes:,} votes: {seconds:6.2f} s")
    engine.dispose()
    print(f"(files in {folder}; the machine may be shared: figures vary with its load)")


if __name__ == "__main__":
    main()
