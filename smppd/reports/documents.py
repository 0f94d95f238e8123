"""Report types: what each one counts and how its rows look, independent of format.

A `Document` is the format-free result: a title and the facts a summary prints, a
table (columns with kinds, so XLSX cells are typed; rows possibly streamed), and for
the printed formats a chart, the top non-delivery reasons and the number groups.
Renderers (smppd.reports.render) turn it into CSV, JSON, XLSX, PDF, DOCX or XML.

This module builds the reports of sent messages; smppd.reports.inbound_documents
those of inbound messages and polls; smppd.reports.catalog names them all.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from .. import status as st
from ..explain import explain_error, status_description
from ..status import Status
from ..store import schema
from . import queries as q
from .periods import Period

NOT_DELIVERED = (Status.UNDELIVERED, Status.EXPIRED, Status.REJECTED, Status.DELETED, Status.FAILED)
PENDING = (Status.QUEUED, Status.SCHEDULED, Status.SUBMITTED, Status.UNKNOWN)
# The printed charts group statuses the way a customer reads them.
STACK = (("delivered", (Status.DELIVERED,)), ("not delivered", NOT_DELIVERED),
         ("pending", PENDING), ("cancelled", (Status.CANCELLED,)))
SENT = (Status.SUBMITTED, Status.DELIVERED, Status.UNDELIVERED, Status.EXPIRED, Status.DELETED,
        Status.UNKNOWN)
PRINTED_ROWS = 2000  # rows a PDF or DOCX table shows; the rest is for CSV/XLSX


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = "text"  # text | int | float | percent | bool | datetime | date | time


@dataclass
class Group:
    """A set of numbers a customer may download (GET /v1/jobs/{id}/numbers?group=)."""

    key: str
    label: str
    messages: int


@dataclass
class Document:
    type: str
    title: str
    account: str
    period: Period | None
    timezone: str
    columns: list[Column]
    rows: Iterable[Sequence[Any]]
    estimate: int = 0  # expected rows, for progress
    totals: dict[str, Any] = field(default_factory=dict)
    facts: list[tuple[str, str]] = field(default_factory=list)  # printed under the title
    chart: tuple[str, Any] | None = None  # ("stacked", (labels, {series: values})) | ("pie", {})
    reasons: list[tuple[str, str, int]] = field(default_factory=list)  # code, meaning, n
    groups: list[Group] = field(default_factory=list)
    numbers: Callable[[str], Iterator[str]] | None = None  # group key -> numbers (XML)
    extra: dict[str, Any] = field(default_factory=dict)  # more JSON fields
    printed_rows: bool = True  # whether PDF/DOCX print the table
    printed_columns: list[str] | None = None  # the columns they print (None: their choice)
    chart_title: str | None = None  # the PDF's heading over `chart` (None: by type)
    more_charts: list[tuple[str, tuple[str, Any]]] = field(default_factory=list)  # title, chart
    shows_reasons: bool = True  # whether the PDF has a "top non-delivery reasons" section
    row_count: int | None = None  # the exact row count, when known before the rows
    # The same rows as `rows`, already as CSV text (times ISO 8601 with the offset,
    # bools true/false) and in lists of a few thousand, for a report too big for
    # render's per-row conversion (`detailed`): None to convert `rows`.
    text_batches: Callable[[], Iterator[Sequence[Sequence[Any]]]] | None = None
    # Faster still where the database can join a row's fields: finished CSV text
    # (lines ending in CRLF, as csv.writer writes them) and its row count, a few
    # thousand rows at a time, for a delimiter. None: use the above.
    csv_chunks: Callable[[str], Iterator[tuple[str, int]]] | None = None

    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def printed(self, leave_out: set[str]) -> list[int]:
        """Indexes of the columns a printed table shows."""
        if self.printed_columns is not None:
            names = self.column_names()
            return [names.index(name) for name in self.printed_columns]
        return [i for i, c in enumerate(self.columns) if c.name not in leave_out]


@dataclass
class Context:
    """What a builder gets: the account, the validated request and its period."""

    account_id: int
    account: str
    request: dict[str, Any]
    period: Period | None
    tz: ZoneInfo
    job_ids: list[str] | None = None  # a job's or campaign's jobs, resolved by the service
    job_rows: list[Any] = field(default_factory=list)
    campaign: dict[str, Any] | None = None
    poll: dict[str, Any] | None = None  # the poll of a `poll` report


class LocalTime:
    """UTC from the store to the account's local time, fast enough for a million rows:
    the offset is looked up once per UTC hour, not per row."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._offsets: dict[Any, tuple[timezone, timedelta]] = {}
        self._minutes: dict[str, tuple[str, str] | None] = {}

    def __call__(self, value: datetime | str | None) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite's text: "YYYY-MM-DD HH:MM:SS.ffffff"
            key: Any = value[:13]
            value = datetime.fromisoformat(value)
        else:
            key = (value.year, value.month, value.day, value.hour)
        found = self._offsets.get(key)
        if found is None:
            delta = value.replace(tzinfo=UTC).astimezone(self.tz).utcoffset() or timedelta()
            found = self._offsets[key] = (timezone(delta), delta)
        return (value + found[1]).replace(tzinfo=found[0])

    def text(self, value: datetime | str | None) -> str | None:
        """The local time as `self(value).isoformat(timespec="seconds")` would write
        it, built from a per-minute cache: for SQLite's text the seconds are copied
        over as they are (an offset of whole minutes leaves them alone), so a row costs
        a slice and a lookup instead of parsing, shifting and formatting a datetime
        (most of a `detailed` CSV's Python time before)."""
        if value is None:
            return None
        if not isinstance(value, str):
            return self(value).isoformat(timespec="seconds")  # type: ignore[union-attr]
        found = self._minutes.get(value[:16])
        if found is None:
            found = self._minutes[value[:16]] = self.minute(value)
            if found is None:  # an offset with seconds (before 1972): the long way
                return self(value).isoformat(timespec="seconds")  # type: ignore[union-attr]
        return found[0] + value[16:19] + found[1]

    def minute(self, value: str) -> tuple[str, str] | None:
        """(local "YYYY-MM-DDTHH:MM", offset "+HH:MM") of the UTC minute `value` (SQLite's
        text) is in; None for an offset with seconds, which moves the seconds too."""
        local = self(value[:16])
        assert local is not None
        offset = local.utcoffset() or timedelta()
        if offset.seconds % 60 or offset.microseconds:
            return None
        written = local.isoformat(timespec="minutes")
        return written[:16], written[16:]


def _scope(ctx: Context, by_period: bool = True) -> list[Any]:
    period = ctx.period if by_period else None
    return q.message_scope(ctx.account_id, period.start_ts if period else None,
                           period.end_ts if period else None, ctx.job_ids,
                           ctx.request.get("include_jobs", True))


def _stack(by_status: dict[str, int]) -> dict[str, int]:
    return {label: sum(by_status.get(s, 0) for s in members) for label, members in STACK}


def _reasons(rows: Iterable[tuple[str, str, int]], limit: int = 10) -> list[tuple[str, str, int]]:
    merged: dict[str, int] = {}
    for code, status, n in rows:
        if status in NOT_DELIVERED or status == Status.UNKNOWN:
            merged[code] = merged.get(code, 0) + n
    top = sorted(merged.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [(code, explain_error(code)[1], n) for code, n in top]


def _period_facts(ctx: Context, totals: dict[str, Any]) -> list[tuple[str, str]]:
    facts = [("Account", ctx.account)]
    if ctx.period is not None:
        facts.append(("Period", ctx.period.label()))
    facts.append(("Time zone", ctx.tz.key))
    if ctx.campaign is not None:
        facts.append(("Campaign", ctx.campaign["name"]))
    facts += [("Messages", f"{totals.get('messages', 0):,}"),
              ("Parts", f"{totals.get('parts', 0):,}"),
              ("Points charged", f"{totals.get('points', 0):,}"),
              ("Points refunded", f"{totals.get('refunded', 0):,}")]
    delivered = totals.get(Status.DELIVERED, 0)
    if totals.get("messages"):
        share = 100.0 * delivered / totals["messages"]
        facts.append(("Delivered", f"{delivered:,} ({share:.1f}%)"))
    return facts


# Period summary (the daily series; shared by the printed formats) ---------------------------

def _daily_series(conn: Connection, ctx: Context) -> tuple[list[list[Any]], dict[str, Any]]:
    assert ctx.period is not None
    days = ctx.period.days()
    rows = [[day, 0, 0, 0, 0] + [0] * len(st.ALL) for day, _low, _high in days]
    index = {status: 5 + n for n, status in enumerate(st.ALL)}
    for day, status, n, parts, points, refunded in q.daily(conn, ctx.account_id, days):
        row = rows[day]
        row[1] += n
        row[2] += parts
        row[3] += points
        row[4] += refunded
        if status in index:
            row[index[status]] += n
    totals = {"messages": sum(r[1] for r in rows), "parts": sum(r[2] for r in rows),
              "points": sum(r[3] for r in rows), "refunded": sum(r[4] for r in rows)}
    for status, position in index.items():
        totals[status] = sum(r[position] for r in rows)
    return rows, totals


def _stacked_chart(rows: list[list[Any]]) -> tuple[str, Any]:
    labels = [f"{r[0]:%d.%m}" for r in rows]
    series = {label: [] for label, _members in STACK}
    index = {status: 5 + n for n, status in enumerate(st.ALL)}
    for row in rows:
        by_status = {status: row[position] for status, position in index.items()}
        for label, value in _stack(by_status).items():
            series[label].append(value)
    return "stacked", (labels, series)


def _with_period_summary(conn: Connection, ctx: Context, doc: Document) -> Document:
    """Totals, the daily chart and the top reasons of a period, from the rollups."""
    if ctx.period is None:
        return doc
    rows, totals = _daily_series(conn, ctx)
    doc.totals = doc.totals or totals
    doc.facts = _period_facts(ctx, totals)
    doc.chart = _stacked_chart(rows)
    doc.reasons = _reasons(q.rollup_reasons(conn, ctx.account_id, ctx.period.start_ts,
                                            ctx.period.end_ts, limit=50))
    return doc


# Types ------------------------------------------------------------------------------------

def daily(conn: Connection, ctx: Context) -> Document:
    rows, totals = _daily_series(conn, ctx)
    columns = [Column("date", "date"), Column("messages", "int"), Column("parts", "int"),
               Column("points", "int"), Column("refunded", "int")]
    columns += [Column(status, "int") for status in st.ALL]
    doc = Document("daily", "Messages per day", ctx.account, ctx.period, ctx.tz.key, columns,
                   rows, len(rows), totals)
    doc.printed_columns = ["date", "messages", "parts", "points", "refunded", Status.DELIVERED,
                           Status.UNDELIVERED, Status.EXPIRED, Status.REJECTED, Status.CANCELLED]
    return _with_period_summary(conn, ctx, doc)


def detailed(conn: Connection, ctx: Context) -> Document:
    request = ctx.request
    content = bool(request.get("include_content"))
    scope = _scope(ctx)
    keys = q.param_keys(conn, scope) if request.get("include_params") else []
    contact = ContactColumns(conn, ctx.account_id) if request.get("include_contacts") \
        else None
    columns = [Column("id"), Column("created", "datetime"), Column("sender"),
               Column("recipient"), Column("country"), Column("status"), Column("error"),
               Column("parts", "int"), Column("points", "int"), Column("refunded", "int"),
               Column("channel"), Column("job"), Column("ref_id"), Column("partner"),
               Column("clicked", "bool")]
    if content:
        columns.append(Column("content"))
    columns += [Column(f"param.{key}") for key in keys]
    if contact is not None:
        columns += contact.columns
    local = LocalTime(ctx.tz)

    def more(row: Sequence[Any]) -> list[Any]:
        """The optional columns after `clicked`: content, params, contact fields."""
        values = []
        at = 15
        if content:
            values.append(row[at])
            at += 1
        if keys:
            found = json_object(row[at])
            values += [_param(found.get(key)) for key in keys]
            at += 1
        if contact is not None:
            values += contact.values(row[at:at + 4])
        return values

    def batches() -> Iterator[Sequence[Sequence[Any]]]:
        return q.detailed(conn, scope, content, bool(keys), contact is not None)

    def rows() -> Iterator[Sequence[Any]]:
        for batch in batches():
            for row in batch:
                clicked = row[14]
                yield [row[0], local(row[1]), row[2], "+" + row[3], *row[4:14],
                       None if clicked is None else bool(clicked), *more(row)]

    extra = bool(content or keys or contact is not None)
    stamp = local.text
    flag = {None: None, False: "false", True: "true"}  # 0 and 1 from SQLite too

    def as_text(batch: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        # One comprehension per batch, a tuple per row, no per-cell type checks: a
        # million rows make every step of the row count (see LocalTime.text).
        if extra:
            return [(r[0], stamp(r[1]), r[2], "+" + r[3], *r[4:14], flag[r[14]], *more(r))
                    for r in batch]
        return [(r[0], stamp(r[1]), r[2], "+" + r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                 r[10], r[11], r[12], r[13], flag[r[14]]) for r in batch]

    def text_batches() -> Iterator[Sequence[Sequence[Any]]]:
        for batch in batches():
            yield as_text(batch)

    def csv_chunks(delimiter: str) -> Iterator[tuple[str, int]]:
        """CSV text from the rows the database joined (queries.detailed_joined): a
        batch's lines are made with one format per row and checked as a whole; a
        batch where any value would need csv's quoting (a delimiter, a quote, a line
        break) or has the separator itself is read again as values and written by
        csv.writer, so the text is always what csv.writer makes of the values."""
        sep = q.SEPARATOR
        fields = len(columns)
        prefix: dict[str, str] = {}
        offset: dict[str, str] = {}
        period = ctx.period
        links = q.links_between(conn, period.start_ts if period else None,
                                period.end_ts if period else None)
        for batch in q.detailed_joined(conn, scope, links):
            try:
                text = "\n".join([f"{r[0]}{sep}{prefix[r[1][:16]]}{r[1][16:19]}"
                                  f"{offset[r[1][:16]]}{r[2]}" for r in batch])
            except KeyError:  # a minute not seen yet
                for r in batch:
                    if r[1][:16] not in prefix:
                        found = local.minute(r[1][:16])
                        # None (an offset with seconds): "\n" fails the check below
                        prefix[r[1][:16]], offset[r[1][:16]] = found or ("", "\n")
                text = "\n".join([f"{r[0]}{sep}{prefix[r[1][:16]]}{r[1][16:19]}"
                                  f"{offset[r[1][:16]]}{r[2]}" for r in batch])
            n = len(batch)
            if text.count(sep) == (fields - 1) * n and text.count("\n") == n - 1 and \
                    '"' not in text and "\r" not in text and delimiter not in text:
                yield text.replace(sep, delimiter).replace("\n", "\r\n") + "\r\n", n
                continue
            m = schema.messages.c
            again = [*scope, m.id >= batch[0][0], m.id <= batch[-1][0]]
            buffer = io.StringIO()
            writer = csv.writer(buffer, delimiter=delimiter)
            for rows_again in q.detailed(conn, again):
                writer.writerows(as_text(rows_again))
            yield buffer.getvalue(), n

    estimate = q.rollup_count(conn, ctx.account_id, ctx.period.start_ts, ctx.period.end_ts) \
        if ctx.period is not None else 0
    doc = Document("detailed", "Messages in detail", ctx.account, ctx.period, ctx.tz.key,
                   columns, rows(), estimate, printed_rows=False, text_batches=text_batches)
    if not extra and conn.dialect.name in ("sqlite", "postgresql"):
        doc.csv_chunks = csv_chunks
    return _with_period_summary(conn, ctx, doc)


def json_object(raw: str | None) -> dict[str, Any]:
    """A JSON object stored as text ({} for none, or for anything else)."""
    if not raw:
        return {}
    try:
        found = json.loads(raw)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _param(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float):
        return value
    return json.dumps(value, ensure_ascii=False)


class ContactColumns:
    """The phonebook's columns in a row-per-message report: first name, last name,
    e-mail and each custom field of the account's contacts (`contact.<name>`). The
    rows carry the matched contact's four stored columns (queries.CONTACT), from a
    join made by the database."""

    def __init__(self, conn: Connection, account_id: int) -> None:
        self.keys = q.contact_field_keys(conn, account_id)
        self.columns = [Column("first_name"), Column("last_name"), Column("email")]
        self.columns += [Column(f"contact.{key}") for key in self.keys]

    def values(self, stored: Sequence[Any]) -> list[Any]:
        first, last, email, fields = stored
        if fields is None or not self.keys:  # most rows: no contact, or no custom fields
            return [first, last, email, *self._none]
        found = json_object(fields)
        return [first, last, email, *(_param(found.get(key)) for key in self.keys)]

    @property
    def _none(self) -> list[None]:
        return [None] * len(self.keys)


def jobs(conn: Connection, ctx: Context) -> Document:
    found = ctx.job_rows
    counts = q.job_counts(conn, ctx.account_id, [job.id for job in found])
    links = q.link_stats(conn, ctx.account_id, [job.id for job in found])
    local = LocalTime(ctx.tz)
    columns = [Column("id"), Column("name"), Column("sender"), Column("text"),
               Column("recipients", "int"), Column("sent", "int"), Column("delivered", "int"),
               Column("undelivered", "int"), Column("other", "int"), Column("points", "int"),
               Column("refunds", "int"), Column("state"), Column("created", "datetime"),
               Column("started", "datetime"), Column("finished", "datetime"),
               Column("campaign"), Column("with_links", "int"), Column("clicked", "int"),
               Column("ctr_percent", "percent")]
    rows, totals = [], {"jobs": 0, "recipients": 0, "sent": 0, "delivered": 0,
                        "undelivered": 0, "other": 0, "points": 0, "refunds": 0}
    by_status_all: dict[str, int] = {}
    for job in found:
        entry = counts.get(job.id, {"by_status": {}, "first": None, "last": None})
        by_status = entry["by_status"]
        messages = sum(by_status.values())
        sent = sum(by_status.get(s, 0) for s in SENT)
        delivered = by_status.get(Status.DELIVERED, 0)
        undelivered = by_status.get(Status.UNDELIVERED, 0)
        finished = entry["last"] if job.state in ("completed", "stopped") else None
        clicks = q.link_totals([links[job.id]] if job.id in links else [])
        row = [job.id, job.name, job.sender, job.text, job.recipients, sent, delivered,
               undelivered, messages - delivered - undelivered, job.points, job.refunded,
               job.state, local(job.created_at), local(entry["first"]), local(finished),
               job.campaign_id, clicks["messages_with_links"], clicks["clicked"],
               _ctr_percent(clicks)]
        rows.append(row)
        for key, value in zip(("recipients", "sent", "delivered", "undelivered", "other",
                               "points", "refunds"), row[4:11], strict=True):
            totals[key] += value
        totals["jobs"] += 1
        for status, n in by_status.items():
            by_status_all[status] = by_status_all.get(status, 0) + n
    title = f"Campaign {ctx.campaign['name']}" if ctx.campaign else "Bulk jobs"
    doc = Document("jobs", title, ctx.account, ctx.period, ctx.tz.key, columns, rows,
                   len(rows), totals)
    doc.printed_columns = ["name", "recipients", "sent", "delivered", "undelivered", "other",
                           "points", "refunds", "state", "started"]
    clicks = q.link_totals(links.values())
    if clicks["messages_with_links"]:
        doc.printed_columns += ["clicked", "ctr_percent"]
    totals.update(with_links=clicks["messages_with_links"], clicked=clicks["clicked"])
    doc.facts = [("Account", ctx.account)]
    if ctx.period is not None:
        doc.facts.append(("Period", ctx.period.label()))
    doc.facts.append(("Time zone", ctx.tz.key))
    if ctx.campaign:
        doc.facts.append(("Campaign", ctx.campaign["name"]))
        if ctx.campaign.get("description"):
            doc.facts.append(("Description", ctx.campaign["description"]))
    doc.facts += [("Jobs", f"{totals['jobs']:,}"), ("Recipients", f"{totals['recipients']:,}"),
                  ("Sent", f"{totals['sent']:,}"), ("Delivered", f"{totals['delivered']:,}"),
                  ("Points charged", f"{totals['points']:,}"),
                  ("Points refunded", f"{totals['refunds']:,}"), *_click_facts(clicks)]
    shown = rows[:20]
    doc.chart = ("stacked", ([_short(r[1]) for r in shown], {
        "delivered": [r[6] for r in shown], "not delivered": [r[7] for r in shown],
        "other": [r[8] for r in shown]}))
    if found:
        doc.reasons = _reasons((row.error_code, row.status, row.messages) for row in q.counts(
            conn, q.message_scope(ctx.account_id, None, None, [j.id for j in found]),
            ("error_code", "status")) if row.error_code)
    doc.extra["by_status"] = by_status_all
    doc.extra["links"] = clicks
    return doc


def _ctr_percent(clicks: dict[str, Any]) -> float | None:
    return None if clicks["ctr"] is None else round(100.0 * clicks["ctr"], 2)


def _click_facts(clicks: dict[str, Any]) -> list[tuple[str, str]]:
    """Clicks on short links, for a summary: none when no message had one."""
    if not clicks["messages_with_links"]:
        return []
    return [("Clicked", f"{clicks['clicked']:,} of {clicks['messages_with_links']:,} "
                        f"messages with links"),
            ("Click-through rate", f"{_ctr_percent(clicks):.1f}%")]


def _short(text: str, length: int = 14) -> str:
    return text if len(text) <= length else text[:length - 1] + "…"


def job(conn: Connection, ctx: Context) -> Document:
    """One job (or a campaign's jobs together): counts per status and error, the
    reasons, and the number groups."""
    scope = q.message_scope(ctx.account_id, None, None, ctx.job_ids)
    # Grouped error first: grouped by status first, SQLite (without ANALYZE statistics)
    # walks the (account, status) index to skip a sort, i.e. the whole account.
    by_key = q.counts(conn, scope, ("error_code", "status"))
    columns = [Column("group"), Column("status"), Column("error"), Column("explanation"),
               Column("messages", "int"), Column("parts", "int"), Column("points", "int"),
               Column("refunded", "int")]
    rows = []
    by_status: dict[str, int] = {}
    totals = {"messages": 0, "parts": 0, "points": 0, "refunded": 0}
    ordered = sorted(by_key, key=lambda r: (st.ALL.index(r.status) if r.status in st.ALL
                                            else 99, r.error_code or ""))
    for row in ordered:
        explanation = explain_error(row.error_code)[1] if row.error_code else \
            status_description(row.status)
        rows.append([row.error_code or row.status, row.status, row.error_code, explanation,
                     row.messages, int(row.parts), int(row.points), int(row.refunded)])
        by_status[row.status] = by_status.get(row.status, 0) + row.messages
        for key in totals:
            totals[key] += int(getattr(row, key))
    totals.update(by_status)
    groups = [Group(status, f"{status}: {status_description(status)}", n)
              for status, n in sorted(by_status.items(),
                                      key=lambda item: st.ALL.index(item[0])
                                      if item[0] in st.ALL else 99)]
    errors: dict[str, int] = {}
    for row in ordered:
        if row.error_code:
            errors[row.error_code] = errors.get(row.error_code, 0) + row.messages
    groups += [Group(code, f"{code}: {explain_error(code)[1]}", n)
               for code, n in sorted(errors.items())]
    names = [j.name for j in ctx.job_rows]
    title = (f"Campaign {ctx.campaign['name']}" if ctx.campaign
             else f"Job {names[0]}" if names else "Job")
    doc = Document("job", title, ctx.account, ctx.period, ctx.tz.key, columns, rows,
                   len(rows), totals)
    doc.printed_columns = ["group", "status", "messages", "parts", "points", "refunded"]
    doc.facts = [("Account", ctx.account), ("Time zone", ctx.tz.key)]
    if ctx.campaign:
        doc.facts.append(("Campaign", ctx.campaign["name"]))
        doc.facts.append(("Jobs", ", ".join(names) or "none"))
    elif ctx.job_rows:
        job_row = ctx.job_rows[0]
        local = LocalTime(ctx.tz)
        created = local(job_row.created_at)
        doc.facts += [("Job", job_row.name), ("Job id", job_row.id), ("Sender", job_row.sender),
                      ("State", job_row.state),
                      ("Created", f"{created:%Y-%m-%d %H:%M}" if created else "")]
    delivered = by_status.get(Status.DELIVERED, 0)
    doc.facts += [("Messages", f"{totals['messages']:,}"), ("Parts", f"{totals['parts']:,}"),
                  ("Delivered", f"{delivered:,}" + (
                      f" ({100.0 * delivered / totals['messages']:.1f}%)"
                      if totals["messages"] else "")),
                  ("Points charged", f"{totals['points']:,}"),
                  ("Points refunded", f"{totals['refunded']:,}")]
    clicks = q.links_of_jobs(conn, ctx.account_id, ctx.job_ids or [])
    doc.facts += _click_facts(clicks)
    doc.chart = ("pie", _stack(by_status))
    doc.reasons = _reasons((r.error_code, r.status, r.messages) for r in ordered
                           if r.error_code)
    doc.groups = groups
    doc.numbers = lambda key: group_numbers(conn, ctx.account_id, ctx.job_ids or [], key)
    doc.extra = {"jobs": [j.id for j in ctx.job_rows], "counts": by_status,
                 "reasons": [{"code": c, "description": d, "messages": n}
                             for c, d, n in doc.reasons],
                 "groups": [{"group": g.key, "label": g.label, "messages": g.messages}
                            for g in groups], "links": clicks}
    return doc


def group_numbers(conn: Connection, account_id: int, job_ids: Sequence[str],
                  group: str) -> Iterator[str]:
    """The numbers of one group: a status name, or an error code."""
    from ..store import schema as t

    m = t.messages.c
    scope = q.message_scope(account_id, None, None, job_ids)
    # `status || ''`: not a term the (account, status) index can serve, so SQLite keeps
    # to the job's index instead of walking every message of the account in that status.
    scope.append(m.status.concat("") == group if group in st.ALL else m.error_code == group)
    for row in q.numbers(conn, scope):
        yield "+" + row[0]


def country(conn: Connection, ctx: Context) -> Document:
    by_period = ctx.job_ids is None
    scope = _scope(ctx, by_period)
    found: dict[str, list[int]] = {}
    for row in q.counts(conn, scope, ("country", "status")):
        entry = found.setdefault(row.country or "", [0, 0, 0, 0, 0])
        entry[0] += row.messages
        entry[1] += int(row.parts)
        entry[2] += row.messages if row.status == Status.DELIVERED else 0
        entry[3] += int(row.points)
        entry[4] += int(row.refunded)
    columns = [Column("country"), Column("messages", "int"), Column("parts", "int"),
               Column("delivered", "int"), Column("delivered_percent", "percent"),
               Column("points", "int"), Column("refunded", "int")]
    rows = [[code, n, parts, delivered, round(100.0 * delivered / n, 2) if n else 0.0,
             points, refunded]
            for code, (n, parts, delivered, points, refunded) in sorted(
                found.items(), key=lambda item: (-item[1][0], item[0]))]
    totals = {"messages": sum(r[1] for r in rows), "parts": sum(r[2] for r in rows),
              "delivered": sum(r[3] for r in rows), "points": sum(r[5] for r in rows),
              "refunded": sum(r[6] for r in rows)}
    doc = Document("country", "Messages per country", ctx.account, ctx.period, ctx.tz.key,
                   columns, rows, len(rows), totals)
    if by_period:
        _with_period_summary(conn, ctx, doc)
        doc.totals = totals
    else:
        doc.facts = _period_facts(ctx, totals)
        doc.chart = ("pie", {r[0] or "?": r[1] for r in rows[:8]})
    return doc


def customer(conn: Connection, ctx: Context) -> Document:
    """Billing: per end customer (`partner`; the account itself for messages without
    one), per destination country, per calendar month in the account's zone. Points
    are what the messages were charged, refunded and net: their sum is exactly what
    messages took from the balance."""
    assert ctx.period is not None
    rows = []
    for month, low, high in ctx.period.months():
        scope = q.message_scope(ctx.account_id, low, high, ctx.job_ids,
                                ctx.request.get("include_jobs", True))
        for row in sorted(q.counts(conn, scope, ("partner", "country")),
                          key=lambda r: (r.partner or "", r.country or "")):
            rows.append([month, row.partner or ctx.account, row.country or "", row.messages,
                         int(row.parts), int(row.points), int(row.refunded),
                         int(row.points) - int(row.refunded)])
    columns = [Column("month"), Column("customer"), Column("country"),
               Column("messages", "int"), Column("parts", "int"), Column("points", "int"),
               Column("refunded", "int"), Column("net_points", "int")]
    totals = {"messages": sum(r[3] for r in rows), "parts": sum(r[4] for r in rows),
              "points": sum(r[5] for r in rows), "refunded": sum(r[6] for r in rows),
              "net_points": sum(r[7] for r in rows)}
    doc = Document("customer", "Volumes per customer", ctx.account, ctx.period, ctx.tz.key,
                   columns, rows, len(rows), totals)
    _with_period_summary(conn, ctx, doc)
    doc.totals = totals
    doc.facts.append(("Net points", f"{totals['net_points']:,}"))
    return doc


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
