"""SMPP 3.4 time format (7.1.1) for schedule_delivery_time and validity_period.

Absolute: YYMMDDhhmmsstnnp, where t is tenths of a second, nn the offset from UTC in
quarter hours and p '+' or '-'. Relative: YYMMDDhhmmss000R. Carriers' own examples
disagree (one takes minutes, another a full string), so smppd always writes the
full 16-character form.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone


def absolute(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("absolute SMPP times need a timezone-aware datetime")
    offset = moment.utcoffset() or timedelta(0)
    quarters, remainder = divmod(abs(int(offset.total_seconds())), 900)
    if remainder:
        raise ValueError(f"UTC offset {offset} is not a whole number of quarter hours")
    sign = "-" if offset < timedelta(0) else "+"
    tenths = moment.microsecond // 100_000
    return f"{moment:%y%m%d%H%M%S}{tenths}{quarters:02d}{sign}"


def relative(period: timedelta) -> str:
    seconds = int(period.total_seconds())
    if seconds < 0:
        raise ValueError("a relative SMPP time cannot be negative")
    days, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    years, days = divmod(days, 365)
    if years > 99:
        raise ValueError(f"relative period {period} is longer than 99 years")
    months, days = divmod(days, 30) if days > 99 else (0, days)  # DD has two digits
    return f"{years:02d}{months:02d}{days:02d}{hours:02d}{minutes:02d}{seconds:02d}000R"


def parse(value: str, now: datetime | None = None) -> datetime:
    """An absolute (aware) datetime from either form; relative ones count from `now`."""
    if len(value) != 16 or not value[:15].isdigit() or value[15] not in "+-R":
        raise ValueError(f"{value!r} is not an SMPP time (YYMMDDhhmmsstnnp)")
    yy, mo, dd, hh, mi, ss = (int(value[i:i + 2]) for i in range(0, 12, 2))
    if value[15] == "R":
        base = now or datetime.now(UTC)
        return base + timedelta(days=yy * 365 + mo * 30 + dd, hours=hh, minutes=mi, seconds=ss)
    offset = timedelta(minutes=15 * int(value[13:15]))
    zone = timezone(-offset if value[15] == "-" else offset)
    try:
        return datetime(2000 + yy, mo, dd, hh, mi, ss, int(value[12]) * 100_000, tzinfo=zone)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid SMPP time: {exc}") from None
