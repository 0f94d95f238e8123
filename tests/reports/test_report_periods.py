"""Report periods in account time zones (DST, half- and quarter-hour zones, Monday
weeks, calendar months), schedule boundaries, request checks naming the field, and
error explanations."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as s

from smppd.api.validation import ApiError
from smppd.explain import explain_error
from smppd.reports import periods, request
from smppd.store.rollups import SLOT_SECONDS

WARSAW = periods.zone("Europe/Warsaw")


def _utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def test_named_periods_in_warsaw() -> None:
    now = _utc(2026, 3, 31, 22, 30)  # Wednesday 1 April, 00:30 in Warsaw (summer time)
    today = periods.named("today", WARSAW, now)
    assert (today.start_utc, today.end_utc) == (datetime(2026, 3, 31, 22), datetime(2026, 4, 1,
                                                                                    22))
    last_month = periods.named("last-month", WARSAW, now)
    assert last_month.start_utc == datetime(2026, 2, 28, 23)  # 1 March, winter time
    assert last_month.end_utc == datetime(2026, 3, 31, 22)  # 1 April, summer time
    assert last_month.label() == "2026-03-01 to 2026-03-31"
    week = periods.named("last-week", WARSAW, now)
    assert (week.start.date(), week.end.date()) == (date(2026, 3, 23), date(2026, 3, 30))
    assert week.start.weekday() == 0
    seven = periods.named("last-7-days", WARSAW, now)
    assert (seven.start.date(), seven.end.date()) == (date(2026, 3, 26), date(2026, 4, 2))
    year = periods.named("last-year", WARSAW, now)
    assert year.label() == "2025-01-01 to 2025-12-31"
    days = last_month.days()
    assert len(days) == 31
    assert [high - low for _d, low, high in days if high - low != 86400] == [23 * 3600]


def test_since_until_and_their_mistakes() -> None:
    period = periods.between("2026-11-01", "2026-11-30", WARSAW)
    assert period.label() == "2026-11-01 to 2026-11-30"  # a bare until includes its day
    assert period.end_utc == datetime(2026, 11, 30, 23)
    exact = periods.between("2026-11-01T08:00:00Z", "2026-11-01T09:30:00+01:00", WARSAW)
    assert exact.end_ts - exact.start_ts == 30 * 60
    for since, until in (("2026-11-02", "2026-11-01"), ("soon", "2026-11-01")):
        with pytest.raises(periods.PeriodError):
            periods.between(since, until, WARSAW)
    with pytest.raises(periods.PeriodError):
        periods.zone("Mars/Olympus")


def test_a_zone_that_skips_midnight_still_has_its_day() -> None:
    # Asia/Beirut moved its clocks at midnight: 00:00 did not exist that day.
    beirut = periods.zone("Asia/Beirut")
    start = periods.midnight(date(2022, 3, 27), beirut)
    assert start.hour == 1 and start.date() == date(2022, 3, 27)


def test_schedule_boundaries() -> None:
    now = _utc(2026, 3, 28, 9)  # Saturday
    assert periods.boundary_after("day", WARSAW, now).astimezone(UTC) == \
        datetime(2026, 3, 28, 23, tzinfo=UTC)
    monday = periods.boundary_after("week", WARSAW, now)
    assert monday.weekday() == 0 and monday.date() == date(2026, 3, 30)
    first = periods.boundary_after("month", WARSAW, now)
    assert first.date() == date(2026, 4, 1)
    run = periods.ending_at("month", WARSAW, first)
    assert (run.start.date(), run.end.date()) == (date(2026, 3, 1), date(2026, 4, 1))
    exactly = periods.boundary_after("day", WARSAW, monday.timestamp())
    assert exactly > monday  # strictly after


ZONES = ["UTC", "Europe/Warsaw", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Adelaide",
         "America/St_Johns", "Pacific/Chatham", "America/Santiago", "Asia/Tehran"]


@settings(max_examples=200, deadline=None)
@given(zone=s.sampled_from(ZONES),
       moment=s.floats(min_value=_utc(2015, 1, 1), max_value=_utc(2035, 1, 1)),
       name=s.sampled_from(periods.NAMES))
def test_days_tile_every_period_and_fall_on_quarter_hours(zone: str, moment: float,
                                                          name: str) -> None:
    """Every local day boundary is a whole quarter hour of UTC (so the rollups cut days
    exactly) and the days of a period cover it without gap or overlap."""
    tz = periods.zone(zone)
    period = periods.named(name, tz, moment)
    days = period.days()
    assert days[0][1] == period.start_ts and days[-1][2] == period.end_ts
    for (_a, _low, high), (_b, next_low, _h) in pairwise(days):
        assert high == next_low
    for _day, low, high in days:
        assert low % SLOT_SECONDS == 0 and high % SLOT_SECONDS == 0
        assert 22 * 3600 <= high - low <= 26 * 3600


@pytest.mark.parametrize(("body", "field"), [
    ({}, "type"),
    ({"type": "daily", "format": "pdf", "period": "today", "include_jobs": "no"},
     "include_jobs"),
    ({"type": "daily", "format": "csv", "period": "today", "name": ""}, "name"),
    ({"type": "detailed", "format": "docx", "period": "today"}, "format"),
    ({"type": "daily", "format": "csv", "period": "today", "since": "2026-01-01"}, "period"),
    ({"type": "job", "format": "csv", "job": "123"}, "job"),
    ({"type": "job", "format": "csv", "job": "a" * 32, "campaign": "b" * 32}, "campaign"),
    ({"type": "daily", "format": "csv", "period": "today", "email": []}, "email"),
    ({"type": "daily", "format": "csv", "period": "today", "email": ["a@b"]}, "email"),
    ({"type": "daily", "format": "csv", "period": "today", "delimiter": "::"}, "delimiter"),
    ({"type": "poll", "format": "csv", "period": "today"}, "poll"),
    ({"type": "poll", "format": "csv", "poll": "42"}, "poll"),
    ({"type": "poll", "format": "xml", "poll": "a" * 32}, "format"),
    ({"type": "poll", "format": "csv", "poll": "a" * 32, "job": "b" * 32}, "job"),
    ({"type": "daily", "format": "csv", "period": "today", "poll": "a" * 32}, "poll"),
    ({"type": "inbound", "format": "csv"}, "period"),
    ({"type": "inbound", "format": "csv", "period": "today", "campaign": "b" * 32},
     "campaign"),
    ({"type": "inbound", "format": "csv", "period": "today", "number": "+48-500"}, "number"),
    ({"type": "inbound", "format": "csv", "period": "today", "sender": ""}, "sender"),
    ({"type": "inbound-daily", "format": "xml", "period": "today"}, "format"),
    ({"type": "daily", "format": "csv", "period": "today", "number": "+48500600700"},
     "number"),
    ({"type": "detailed", "format": "csv", "period": "today", "include_contacts": "yes"},
     "include_contacts"),
    ({"type": "inbound", "format": "csv", "period": "today", "include_contacts": 1},
     "include_contacts"),
    ({"type": "country", "format": "csv", "period": "today", "include_contacts": True},
     "include_contacts"),
    # daily counts the account's rollups: no job; customer is per month: a job as well
    # as a period, not instead of one.
    ({"type": "daily", "format": "csv", "job": "a" * 32}, "job"),
    ({"type": "customer", "format": "csv", "campaign": "a" * 32}, "period"),
])
def test_report_requests_name_the_bad_field(body: dict, field: str) -> None:
    with pytest.raises(ApiError) as caught:
        request.report(body)
    assert caught.value.status == 400 and caught.value.field == field


def test_schedule_and_campaign_requests() -> None:
    found = request.schedule({"every": "week", "type": "daily", "format": "pdf",
                              "email": "ops@example.com"})
    assert found["every"] == "week" and found["email"] == ["ops@example.com"]
    assert "async" not in found
    for body, field in (({"type": "daily", "format": "csv"}, "every"),
                        ({"every": "day", "type": "daily", "format": "csv",
                          "period": "today"}, "period")):
        with pytest.raises(ApiError) as caught:
            request.schedule(body)
        assert caught.value.field == field
    with pytest.raises(ApiError) as caught:
        request.campaign({"name": "x", "jobs": ["not-an-id"]})
    assert caught.value.field == "jobs"


@given(s.dictionaries(s.text(max_size=12), s.one_of(s.none(), s.booleans(), s.integers(),
                                                    s.text(max_size=20),
                                                    s.lists(s.text(max_size=5), max_size=3)),
                      max_size=6))
def test_any_report_body_is_valid_or_refused_naming_a_field(body: dict) -> None:
    try:
        request.report(body)
    except ApiError as exc:
        assert exc.status == 400 and exc.field is not None


def test_error_explanations() -> None:
    assert explain_error("ESME_RINVDSTADR") == (
        "command_status", "The SMSC answered ESME_RINVDSTADR: the destination number is "
                          "invalid.")
    assert explain_error("0x00000401")[0] == "command_status"
    assert "GSM network error 27" in explain_error("3:27")[1]
    assert explain_error("001")[0] == "receipt" and "001" in explain_error("001")[1]
    assert explain_error("no response within 30 s")[0] == "smppd"


def test_label_of_a_partial_day() -> None:
    start = datetime(2026, 11, 1, 8, 0, tzinfo=WARSAW)
    period = periods.Period(start, start + timedelta(hours=2), WARSAW)
    assert period.label() == "2026-11-01 08:00 to 2026-11-01 10:00"
