"""Report types of the inbound side (issue 11): `inbound` (one row per message
received: date, time, sender, receiving number, prefix, text, and the sender's
phonebook entry when asked), `inbound-daily` (messages per local day, in all and
per receiving number) and `poll` (options with votes and percentages, the outcomes,
votes per day).

Days are cut in the account's time zone, as in every report. The counting is done
by the database (one GROUP BY over a VALUES table of the days' bounds); Python
shapes the few rows that come back, and streams the detailed rows.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection

from ..checks import ApiError
from ..ids import bound_for_time
from ..inbound.pool import display
from ..store import inbound_queries as iq
from . import queries as q
from .documents import Column, ContactColumns, Context, Document, LocalTime
from .periods import Period, midnight, utc_naive

MAX_NUMBERS = 8  # receiving numbers shown one by one; more are added up as OTHER
OTHER = "other numbers"
REFUSED = "refused"


@functools.lru_cache(maxsize=1 << 16)
def address(stored: str) -> str:
    """A sender or receiving number as people write it (stored with or without '+').
    Cached: a report of a million messages has a few numbers and fewer senders."""
    return display(stored.removeprefix("+"))


def _where(request: dict[str, Any], period: Period | None) -> iq.InboundFilter:
    """The scope: inbound messages in the period (if any), to the `number` and from
    the `sender` the request names (if any): the inbound list's filter."""
    return iq.InboundFilter(period.start_ts if period else None,
                            period.end_ts if period else None,
                            request.get("number"), request.get("sender"))


def _filter(ctx: Context, timed: bool = True) -> iq.InboundFilter:
    return _where(ctx.request, ctx.period if timed else None)


def estimate(conn: Connection, account_id: int, request: dict[str, Any],
             period: Period | None) -> int:
    """Inbound messages in scope: the rows `inbound` writes and `inbound-daily` counts."""
    return q.inbound_count(conn, iq.inbound_conditions(account_id, _where(request, period)))


# Messages per day, per receiving number (both inbound types) ------------------------------

class DailySeries:
    """Messages per local day of the period, in all and per receiving number (the
    MAX_NUMBERS - 1 busiest by name, the rest as OTHER when there are more)."""

    def __init__(self, conn: Connection, ctx: Context) -> None:
        assert ctx.period is not None
        self.days = [day for day, _low, _high in ctx.period.days()]
        bounds = [(utc_naive(low), utc_naive(high)) for _day, low, high in ctx.period.days()]
        found: dict[str, list[int]] = {}
        for index, number, n in q.inbound_daily(
                conn, iq.inbound_conditions(ctx.account_id, _filter(ctx, timed=False)),
                bounds):
            found.setdefault(address(number), [0] * len(self.days))[index] += n
        ranked = sorted(found.items(), key=lambda item: (-sum(item[1]), item[0]))
        if len(ranked) > MAX_NUMBERS:
            rest = [sum(values) for values in zip(*(v for _n, v in ranked[MAX_NUMBERS - 1:]),
                                                  strict=True)]
            ranked = [*ranked[:MAX_NUMBERS - 1], (OTHER, rest)]
        self.numbers = dict(ranked)
        self.totals = [sum(values) for values in zip(*self.numbers.values(), strict=True)] \
            if self.numbers else [0] * len(self.days)

    def chart(self) -> tuple[str, Any]:
        return "stacked", ([f"{day:%d.%m}" for day in self.days], dict(self.numbers))

    def busiest(self) -> str:
        if not any(self.totals):
            return "none"
        best = max(range(len(self.days)), key=lambda i: (self.totals[i], -i))
        return f"{self.days[best]:%Y-%m-%d} ({self.totals[best]:,})"


def _summarise(conn: Connection, ctx: Context, doc: Document, series: DailySeries) -> None:
    """The facts and the chart both inbound types print."""
    count, senders = q.inbound_summary(
        conn, iq.inbound_conditions(ctx.account_id, _filter(ctx)))
    doc.facts = [("Account", ctx.account)]
    if ctx.period is not None:
        doc.facts.append(("Period", ctx.period.label()))
    doc.facts.append(("Time zone", ctx.tz.key))
    if ctx.request.get("number"):
        doc.facts.append(("Receiving number", address(ctx.request["number"])))
    if ctx.request.get("sender"):
        doc.facts.append(("Sender", address(ctx.request["sender"])))
    doc.facts += [("Messages received", f"{count:,}"), ("Senders", f"{senders:,}"),
                  ("Receiving numbers", f"{len([n for n in series.numbers if n != OTHER]):,}"
                   + (" and more" if OTHER in series.numbers else "")),
                  ("Busiest day", series.busiest())]
    doc.chart = series.chart()
    doc.chart_title = "Inbound messages per day, by receiving number"


# Types ----------------------------------------------------------------------------------

def detailed(conn: Connection, ctx: Context) -> Document:
    """`inbound`: one row per message, in the order received. Phonebook fields of the
    sender with "include_contacts": true."""
    contact = ContactColumns(conn, ctx.account_id) if ctx.request.get("include_contacts") \
        else None
    columns = [Column("date", "date"), Column("time", "time"), Column("sender"),
               Column("number"), Column("prefix"), Column("text"), Column("parts", "int"),
               Column("id", "int")]
    if contact is not None:
        columns += contact.columns
    local = LocalTime(ctx.tz)
    scope = iq.inbound_conditions(ctx.account_id, _filter(ctx))

    def rows() -> Iterator[Sequence[Any]]:
        for row in q.inbound_detailed(conn, scope, contact is not None):
            at = local(row[1])
            assert at is not None
            values = [at.date(), time(at.hour, at.minute, at.second), address(row[2]),
                      address(row[3]), row[4], row[5], row[6], row[0]]
            if contact is not None:
                values += contact.values(row[7:11])
            yield values

    count = q.inbound_count(conn, scope)  # (received_at) index only, unless filtered
    doc = Document("inbound", "Inbound messages", ctx.account, ctx.period, ctx.tz.key,
                   columns, rows(), count, shows_reasons=False, row_count=count)
    doc.printed_columns = ["date", "time", "sender", "number", "prefix", "text"]
    # The summary costs a pass over the period's messages; a CSV has no use for it.
    if ctx.period is not None and ctx.request.get("format") != "csv":
        _summarise(conn, ctx, doc, DailySeries(conn, ctx))
    return doc


def daily(conn: Connection, ctx: Context) -> Document:
    """`inbound-daily`: each local day of the period with the messages (replies)
    received, in all and per receiving number."""
    columns = [Column("date", "date"), Column("replies", "int")]
    series = DailySeries(conn, ctx)
    columns += [Column(number, "int") for number in series.numbers]
    rows = [[day, total, *(values[i] for values in series.numbers.values())]
            for i, (day, total) in enumerate(zip(series.days, series.totals, strict=True))]
    totals = {"replies": sum(series.totals),
              **{number: sum(values) for number, values in series.numbers.items()}}
    doc = Document("inbound-daily", "Inbound messages per day", ctx.account, ctx.period,
                   ctx.tz.key, columns, rows, len(rows), totals, shows_reasons=False)
    _summarise(conn, ctx, doc, series)
    return doc


def span(conn: Connection, account_id: int, tz: Any, where: iq.InboundFilter) -> Period:
    """The period an inbound report covers for `where` (the plain CSV endpoints'
    filter): its since and until, an open end closed at the first or last message
    received; empty (start == end) when an end is open and no message matches."""
    first, last = q.inbound_bounds(conn, iq.inbound_conditions(account_id, where))
    # Whole seconds around the first and the last, so no rounding can leave them out.
    start = where.since if where.since is not None else \
        math.floor(iq.timestamp(first)) if first is not None else None
    end = where.until if where.until is not None else \
        math.floor(iq.timestamp(last)) + 1 if last is not None else None
    if start is None or end is None:
        start = end = next((m for m in (start, end) if m is not None), 0.0)
    return Period(_local(min(start, end), tz), _local(end, tz), tz)


def _local(moment: float, tz: Any) -> datetime:
    return datetime.fromtimestamp(moment, tz)


# Polls ------------------------------------------------------------------------------------

def poll_estimate(conn: Connection, account_id: int, request: dict[str, Any],
                  period: Period | None) -> int:
    """The poll's votes (in the period): what its counts read."""
    count, _first, _last = q.poll_span(conn, request["poll"], _vote_ids(period))
    return int(count)


def _vote_ids(period: Period | None) -> tuple[str, str] | None:
    """Votes of a period, as an id range (vote ids are time-ordered)."""
    if period is None:
        return None
    return bound_for_time(period.start_ts), bound_for_time(period.end_ts)


def tally_rows(tally: dict[str, Any]) -> list[list[Any]]:
    """A poll's tally as rows of (kind, name, votes, percent): each option with its
    share of the accepted votes, each outcome with its share of all, the total.
    Also what GET /v1/polls/{id}/stats.csv answers."""
    rows = [["option", o["keyword"], o["votes"], o["percent"]] for o in tally["options"]]
    rows += [["outcome", o["outcome"], o["votes"], o["percent"]] for o in tally["outcomes"]]
    rows.append(["total", "", tally["total"], 100.0 if tally["total"] else 0.0])
    return rows


POLL_COLUMNS = [Column("kind"), Column("name"), Column("votes", "int"),
                Column("percent", "percent")]


def poll(conn: Connection, ctx: Context) -> Document:
    """`poll`: the tally (as GET /v1/polls/{id}/stats counts it), then the accepted
    votes of each local day from the first vote to the last (within the period,
    when one is given)."""
    found = ctx.poll
    if found is None:
        raise ApiError(404, "no such poll", "poll")
    ids = _vote_ids(ctx.period)
    tally = iq.poll_tally(conn, found, ids)
    days = _vote_days(conn, ctx, found["id"], ids)
    keywords = [option["keyword"] for option in found["options"]]
    per_day = {keyword: [0] * len(days) for keyword in keywords}
    per_day[REFUSED] = [0] * len(days)
    bounds = [(bound_for_time(low), bound_for_time(high)) for _day, low, high in days]
    for index, outcome, option, n in q.poll_daily(conn, found["id"], bounds):
        if outcome == "accepted" and option is not None and 1 <= option <= len(keywords):
            per_day[keywords[option - 1]][index] += n
        elif outcome != "accepted":
            per_day[REFUSED][index] += n
    accepted = tally["accepted"]
    rows = tally_rows(tally)
    day_rows = []
    for index, (day, _low, _high) in enumerate(days):
        counted = sum(per_day[keyword][index] for keyword in keywords)
        rows.append(["day", day.isoformat(), counted,
                     round(100.0 * counted / accepted, 2) if accepted else 0.0])
        day_rows.append({"date": day.isoformat(), "accepted": counted,
                         "refused": per_day[REFUSED][index],
                         "options": {keyword: per_day[keyword][index] for keyword in keywords}})
    title = f"Poll {found['name']}"
    doc = Document("poll", title, ctx.account, ctx.period, ctx.tz.key, list(POLL_COLUMNS),
                   rows, len(rows), {"accepted": accepted, "total": tally["total"],
                                     **tally["refused"]})
    doc.facts = _poll_facts(ctx, found, tally)
    doc.chart = ("pie", {o["keyword"]: o["votes"] for o in tally["options"]})
    doc.chart_title = "Accepted votes by option"
    if days:
        doc.more_charts.append(("Votes per day", (
            "stacked", ([f"{day:%d.%m}" for day, _low, _high in days], per_day))))
    doc.shows_reasons = False
    doc.extra = {"poll": {key: found[key] for key in ("id", "name", "number", "prefix",
                                                      "starts_at", "ends_at")},
                 "accepted": accepted, "refused": tally["refused"], "total": tally["total"],
                 "options": tally["options"], "days": day_rows}
    return doc


def _vote_days(conn: Connection, ctx: Context, poll_id: str,
               ids: tuple[str, str] | None) -> list[Any]:
    """The local days from the first vote to the last, within the period if any."""
    count, first, last = q.poll_span(conn, poll_id, ids)
    if not count:
        return []
    tz = ctx.tz
    start = midnight(_local(iq.timestamp(first), tz).date(), tz)
    end = midnight(_local(iq.timestamp(last), tz).date() + timedelta(days=1), tz)
    if ctx.period is not None:
        start, end = max(start, ctx.period.start), min(end, ctx.period.end)
    return Period(start, end, tz).days()


def _poll_facts(ctx: Context, found: dict[str, Any],
                tally: dict[str, Any]) -> list[tuple[str, str]]:
    local = LocalTime(ctx.tz)

    def when(iso: str) -> str:
        moment = local(datetime.fromisoformat(iso.removesuffix("Z")))
        return f"{moment:%Y-%m-%d %H:%M}" if moment else ""

    facts = [("Account", ctx.account), ("Poll", found["name"]),
             ("Number", found["number"] + (f" (prefix {found['prefix']})"
                                           if found.get("prefix") else "")),
             ("Voting", f"{when(found['starts_at'])} to {when(found['ends_at'])}"),
             ("Time zone", ctx.tz.key)]
    if ctx.period is not None:
        facts.append(("Period", ctx.period.label()))
    total, accepted = tally["total"], tally["accepted"]
    facts += [("Votes received", f"{total:,}"), ("Accepted", f"{accepted:,}"),
              ("Refused", f"{total - accepted:,}")]
    if accepted:
        best = max(tally["options"], key=lambda o: o["votes"])
        facts.append(("Leading option", f"{best['keyword']}: {best['votes']:,} "
                                        f"({best['percent']:.1f}%)"))
    return facts
