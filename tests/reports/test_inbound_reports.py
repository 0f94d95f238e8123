"""The inbound, inbound-daily and poll reports, and what the phonebook and short links
add to the reports of sent messages, read back and compared with the history the
world made (reports_world): contacts matched by number, a person's click counted and
a preview robot's not, CTR per job, poll tallies and days, filters, an empty period,
isolation, the queued path (a worker process), and the plain CSV endpoints giving
the rows POST /v1/reports gives. On SQLite and PostgreSQL (the world's two backends)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import load_workbook
from pypdf import PdfReader

from tests.reports.reports_world import (
    DEDICATED,
    MO,
    OUTCOMES,
    SHORT,
    VOTER,
    VOTER2,
    World,
    download,
)


def _json(world: World, **body: Any) -> dict[str, Any]:
    return json.loads(world.file(world.report(format="json", **body)))


def _csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


# Sent messages: phonebook fields and clicks -----------------------------------------------

def test_detailed_report_adds_phonebook_fields_and_clicks(world: World) -> None:
    rows = _json(world, type="detailed", period="today", include_contacts=True)["rows"]
    by_recipient = {row["recipient"]: row for row in rows}
    contact = ("first_name", "last_name", "email", "contact.city", "contact.tier")
    assert tuple(by_recipient["+48500100000"][k] for k in contact) == (
        "Ann", "Nowak", "ann@example.com", "Kraków", None)
    assert tuple(by_recipient["+48500300001"][k] for k in contact) == (
        "Bob", None, None, None, "gold")
    assert {by_recipient["+48500100001"][k] for k in contact} == {None}  # no contact
    clicked = {row["id"]: row["clicked"] for row in rows}
    assert clicked[world.clicked_id] is True  # a phone opened it (twice: one message)
    # The other job messages have a link no person opened (one was fetched by a
    # link-preview robot, which is not a click); API messages have no link at all.
    assert [clicked[m["id"]] for m in world.job_messages[1:]] == [False] * 5
    assert {clicked[message_id] for message_id in world.api_ids} == {None}
    plain = _json(world, type="detailed", period="today")["rows"][0]
    assert "clicked" in plain and "first_name" not in plain


def test_detailed_xlsx_with_content_params_and_contacts(world: World) -> None:
    report = world.report(type="detailed", format="xlsx", period="today",
                          include_contacts=True, include_params=True, include_content=True)
    sheet = load_workbook(io.BytesIO(world.file(report)), read_only=True)["Report"]
    table = list(sheet.iter_rows(values_only=True))
    header = list(table[0])
    assert header[header.index("partner"):] == [
        "partner", "clicked", "content", "param.order", "param.shop", "first_name",
        "last_name", "email", "contact.city", "contact.tier"]
    rows = [dict(zip(header, row, strict=True)) for row in table[1:]]
    long = next(row for row in rows if row["param.order"])
    assert (long["param.shop"], long["content"], long["first_name"]) == \
        ("north", World.LONG_TEXT, None)
    ann = next(row for row in rows if row["recipient"] == "+48500100000")
    assert (ann["first_name"], ann["contact.city"]) == ("Ann", "Kraków")
    assert next(row for row in rows if row["id"] == world.clicked_id)["clicked"] is True


def test_jobs_and_job_reports_count_clicks_and_ctr(world: World) -> None:
    body = _json(world, type="jobs", period="today")
    [row] = body["rows"]
    assert (row["with_links"], row["clicked"], row["ctr_percent"]) == (6, 1, 16.67)
    assert body["links"] == {"messages_with_links": 6, "clicked": 1, "clicks": 3,
                             "ctr": 0.1667}
    assert (body["totals"]["with_links"], body["totals"]["clicked"]) == (6, 1)
    job = _json(world, type="job", job=world.job_id)
    assert job["links"] == body["links"]  # as GET /v1/jobs/{id} answers it
    assert world.client.request("GET", f"/v1/jobs/{world.job_id}")[1]["links"] == job["links"]


# Inbound ------------------------------------------------------------------------------------

def test_inbound_report_rows_in_the_accounts_time_with_the_senders_contacts(
        world: World) -> None:
    rows = _json(world, type="inbound", period="today", include_contacts=True)["rows"]
    assert [(row["sender"], row["number"], row["text"]) for row in rows] == [
        ("+" + sender, number if number == SHORT else "+" + number, text)
        for sender, number, text in MO]
    assert {row["prefix"] for row in rows if row["number"] == DEDICATED} == \
        {"VOTE", "vote", "Vote"}
    assert {(row["first_name"], row["contact.city"]) for row in rows
            if row["sender"] == "+" + VOTER} == {("Vera", "Gdańsk")}
    assert {row["first_name"] for row in rows if row["sender"] != "+" + VOTER} == {None}
    # Date and time are the receipt's, in the account's zone (Europe/Warsaw).
    received = {item["id"]: item["received_at"] for item in world.inbound()}
    for row in rows:
        local = datetime.fromisoformat(received[row["id"]].replace("Z", "+00:00")) \
            .astimezone(ZoneInfo("Europe/Warsaw"))
        assert (row["date"], row["time"]) == (f"{local:%Y-%m-%d}", f"{local:%H:%M:%S}")


def test_inbound_reports_filter_by_number_and_sender(world: World) -> None:
    def count(**body: Any) -> int:
        return len(_json(world, type="inbound", period="today", **body)["rows"])

    assert count(number=DEDICATED) == 5
    assert count(number=SHORT) == 3
    assert count(sender="+" + VOTER) == 4
    assert count(sender=VOTER2, number=SHORT) == 1
    daily = _json(world, type="inbound-daily", period="today", number=DEDICATED)
    assert daily["totals"] == {"replies": 5, DEDICATED: 5}


def test_inbound_daily_per_day_and_number(world: World) -> None:
    body = _json(world, type="inbound-daily", period="last-7-days")
    assert len(body["rows"]) == 7 and body["totals"] == {"replies": 8, DEDICATED: 5, SHORT: 3}
    today = body["rows"][-1]
    assert (today["replies"], today[DEDICATED], today[SHORT]) == (8, 5, 3)
    assert {row["replies"] for row in body["rows"][:-1]} == {0}


def test_an_inbound_report_over_a_period_without_messages_is_empty(world: World) -> None:
    assert _json(world, type="inbound", since="2020-01-01", until="2020-01-02")["rows"] == []
    daily = _json(world, type="inbound-daily", since="2020-01-01", until="2020-01-02")
    assert [row["replies"] for row in daily["rows"]] == [0, 0]
    report = world.report(type="inbound", format="pdf", since="2020-01-01",
                          until="2020-01-02")
    text = PdfReader(io.BytesIO(world.file(report))).pages[0].extract_text()
    assert "No messages in this period." in text


def test_plain_csv_endpoints_give_the_reports_rows(world: World) -> None:
    """GET /v1/inbound/reports/detailed and /daily are the inbound and inbound-daily
    reports (with the senders' contacts), over all the account's messages."""
    code, headers, data = download(world.client, "/v1/inbound/reports/detailed")
    assert code == 200 and headers["content-type"].startswith("text/csv")
    assert 'filename="inbound-detailed.csv"' in headers["content-disposition"]
    report = world.report(type="inbound", format="csv", period="today", include_contacts=True)
    assert _csv(data) == _csv(world.file(report))
    code, _, data = download(world.client, f"/v1/inbound/reports/daily?number={DEDICATED}")
    report = world.report(type="inbound-daily", format="csv", period="today",
                          number=DEDICATED)
    assert _csv(data) == _csv(world.file(report))
    code, _, data = download(world.other, "/v1/inbound/reports/detailed")
    assert code == 200 and _csv(data) == []  # another account's messages are not its own


# Polls ----------------------------------------------------------------------------------

def test_poll_report_tallies_as_the_stats_do_and_counts_each_day(world: World) -> None:
    body = _json(world, type="poll", poll=world.poll_id)
    code, stats = world.client.request("GET", f"/v1/polls/{world.poll_id}/stats")
    assert code == 200
    assert (body["accepted"], body["refused"], body["total"], body["options"]) == \
        (stats["accepted"], stats["refused"], stats["total"], stats["options"])
    assert {"accepted": body["accepted"], **body["refused"]} == OUTCOMES
    [day] = body["days"]
    assert (day["accepted"], day["refused"], day["options"]) == (3, 2, {"A": 2, "B": 1})
    assert body["poll"]["name"] == "Best flavour" and body["poll"]["number"] == DEDICATED
    report = world.report(type="poll", format="csv", poll=world.poll_id)
    assert report["file_name"] == "poll-acme-poll-Best_flavour.csv"
    # A period that holds none of its votes: a tally of zeros, no days.
    empty = _json(world, type="poll", poll=world.poll_id, since="2020-01-01",
                  until="2020-01-02")
    assert (empty["total"], empty["days"]) == (0, [])
    assert {option["percent"] for option in empty["options"]} == {0.0}
    # The stats CSV is the report's tally.
    code, stats_csv = world.client.request("GET", f"/v1/polls/{world.poll_id}/stats.csv")
    assert [row for row in _csv(world.file(report)) if row["kind"] != "day"] == \
        _csv(stats_csv.encode())


def test_a_poll_report_is_the_polls_accounts_only(world: World) -> None:
    body = {"type": "poll", "format": "csv", "poll": world.poll_id}
    code, answer = world.other.request("POST", "/v1/reports", body)
    assert code == 404 and answer["field"] == "poll"
    code, answer = world.other.request("POST", "/v1/report-schedules", {**body, "every": "day"})
    assert code == 404 and answer["field"] == "poll"
    code, answer = world.client.request("POST", "/v1/reports", {**body, "poll": "f" * 32})
    assert code == 404 and answer["field"] == "poll"


def test_queued_inbound_and_poll_reports_render_in_the_worker(world: World) -> None:
    for body in ({"type": "poll", "format": "pdf", "poll": world.poll_id},
                 {"type": "inbound", "format": "xlsx", "period": "today",
                  "include_contacts": True}):
        report = world.report(**body, **{"async": True})
        assert report["state"] == "queued"
        ready = world.ready(report["id"])
        data = world.file(ready)
        if body["type"] == "poll":
            text = PdfReader(io.BytesIO(data)).pages[0].extract_text()
            assert "Best flavour" in text and "A: 2 (66.7%)" in text
        else:
            sheet = load_workbook(io.BytesIO(data), read_only=True)["Report"]
            assert ready["rows"] == len(MO) == sheet.max_row - 1
