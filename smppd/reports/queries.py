"""The SQL behind the reports. Every count is made by the database (GROUP BY over a
range of one account's index, or over the rollups); Python only shapes the few rows
that come back. The one exception is the row-per-message report (`detailed`) and
the number lists, which stream rows from a server-side cursor without holding them.

Periods are compared through message ids (time-ordered, smppd.ids): the primary key
is the index, and it is the same notion of time as the rollups and history filters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, and_, false, func, select, text

from ..ids import bound_for_time
from ..store import schema as t
from ..store.rollups import SLOT_SECONDS

STREAM_ROWS = 5000  # rows fetched at a time from a server-side cursor


def slot_floor(moment: float) -> int:
    return int(moment // SLOT_SECONDS) * SLOT_SECONDS


def id_range(start: float, end: float) -> tuple[str, str]:
    """Ids of messages created in [start, end)."""
    return bound_for_time(start), bound_for_time(end)


def message_scope(account_id: int, start: float | None, end: float | None,
                  jobs: Sequence[str] | None = None, include_jobs: bool = True) -> list[Any]:
    m = t.messages.c
    conditions = [m.account_id == account_id]
    if start is not None and end is not None:
        low, high = id_range(start, end)
        conditions += [m.id >= low, m.id < high]
    if jobs is not None:
        conditions.append(m.job_id.in_(list(jobs)) if jobs else false())
    if not include_jobs:
        conditions.append(m.job_id.is_(None))
    return conditions


# Rollups ---------------------------------------------------------------------------------

def daily(conn: Connection, account_id: int,
          days: Sequence[tuple[Any, float, float]]) -> list[tuple[int, str, int, int, int, int]]:
    """(day index, status, messages, parts, points, refunded) from the rollups, summed by
    the database per local day: the days' bounds go in as a VALUES list joined on the
    rollups' primary key, so one query answers any number of days in any time zone."""
    if not days:
        return []
    values = ", ".join(f"({index}, {slot_floor(low)}, {slot_floor(high)})"
                       for index, (_day, low, high) in enumerate(days))
    sql = text(
        f"WITH days (day, low, high) AS (VALUES {values}) "
        "SELECT days.day, r.status, SUM(r.messages), SUM(r.parts), SUM(r.points), "
        "SUM(r.refunded) FROM days JOIN message_rollups r ON r.account_id = :account "
        "AND r.bucket >= days.low AND r.bucket < days.high "
        "GROUP BY days.day, r.status ORDER BY days.day")
    return [(int(day), status, int(n), int(parts), int(points), int(refunded))
            for day, status, n, parts, points, refunded in conn.execute(
                sql, {"account": account_id})]


def rollup_reasons(conn: Connection, account_id: int, start: float, end: float,
                   limit: int = 10) -> list[tuple[str, str, int]]:
    """The most frequent error codes in a period: (code, status, messages)."""
    r = t.message_rollups.c
    total = func.sum(r.messages)
    return [(code, status, int(n)) for code, status, n in conn.execute(
        select(r.error, r.status, total).where(
            r.account_id == account_id, r.bucket >= slot_floor(start),
            r.bucket < slot_floor(end), r.error != "").group_by(r.error, r.status)
        .having(total > 0).order_by(total.desc(), r.error).limit(limit))]


def rollup_count(conn: Connection, account_id: int, start: float, end: float) -> int:
    r = t.message_rollups.c
    return int(conn.execute(select(func.coalesce(func.sum(r.messages), 0)).where(
        r.account_id == account_id, r.bucket >= slot_floor(start),
        r.bucket < slot_floor(end))).scalar() or 0)


def errors_seen(conn: Connection, account_id: int) -> list[tuple[str, int]]:
    """Every error code the account's messages carry now, with how many."""
    r = t.message_rollups.c
    total = func.sum(r.messages)
    return [(code, int(n)) for code, n in conn.execute(
        select(r.error, total).where(r.account_id == account_id, r.error != "")
        .group_by(r.error).having(total > 0).order_by(r.error))]


# Messages ----------------------------------------------------------------------------------

DETAILED = ("id", "created_at", "sender", "recipient", "country", "status", "error_code",
            "parts", "points", "refunded", "channel", "job_id", "ref_id", "partner")


def detailed(conn: Connection, conditions: list[Any], content: bool = False,
             params: bool = False) -> Iterator[Any]:
    """The messages in id order, streamed as plain tuples (times as the driver gives
    them: text from SQLite, datetime from PostgreSQL)."""
    m = t.messages.c
    columns = [getattr(m, name) for name in DETAILED]
    if content:
        columns.append(m.text)
    if params:
        columns.append(m.params)
    query = select(*columns).where(and_(*conditions)).order_by(m.id)
    yield from stream(conn, query)


def stream(conn: Connection, query: Any) -> Iterator[Any]:
    """Rows of a big query without holding them. On SQLite straight from the driver's
    cursor: SQLAlchemy's Row objects and type processing cost more per row than the
    rest of a CSV line. On PostgreSQL a server-side (named) cursor, fetched a few
    thousand rows at a time, for the same reason and so the rows are never all held."""
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    driver = conn.connection.driver_connection
    if conn.dialect.name == "sqlite":
        cursor = driver.cursor()
        cursor.execute(str(compiled), [compiled.params[name] for name in compiled.positiontup])
    elif conn.dialect.driver == "psycopg":
        if not conn.in_transaction():
            conn.begin()  # a named cursor lives in a transaction
        cursor = driver.cursor(name=f"smppd_report_{id(query):x}")
        cursor.itersize = STREAM_ROWS
        cursor.execute(str(compiled), compiled.params)
    else:  # another driver: SQLAlchemy's own streaming
        yield from conn.execution_options(stream_results=True,
                                          yield_per=STREAM_ROWS).execute(query)
        return
    try:
        while rows := cursor.fetchmany(STREAM_ROWS):
            yield from rows
    finally:
        cursor.close()


def param_keys(conn: Connection, conditions: list[Any], limit: int = 50) -> list[str]:
    """The custom parameter names used in the scope (a column each), first seen first."""
    import json

    m = t.messages.c
    keys: dict[str, None] = {}
    rows = conn.execution_options(stream_results=True, yield_per=STREAM_ROWS).execute(
        select(m.params).where(and_(*conditions, m.params.isnot(None))))
    for (raw,) in rows:
        try:
            found = json.loads(raw)
        except ValueError:
            continue
        if isinstance(found, dict):
            for key in found:
                if key not in keys and len(keys) < limit:
                    keys[str(key)] = None
    return list(keys)


def counts(conn: Connection, conditions: list[Any],
           by: Sequence[str] = ("status",)) -> list[Any]:
    """COUNT, SUM(parts), SUM(points), SUM(refunded) grouped by the named columns."""
    m = t.messages.c
    keys = [getattr(m, name) for name in by]
    return conn.execute(select(*keys, func.count().label("messages"),
                               func.sum(m.parts).label("parts"),
                               func.sum(m.points).label("points"),
                               func.sum(m.refunded).label("refunded"))
                        .where(and_(*conditions)).group_by(*keys)).all()


def numbers(conn: Connection, conditions: list[Any]) -> Iterator[Any]:
    m = t.messages.c
    query = select(m.recipient, m.status, m.error_code, m.id).where(
        and_(*conditions)).order_by(m.id)
    yield from stream(conn, query)


# Jobs ----------------------------------------------------------------------------------------

def jobs(conn: Connection, account_id: int, start: float | None = None,
         end: float | None = None, campaign: str | None = None,
         job_ids: Sequence[str] | None = None, name: str | None = None,
         description: str | None = None, limit: int | None = None,
         before: str | None = None) -> list[Any]:
    """The account's jobs (not those still being written), newest first."""
    j = t.jobs.c
    conditions = [j.account_id == account_id, j.state != "creating"]
    if start is not None and end is not None:
        low, high = id_range(start, end)
        conditions += [j.id >= low, j.id < high]
    if campaign is not None:
        conditions.append(j.campaign_id == campaign)
    if job_ids is not None:
        conditions.append(j.id.in_(list(job_ids)))
    if name:
        conditions.append(func.lower(j.name).contains(name.lower(), autoescape=True))
    if description:
        conditions.append(func.lower(j.description).contains(description.lower(),
                                                              autoescape=True))
    if before is not None:
        conditions.append(j.id < before)
    query = select(t.jobs).where(and_(*conditions)).order_by(j.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return conn.execute(query).all()


def job_counts(conn: Connection, account_id: int,
               job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per job: counts per status, parts, points, refunds, first submit, last final."""
    m = t.messages.c
    found: dict[str, dict[str, Any]] = defaultdict(lambda: {
        "by_status": {}, "parts": 0, "points": 0, "refunded": 0, "first": None, "last": None})
    for start in range(0, len(job_ids), 500):
        chunk = list(job_ids[start:start + 500])
        for row in conn.execute(select(
                m.job_id, m.status, func.count(), func.sum(m.parts), func.sum(m.points),
                func.sum(m.refunded), func.min(m.submitted_at), func.max(m.final_at))
                .where(m.account_id == account_id, m.job_id.in_(chunk))
                .group_by(m.job_id, m.status)):
            job_id, status, n, parts, points, refunded, first, last = row
            entry = found[job_id]
            entry["by_status"][status] = int(n)
            entry["parts"] += int(parts or 0)
            entry["points"] += int(points or 0)
            entry["refunded"] += int(refunded or 0)
            if first is not None and (entry["first"] is None or first < entry["first"]):
                entry["first"] = first
            if last is not None and (entry["last"] is None or last > entry["last"]):
                entry["last"] = last
    return found


def ledger_total(conn: Connection, account_id: int) -> int:
    e = t.ledger_entries.c
    return int(conn.execute(select(func.coalesce(func.sum(e.points), 0)).where(
        e.account_id == account_id)).scalar() or 0)
