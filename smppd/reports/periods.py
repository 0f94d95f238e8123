"""Report periods, cut in the account's time zone (zoneinfo, IANA names).

A day is local midnight to local midnight, so it is 23 or 25 hours long on the days
the clocks change; weeks start on Monday; `last-*` periods are whole calendar
units before the current one. Internally a period is two instants (UTC), which is
what the store compares with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

NAMES = ("today", "yesterday", "last-7-days", "last-week", "last-month", "last-year")
EVERY = ("day", "week", "month")


class PeriodError(ValueError):
    pass


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PeriodError(f"unknown time zone {name!r} (expected an IANA name such as "
                          "Europe/Warsaw)") from None


def midnight(day: date, tz: ZoneInfo) -> datetime:
    """The instant the local day starts. Where midnight does not exist (a zone that
    springs forward at 00:00) the day starts at the first local time that does."""
    # In a gap, zoneinfo reads 00:00 with the offset before the change, which is the
    # very instant of the change: the round trip through UTC names it correctly.
    return datetime.combine(day, time(), tz).astimezone(UTC).astimezone(tz)


@dataclass(frozen=True)
class Period:
    start: datetime  # aware, in `tz`
    end: datetime  # aware, exclusive
    tz: ZoneInfo
    name: str = "custom"

    @property
    def start_ts(self) -> float:
        return self.start.timestamp()

    @property
    def end_ts(self) -> float:
        return self.end.timestamp()

    @property
    def start_utc(self) -> datetime:
        return self.start.astimezone(UTC).replace(tzinfo=None)

    @property
    def end_utc(self) -> datetime:
        return self.end.astimezone(UTC).replace(tzinfo=None)

    @property
    def tz_name(self) -> str:
        return self.tz.key

    def label(self) -> str:
        """As a person reads it: the first and last day (or times when not whole days)."""
        last = self.end - timedelta(microseconds=1)
        if self.start == midnight(self.start.date(), self.tz) and \
                self.end == midnight(self.end.date(), self.tz):
            first, final = self.start.date().isoformat(), last.date().isoformat()
            return first if first == final else f"{first} to {final}"
        return f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M}"

    def slug(self) -> str:
        """For file names: 2026-11-01_2026-11-30."""
        last = self.end - timedelta(microseconds=1)
        return f"{self.start:%Y-%m-%d}_{last:%Y-%m-%d}"

    def days(self) -> list[tuple[date, float, float]]:
        """Each local day the period touches: (date, start, end) as Unix times, clipped
        to the period."""
        found = []
        day = self.start.date()
        while True:
            low = max(midnight(day, self.tz).timestamp(), self.start_ts)
            high = min(midnight(day + timedelta(days=1), self.tz).timestamp(), self.end_ts)
            if low >= self.end_ts:
                break
            if high > low:
                found.append((day, low, high))
            day += timedelta(days=1)
        return found

    def months(self) -> list[tuple[str, float, float]]:
        """Each local calendar month the period touches: ("YYYY-MM", start, end)."""
        found = []
        first = self.start.date().replace(day=1)
        while True:
            following = _add_months(first, 1)
            low = max(midnight(first, self.tz).timestamp(), self.start_ts)
            high = min(midnight(following, self.tz).timestamp(), self.end_ts)
            if low >= self.end_ts:
                break
            if high > low:
                found.append((f"{first:%Y-%m}", low, high))
            first = following
        return found


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def named(name: str, tz: ZoneInfo, now: float) -> Period:
    today = datetime.fromtimestamp(now, tz).date()
    if name == "today":
        start, end = today, today + timedelta(days=1)
    elif name == "yesterday":
        start, end = today - timedelta(days=1), today
    elif name == "last-7-days":  # the last seven days, today included
        start, end = today - timedelta(days=6), today + timedelta(days=1)
    elif name == "last-week":
        monday = today - timedelta(days=today.weekday())
        start, end = monday - timedelta(days=7), monday
    elif name == "last-month":
        end = today.replace(day=1)
        start = _add_months(end, -1)
    elif name == "last-year":
        end = date(today.year, 1, 1)
        start = date(today.year - 1, 1, 1)
    else:
        raise PeriodError(f"expected one of {', '.join(NAMES)}")
    return Period(midnight(start, tz), midnight(end, tz), tz, name)


def parse_moment(value: str, tz: ZoneInfo, end: bool = False) -> datetime:
    """An ISO 8601 date or time. Without an offset it is the account's local time. A
    bare date as `until` includes that whole day."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return midnight(day + timedelta(days=1) if end else day, tz)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise PeriodError(f"expected an ISO 8601 date or time such as 2026-11-01 or "
                          f"2026-11-01T08:00:00+01:00, got {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(tz)


def between(since: str, until: str, tz: ZoneInfo) -> Period:
    start, end = parse_moment(since, tz), parse_moment(until, tz, end=True)
    if end <= start:
        raise PeriodError("`until` must be after `since`")
    return Period(start, end, tz)


# Schedules ---------------------------------------------------------------------------

def boundary_after(every: str, tz: ZoneInfo, after: float) -> datetime:
    """The first local day/week/month boundary strictly after `after` (Unix time)."""
    today = datetime.fromtimestamp(after, tz).date()
    if every == "day":
        candidates = [today, today + timedelta(days=1)]
    elif every == "week":
        monday = today - timedelta(days=today.weekday())
        candidates = [monday, monday + timedelta(days=7)]
    elif every == "month":
        first = today.replace(day=1)
        candidates = [first, _add_months(first, 1)]
    else:
        raise PeriodError(f"expected one of {', '.join(EVERY)}")
    for day in candidates:
        moment = midnight(day, tz)
        if moment.timestamp() > after:
            return moment
    raise AssertionError("unreachable: the second candidate is always later")


def ending_at(every: str, tz: ZoneInfo, boundary: datetime) -> Period:
    """The day/week/month that ends at `boundary` (a run's period)."""
    end_day = boundary.astimezone(tz).date()
    if every == "day":
        start_day = end_day - timedelta(days=1)
        name = "yesterday"
    elif every == "week":
        start_day = end_day - timedelta(days=7)
        name = "last-week"
    else:
        start_day = _add_months(end_day, -1)
        name = "last-month"
    return Period(midnight(start_day, tz), midnight(end_day, tz), tz, name)


def utc_naive(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC).replace(tzinfo=None)
