"""The SQL behind the reports. Every count is made by the database (GROUP BY over a
range of one account's index, or over the rollups); Python only shapes the few rows
that come back. The exceptions are the row-per-message reports (`detailed`,
`inbound`) and the number lists, which stream rows from a server-side cursor without
holding them. Phonebook fields and clicks come with those rows from joins and
correlated lookups by primary or unique index, made by the database: never a query
per row from Python.

Periods are compared through message ids (time-ordered, smppd.ids): the primary key
is the index, and it is the same notion of time as the rollups and history filters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    Integer,
    String,
    and_,
    case,
    column,
    distinct,
    exists,
    false,
    func,
    literal,
    select,
    text,
    values,
)

from ..ids import bound_for_time
from ..store import schema as t
from ..store.links import by_a_person
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
             params: bool = False, contacts: bool = False) -> Iterator[Sequence[Any]]:
    """The messages in id order, streamed in lists of plain tuples (`batches`; times
    as the driver gives them: text from SQLite, datetime from PostgreSQL): the
    DETAILED columns, then `clicked`, then the text, the params and the CONTACT
    columns as asked."""
    m = t.messages.c
    columns = [*(getattr(m, name) for name in DETAILED), clicked_column()]
    source: Any = t.messages
    if content:
        columns.append(m.text)
    if params:
        columns.append(m.params)
    if contacts:
        source, found = with_contact(source, m.account_id, m.recipient)
        columns += found
    query = select(*columns).select_from(source).where(and_(*conditions)).order_by(m.id)
    yield from batches(conn, query)


SEPARATOR = "\x1f"  # between the fields `detailed_joined` joins: never in a CSV line
_FREE_TEXT = {"sender", "error_code", "ref_id", "partner"}  # what a client or SMSC wrote


def detailed_joined(conn: Connection, conditions: list[Any],
                    links: bool = True) -> Iterator[Sequence[Any]]:
    """The messages of `detailed` (no optional columns), each as three strings from
    the database: id, created_at, then the other DETAILED columns and `clicked`
    ("true", "false" or ""; always "" without `links`) each after a SEPARATOR, NULL
    as "". Why: the driver's per-value cost was most of a million-row CSV's time at
    fifteen values a row. On SQLite one printf() joins them (SQLite 3.40 has no
    concat(); a chain of || copies the line once per piece and measured a third
    slower); on PostgreSQL concat(), which writes NULL as "" as printf's caller
    needs, and created_at is written by to_char in SQLite's text layout, so that
    both give the same three strings (PostgreSQL text holds no NUL)."""
    m = t.messages.c
    postgres = conn.dialect.name == "postgresql"
    values: list[Any] = []
    for name in DETAILED[2:]:
        value: Any = getattr(m, name)
        if name == "recipient":
            value = literal("+", String) + value
        elif name in _FREE_TEXT and not postgres:  # printf's %s ends at a NUL: a
            # line break makes the caller's check fail, and it writes the batch from
            # the values instead
            value = case((func.instr(value, func.char(0)) > 0, "\n"), else_=value)
        values.append(value)
    if links:
        made, clicks = t.links.c, t.link_clicks.c
        values.append(case((exists().where(made.message_id == m.id), case(
            (exists().where(clicks.message_id == m.id, by_a_person()), "true"),
            else_="false")), else_=""))
    created: Any = m.created_at
    if postgres:
        pieces: list[Any] = []
        for value in values:
            pieces += [literal(SEPARATOR, String), value]
        if not links:
            pieces.append(literal(SEPARATOR, String))
        joined = func.concat(*pieces)
        created = func.to_char(m.created_at, literal("YYYY-MM-DD HH24:MI:SS.US", String))
    else:
        template = (SEPARATOR + "%s") * len(values) + ("" if links else SEPARATOR)
        joined = func.printf(literal(template, String), *values)
    query = select(m.id, created, joined).where(and_(*conditions)).order_by(m.id)
    yield from batches(conn, query)


def links_between(conn: Connection, start: float | None, end: float | None) -> bool:
    """Whether a short link was made for any message created in [start, end), from
    the message_id index of links: without one, no row of a report over that time
    needs clicked_column's two lookups (most accounts send no links)."""
    if start is None or end is None:
        return True
    low, high = id_range(start, end)
    found = t.links.c
    return conn.execute(select(found.message_id).where(
        found.message_id >= low, found.message_id < high).limit(1)).first() is not None


def stream(conn: Connection, query: Any) -> Iterator[Any]:
    """Rows of a big query without holding them, one at a time (see `batches`)."""
    for rows in batches(conn, query):
        yield from rows


def batches(conn: Connection, query: Any) -> Iterator[Sequence[Any]]:
    """Rows of a big query without holding them, in lists of up to STREAM_ROWS: a
    renderer that takes a list at a time (csv's writerows) runs its row loop in C.
    On SQLite straight from the driver's cursor: SQLAlchemy's Row objects and type
    processing cost more per row than the rest of a CSV line. On PostgreSQL a
    server-side (named) cursor, fetched a few thousand rows at a time, for the same
    reason and so the rows are never all held."""
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
        yield from conn.execution_options(stream_results=True, yield_per=STREAM_ROWS) \
            .execute(query).partitions()
        return
    try:
        while rows := cursor.fetchmany(STREAM_ROWS):
            yield rows
    finally:
        cursor.close()


def param_keys(conn: Connection, conditions: list[Any], limit: int = 50) -> list[str]:
    """The custom parameter names used in the scope (a column each), first seen first."""
    m = t.messages.c
    return _json_keys(conn, select(m.params).where(and_(*conditions, m.params.isnot(None))),
                      limit)


def _json_keys(conn: Connection, query: Any, limit: int) -> list[str]:
    """The keys of the JSON objects in a one-column query, first seen first."""
    import json

    keys: dict[str, None] = {}
    rows = conn.execution_options(stream_results=True, yield_per=STREAM_ROWS).execute(query)
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


# Phonebook fields (issue 11) -----------------------------------------------------------

CONTACT = ("first_name", "last_name", "email", "fields")


def with_contact(source: Any, account: Any, phone: Any) -> tuple[Any, list[Any]]:
    """`source` joined to the account's contact whose phone is `phone` (an outer join
    on the unique (account_id, phone) index: one lookup per row, made by the
    database), and the CONTACT columns it adds."""
    c = t.contacts.c
    joined = source.outerjoin(t.contacts, and_(c.account_id == account, c.phone == phone))
    return joined, [getattr(c, name) for name in CONTACT]


def contact_field_keys(conn: Connection, account_id: int, limit: int = 50) -> list[str]:
    """The custom field names of the account's contacts (a column each)."""
    c = t.contacts.c
    return sorted(_json_keys(conn, select(c.fields).where(
        c.account_id == account_id, c.fields.isnot(None)).order_by(c.id), limit))


# Short-link clicks (issue 12) ------------------------------------------------------------

def clicked_column() -> Any:
    """For a query over `messages`: NULL when the message has no short link, else
    whether a person clicked one (link-preview robots are not counted: by_a_person).
    Two lookups by the (message_id) indexes of links and link_clicks."""
    m, links, clicks = t.messages.c, t.links.c, t.link_clicks.c
    return case((exists().where(links.message_id == m.id),
                 exists().where(clicks.message_id == m.id, by_a_person())),
                else_=None).label("clicked")


def link_stats(conn: Connection, account_id: int,
               job_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per job: messages with a short link, messages a person clicked, and clicks in
    all (robots and repeats included). Jobs without links are absent. The links are
    found through the job's messages (the (account, job) index of messages, then
    links by message id); the clicks through their own (job_id, message_id) index."""
    m, links, clicks = t.messages.c, t.links.c, t.link_clicks.c
    found: dict[str, dict[str, int]] = {}
    for start in range(0, len(job_ids), 500):
        chunk = list(job_ids[start:start + 500])
        for job_id, with_links in conn.execute(
                select(m.job_id, func.count(distinct(links.message_id)))
                .select_from(t.messages.join(t.links, links.message_id == m.id))
                .where(m.account_id == account_id, m.job_id.in_(chunk))
                .group_by(m.job_id)):
            found[job_id] = {"messages_with_links": int(with_links), "clicked": 0, "clicks": 0}
        for job_id, clicked, total in conn.execute(
                select(clicks.job_id,
                       func.count(distinct(case((by_a_person(), clicks.message_id)))),
                       func.count())
                .where(clicks.account_id == account_id, clicks.job_id.in_(chunk))
                .group_by(clicks.job_id)):
            entry = found.setdefault(job_id, {"messages_with_links": 0, "clicked": 0,
                                              "clicks": 0})
            entry.update(clicked=int(clicked or 0), clicks=int(total))
    return found


def link_totals(per_job: Iterable[dict[str, int]]) -> dict[str, Any]:
    """Jobs' link figures added up (a job's messages are its own, so they add), with
    the click-through rate = messages a person clicked / messages with links (None
    without links): the shape GET /v1/jobs/{id} answers as `links`."""
    totals = {"messages_with_links": 0, "clicked": 0, "clicks": 0}
    for entry in per_job:
        for key in totals:
            totals[key] += entry[key]
    with_links = totals["messages_with_links"]
    return {**totals, "ctr": round(totals["clicked"] / with_links, 4) if with_links else None}


def links_of_jobs(conn: Connection, account_id: int, job_ids: Sequence[str]) -> dict[str, Any]:
    return link_totals(link_stats(conn, account_id, job_ids).values())


# Inbound messages (issue 11) -------------------------------------------------------------

INBOUND = ("id", "received_at", "source", "destination", "prefix", "text", "parts")


def inbound_detailed(conn: Connection, conditions: list[Any],
                     contacts: bool = False) -> Iterator[Any]:
    """The inbound messages in the order received, streamed: the INBOUND columns, then
    the sender's CONTACT columns when asked (matched without the sender's '+')."""
    m = t.inbound_messages.c
    columns = [getattr(m, name) for name in INBOUND]
    source: Any = t.inbound_messages
    if contacts:
        source, found = with_contact(source, m.account_id, func.ltrim(m.source, "+"))
        columns += found
    query = select(*columns).select_from(source).where(and_(*conditions)).order_by(
        m.received_at, m.id)
    yield from stream(conn, query)


def _days(bounds: Sequence[tuple[Any, Any]], kind: Any) -> Any:
    """The days as a VALUES table (day, low, high) with typed bounds, to join on."""
    return values(column("day", Integer), column("low", kind), column("high", kind),
                  name="days").data([(index, low, high) for index, (low, high)
                                     in enumerate(bounds)]).cte("days")


def inbound_daily(conn: Connection, conditions: list[Any],
                  bounds: Sequence[tuple[Any, Any]]) -> list[tuple[int, str, int]]:
    """(day index, receiving number, messages) for days given as [low, high) UTC
    times: one query, each day a range of the (account_id, received_at) index."""
    if not bounds:
        return []
    m = t.inbound_messages.c
    days = _days(bounds, DateTime())
    return [(int(day), number, int(n)) for day, number, n in conn.execute(
        select(days.c.day, m.destination, func.count())
        .select_from(days.join(t.inbound_messages, and_(
            *conditions, m.received_at >= days.c.low, m.received_at < days.c.high)))
        .group_by(days.c.day, m.destination))]


def inbound_summary(conn: Connection, conditions: list[Any]) -> Any:
    """Messages and distinct senders in the scope."""
    m = t.inbound_messages.c
    return conn.execute(select(func.count(), func.count(distinct(m.source)))
                        .where(and_(*conditions))).one()


def inbound_bounds(conn: Connection, conditions: list[Any]) -> Any:
    """The first and last receipt time in the scope (the ends of the account's
    (account_id, received_at) index when the scope is the account's alone)."""
    m = t.inbound_messages.c
    return conn.execute(select(func.min(m.received_at), func.max(m.received_at))
                        .where(and_(*conditions))).one()


def inbound_count(conn: Connection, conditions: list[Any]) -> int:
    return int(conn.execute(select(func.count()).select_from(t.inbound_messages)
                            .where(and_(*conditions))).scalar() or 0)


# Polls (issue 11) --------------------------------------------------------------------------

def poll_daily(conn: Connection, poll_id: str,
               bounds: Sequence[tuple[str, str]]) -> list[tuple[int, str, int | None, int]]:
    """(day index, outcome, option number, votes) for days given as vote id ranges
    (ids are time-ordered): one query, each day a range of the (poll_id, id) index."""
    if not bounds:
        return []
    v = t.poll_votes.c
    days = _days(bounds, String())
    return [(int(day), outcome, option, int(n)) for day, outcome, option, n in conn.execute(
        select(days.c.day, v.outcome, v.option_no, func.count())
        .select_from(days.join(t.poll_votes, and_(
            v.poll_id == poll_id, v.id >= days.c.low, v.id < days.c.high)))
        .group_by(days.c.day, v.outcome, v.option_no))]


def poll_span(conn: Connection, poll_id: str, ids: tuple[str, str] | None) -> Any:
    """Votes, first and last receipt time of a poll's votes (within `ids`)."""
    v = t.poll_votes.c
    conditions = [v.poll_id == poll_id]
    if ids is not None:
        conditions += [v.id >= ids[0], v.id < ids[1]]
    return conn.execute(select(func.count(), func.min(v.received_at), func.max(v.received_at))
                        .where(and_(*conditions))).one()
