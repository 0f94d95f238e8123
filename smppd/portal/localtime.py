"""Times on the pages in the account's time zone (its `timezone`, the one its reports
cut days in): a form's date or `datetime-local` value is read as local time and
handed to the API as UTC, and a stored UTC time is shown, or put back into a form,
as local time. The operator's console works in UTC."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, tzinfo

from ..api.validation import ApiError
from ..reports.periods import midnight

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def day_start(value: str, zone: tzinfo) -> str:
    """'2026-11-22' -> the instant that local day starts, as the API's ISO UTC."""
    return _iso_utc(midnight(date.fromisoformat(value), zone))  # type: ignore[arg-type]


def day_end(value: str, zone: tzinfo) -> str:
    """'2026-11-22' -> the last millisecond of that local day, as ISO UTC."""
    following = midnight(date.fromisoformat(value) + timedelta(days=1), zone)  # type: ignore[arg-type]
    return _iso_utc(following - timedelta(milliseconds=1))


def dates_to_times(args: dict[str, str], zone: tzinfo) -> dict[str, str]:
    """`since` and `until` given as bare dates become the whole local days they name;
    anything else is left for the API's check (and its error naming the field)."""
    found = dict(args)
    if _DATE.match(found.get("since", "")):
        found["since"] = day_start(found["since"], zone)
    if _DATE.match(found.get("until", "")):
        found["until"] = day_end(found["until"], zone)
    return found


def from_input(value: str, zone: tzinfo, field: str) -> str:
    """<input type=datetime-local> ('2026-11-22T10:00', local) -> ISO UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"expected a date and time, got {value!r}", field) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return _iso_utc(moment)


def to_input(iso: str | None, zone: tzinfo) -> str:
    """An ISO UTC time -> the local value a datetime-local input shows."""
    if not iso:
        return ""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


def today_start(now: float, zone: tzinfo) -> float:
    """The Unix time the local day containing `now` started."""
    local = datetime.fromtimestamp(now, zone).date()
    return midnight(local, zone).timestamp()  # type: ignore[arg-type]


def zone_name(zone: tzinfo) -> str:
    return getattr(zone, "key", None) or str(zone)
