"""Every report type in every format, on SQLite and PostgreSQL, read back with a reader
(csv, json, openpyxl, pypdf, python-docx, ElementTree) and compared with what was sent,
including the status mix from the fake SMSC's receipt prefixes; the history fields
and filters; GET /v1/statuses; number groups; campaigns; isolation between accounts."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import datetime, time
from typing import Any

import pytest
from docx import Document as WordDocument
from openpyxl import load_workbook
from pypdf import PdfReader

from smppd.api.http import token_label
from smppd.reports.catalog import TYPES
from tests.reports.reports_world import (
    BALANCE,
    BASE_URL,
    DEDICATED,
    MO,
    OUTCOMES,
    SHORT,
    World,
    download,
)
from tests.support.running import TOKEN_A

COMBINATIONS = [(kind, fmt) for kind, report_type in TYPES.items()
                for fmt in report_type.formats]


def _body(kind: str, fmt: str, world: World) -> dict[str, Any]:
    body: dict[str, Any] = {"type": kind, "format": fmt, "name": f"{kind} {fmt}"}
    if kind == "job":
        body["job"] = world.job_id
    elif kind == "poll":
        body["poll"] = world.poll_id
    else:
        body["period"] = "today"
    return body


def _table(fmt: str, data: bytes) -> list[dict[str, Any]]:
    """The rows of a tabular file as dicts (header names as keys)."""
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    if fmt == "json":
        return json.loads(data)["rows"]
    if fmt == "xlsx":
        sheet = load_workbook(io.BytesIO(data), read_only=True)["Report"]
        rows = list(sheet.iter_rows(values_only=True))
        return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    raise AssertionError(fmt)


def _pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def _docx_text(data: bytes) -> str:
    word = WordDocument(io.BytesIO(data))
    cells = [cell.text for table in word.tables for row in table.rows for cell in row.cells]
    return "\n".join([p.text for p in word.paragraphs] + cells)


def _num(value: Any) -> int:
    return int(value) if value not in (None, "") else 0


@pytest.mark.parametrize(("kind", "fmt"), COMBINATIONS)
def test_every_type_and_format_counts_what_was_sent(world: World, kind: str,
                                                    fmt: str) -> None:
    report = world.report(**_body(kind, fmt, world))
    assert report["state"] == "ready", report  # small: made while the client waited
    assert report["file_name"].startswith(f"{kind}-acme-")
    assert report["file_name"].endswith(f".{fmt}")
    data = world.file(report)
    expected, total = world.expected, world.total
    if fmt in ("csv", "json", "xlsx"):
        rows = _table(fmt, data)
        if kind == "daily":
            assert sum(_num(r["messages"]) for r in rows) == total
            for status, count in expected.items():
                assert sum(_num(r[status]) for r in rows) == count, status
        elif kind == "detailed":
            assert len(rows) == total == report["rows"]
            assert Counter(r["status"] for r in rows) == expected
            assert {r["channel"] for r in rows} == {"api", "job"}
            assert Counter(r["error"] for r in rows if r["status"] == "rejected") == \
                {"ESME_RINVDSTADR": 2}
            created = rows[0]["created"]
            if fmt == "xlsx":
                assert isinstance(created, datetime)  # a typed cell
            else:
                assert created.endswith(("+01:00", "+02:00"))  # Warsaw time, offset stated
        elif kind == "jobs":
            assert len(rows) == 1
            row = rows[0]
            assert (row["name"], _num(row["recipients"]), _num(row["sent"]),
                    _num(row["delivered"]), _num(row["undelivered"])) == \
                ("Spring sale", 6, 6, 4, 2)
        elif kind == "job":
            groups = {r["group"]: _num(r["messages"]) for r in rows}
            assert groups == {"delivered": 4, "001": 2}  # undelivered with the SMSC's err:001
            assert {r["status"] for r in rows} == {"delivered", "undelivered"}
        elif kind == "country":
            assert [(r["country"], _num(r["messages"]), _num(r["delivered"])) for r in rows] \
                == [("PL", total, expected["delivered"])]
        elif kind == "inbound":
            assert len(rows) == len(MO) == report["rows"]
            assert Counter(r["number"] for r in rows) == {SHORT: 3, DEDICATED: 5}
            assert [r["text"] for r in rows] == [text for _s, _n, text in MO]
            if fmt == "xlsx":  # typed cells
                assert isinstance(rows[0]["date"], datetime)
                assert isinstance(rows[0]["time"], time)
            else:
                assert len(rows[0]["date"]) == 10 and len(rows[0]["time"]) == 8
        elif kind == "inbound-daily":
            assert sum(_num(r["replies"]) for r in rows) == len(MO)
            assert (sum(_num(r[SHORT]) for r in rows), sum(_num(r[DEDICATED]) for r in rows)) \
                == (3, 5)
        elif kind == "poll":
            found = {(r["kind"], r["name"]): (_num(r["votes"]), float(r["percent"]))
                     for r in rows}
            assert (found[("option", "A")], found[("option", "B")]) == ((2, 66.67), (1, 33.33))
            assert {name: votes for (k, name), (votes, _p) in found.items()
                    if k == "outcome"} == OUTCOMES
            assert found[("total", "")] == (5, 100.0)
            assert sum(votes for (k, _n), (votes, _p) in found.items() if k == "day") == 3
        elif kind == "customer":
            by_customer = Counter()
            for r in rows:
                by_customer[r["customer"]] += _num(r["messages"])
            assert by_customer == world.partners
            # Billing reconciles with the balance: what messages took, net of refunds.
            assert sum(_num(r["net_points"]) for r in rows) == BALANCE - world.balance()
            assert sum(_num(r["refunded"]) for r in rows) == 2  # the two refused
    elif fmt == "pdf":
        text = _pdf_text(data)
        assert "acme" in text and "Europe/Warsaw" in text
        assert "page 1 of" in text
        if kind == "job":
            assert "Spring sale" in text and "Delivered" in text and "4 (66.7%)" in text
            assert "1 of 6 messages with links" in text and "16.7%" in text
        elif kind == "jobs":
            assert "Spring sale" in text and "Click-through rate" in text and "16.7%" in text
        elif kind in ("inbound", "inbound-daily"):
            assert "Messages received" in text and f"{len(MO)}" in text
            assert "Inbound messages per day" in text and "non-delivery" not in text
            if kind == "inbound":
                assert "hello one" in text  # the messages, listed
        elif kind == "poll":
            assert "Poll Best flavour" in text and "Leading option" in text
            assert "A: 2 (66.7%)" in text and "Votes per day" in text
        else:
            assert f"Messages {total}" in text.replace(",", "") or str(total) in text
            assert "ESME_RINVDSTADR" in text  # a top non-delivery reason
    elif fmt == "docx":
        text = _docx_text(data)
        assert "acme" in text and "Europe/Warsaw" in text
        if kind in ("jobs", "job"):
            assert "Spring sale" in text
        if kind in ("daily", "country", "customer"):
            assert str(total) in text
        if kind in ("inbound", "inbound-daily"):
            assert "Messages received" in text and str(len(MO)) in text
        if kind == "poll":
            assert "Best flavour" in text and "unknown_option" in text
    elif fmt == "xml":
        root = ET.fromstring(data)
        groups = {g.get("key"): [n.text for n in g.findall("number")]
                  for g in root.findall("group")}
        assert sorted(groups["delivered"]) == [f"+48500300{i:03d}" for i in range(4)]
        assert sorted(groups["undelivered"]) == sorted(groups["001"]) == \
            [f"+48601300{i:03d}" for i in range(2)]


def test_detailed_options_and_empty_period(world: World) -> None:
    report = world.report(type="detailed", format="csv", period="today",
                          include_jobs=False, include_content=True, include_params=True,
                          delimiter=";")
    rows = list(csv.DictReader(io.StringIO(world.file(report).decode()), delimiter=";"))
    assert len(rows) == len(world.api_ids)
    long = next(r for r in rows if r["param.order"])
    assert (long["param.order"], long["param.shop"]) == ("7", "north")
    assert long["content"] == World.LONG_TEXT and long["parts"] == "2"
    empty = world.report(type="daily", format="json", since="2020-01-01", until="2020-01-03")
    body = json.loads(world.file(empty))
    assert [r["date"] for r in body["rows"]] == ["2020-01-01", "2020-01-02", "2020-01-03"]
    assert body["totals"]["messages"] == 0


def test_history_fields_and_filters(world: World) -> None:
    code, page = world.client.request("GET", "/v1/messages?channel=job&limit=100")
    assert code == 200 and len(page["messages"]) == 6
    item = page["messages"][0]
    assert (item["channel"], item["partner"]) == ("job", "shop-2")
    assert item["sent_by"] == token_label(TOKEN_A)  # the token's fingerprint, not the token
    assert item["text"].startswith("Hi " + BASE_URL)  # its link shortened
    assert item["status_description"]
    code, page = world.client.request("GET", "/v1/messages?ref_id=r0")
    assert [m["ref_id"] for m in page["messages"]] == ["r0"]
    code, page = world.client.request("GET", "/v1/messages?partner=shop-1&limit=100")
    assert len(page["messages"]) == world.partners["shop-1"]
    refused = world.client.message(world.api_ids[-2])  # a +4879 number: refused, refunded
    assert refused["status"] == "rejected" and refused["refunded"] == refused["points"] == 1
    assert "destination number is invalid" in refused["error_description"]
    assert refused["channel"] == "api" and refused["sent_by"] == token_label(TOKEN_A)
    for bad in ("channel=fax", "partner=" + "x" * 65):
        code, body = world.client.request("GET", f"/v1/messages?{bad}")
        assert code == 400 and body["field"] == bad.split("=")[0]
    code, body = world.client.send(partner="x" * 65)
    assert code == 400 and body["field"] == "partner"


def test_statuses_explain_every_status_and_the_errors_seen(world: World) -> None:
    code, body = world.client.request("GET", "/v1/statuses")
    assert code == 200
    assert {s["status"] for s in body["statuses"]} >= {"delivered", "undelivered", "cancelled"}
    assert all(s["description"] for s in body["statuses"])
    errors = {e["code"]: e for e in body["errors"]}
    assert set(errors) == {"ESME_RINVDSTADR", "001"}
    assert errors["ESME_RINVDSTADR"]["kind"] == "command_status"
    assert "invalid" in errors["ESME_RINVDSTADR"]["description"]
    assert errors["001"]["kind"] == "receipt" and "001" in errors["001"]["description"]
    code, other = world.other.request("GET", "/v1/statuses")
    assert code == 200 and other["errors"] == []  # another account saw none


def test_job_number_groups_download(world: World) -> None:
    base = f"/v1/jobs/{world.job_id}/numbers"
    code, headers, data = download(world.client, f"{base}?group=undelivered&format=csv")
    assert code == 200 and headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert sorted(r["number"] for r in rows) == [f"+48601300{i:03d}" for i in range(2)]
    code, _, data = download(world.client, f"{base}?group=001&format=xml")
    assert code == 200
    assert len(ET.fromstring(data).findall("group/number")) == 2
    code, _, data = download(world.client, f"{base}?group=delivered&format=pdf")
    assert code == 400 and json.loads(data)["field"] == "format"
    code, _, _ = download(world.other, f"{base}?group=delivered&format=csv")
    assert code == 404


def test_campaign_groups_jobs_and_its_report_aggregates_them(world: World) -> None:
    client = world.client
    code, second = client.request("POST", "/v1/jobs", {
        "name": "Summer sale", "from": "Acme", "text": "Hello",
        "recipients": ["+48500400001", "+48601400001"], "description": "summer promo"})
    assert code == 201, second
    code, campaign = client.request("POST", "/v1/campaigns", {
        "name": "2026 promotions", "description": "all seasonal sales",
        "jobs": [world.job_id]})
    assert code == 201, campaign
    code, campaign = client.request("POST", f"/v1/campaigns/{campaign['id']}/jobs",
                                    {"jobs": [second["id"]]})
    assert code == 200 and len(campaign["jobs"]) == 2
    code, found = client.request("GET", "/v1/jobs?description=summer")
    assert [j["name"] for j in found["jobs"]] == ["Summer sale"]
    code, found = client.request("GET", "/v1/jobs?name=SALE")
    assert {j["name"] for j in found["jobs"]} == {"Spring sale", "Summer sale"}
    code, found = client.request("GET", f"/v1/jobs?campaign={campaign['id']}&since=2020-01-01")
    assert len(found["jobs"]) == 2
    code, found = client.request("GET", "/v1/jobs?until=2020-01-01")
    assert found["jobs"] == []
    code, listed = client.request("GET", "/v1/campaigns?name=promo")
    assert [c["id"] for c in listed["campaigns"]] == [campaign["id"]]

    def final() -> bool:
        _, body = client.request("GET", f"/v1/jobs/{second['id']}")
        return body["counts"].get("queued", 0) == 0 and body["state"] == "completed"

    from tests.reports.reports_world import until

    until(final, "second job final")
    report = world.report(type="job", format="json", campaign=campaign["id"])
    body = json.loads(world.file(report))
    assert body["counts"] == {"delivered": 5, "undelivered": 3}
    # Clicks add up over the campaign's jobs (only the spring one has links).
    assert body["links"] == {"messages_with_links": 6, "clicked": 1, "clicks": 3,
                             "ctr": 0.1667}
    jobs = world.report(type="jobs", format="csv", campaign=campaign["id"])
    rows = list(csv.DictReader(io.StringIO(world.file(jobs).decode())))
    assert sorted(r["name"] for r in rows) == ["Spring sale", "Summer sale"]
    code, campaign = client.request("DELETE", f"/v1/campaigns/{campaign['id']}/jobs/"
                                              f"{second['id']}")
    assert code == 200 and [j["id"] for j in campaign["jobs"]] == [world.job_id]
    # Another account sees none of it.
    other = world.other
    assert other.request("GET", f"/v1/campaigns/{campaign['id']}")[0] == 404
    assert other.request("POST", f"/v1/campaigns/{campaign['id']}/jobs",
                         {"jobs": [world.job_id]})[0] == 404
    code, body = other.request("POST", "/v1/campaigns", {"name": "steal",
                                                         "jobs": [world.job_id]})
    assert code == 404 and body["field"] == "jobs"
    assert other.request("GET", "/v1/jobs")[1]["jobs"] == []
    code, _ = client.request("DELETE", f"/v1/campaigns/{campaign['id']}")
    assert code == 200


def test_reports_are_per_account(world: World) -> None:
    report = world.report(type="daily", format="csv", period="today")
    other = world.other
    for method, path in (("GET", f"/v1/reports/{report['id']}"),
                         ("GET", f"/v1/reports/{report['id']}/file"),
                         ("DELETE", f"/v1/reports/{report['id']}")):
        code, body = other.request(method, path)
        assert code == 404, (method, path, body)
    assert report["id"] not in [r["id"] for r in other.request("GET", "/v1/reports")[1][
        "reports"]]
    code, body = other.request("POST", "/v1/reports", {"type": "job", "format": "csv",
                                                       "job": world.job_id})
    assert code == 404 and body["field"] == "job"
    code, schedule = world.client.request("POST", "/v1/report-schedules",
                                          {"every": "week", "type": "daily", "format": "pdf"})
    assert code == 201 and schedule["next_run"]
    assert other.request("DELETE", f"/v1/report-schedules/{schedule['id']}")[0] == 404
    assert other.request("GET", "/v1/report-schedules")[1]["schedules"] == []
    assert world.client.request("DELETE", f"/v1/report-schedules/{schedule['id']}")[0] == 200
    # The owner can delete it; then it is gone for them too.
    assert world.client.request("DELETE", f"/v1/reports/{report['id']}")[0] == 200
    assert world.client.request("GET", f"/v1/reports/{report['id']}/file")[0] == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"type": "weekly", "format": "csv", "period": "today"}, "type"),
    ({"type": "poll", "format": "csv"}, "poll"),
    ({"type": "inbound", "format": "csv", "period": "today", "number": "x"}, "number"),
    ({"type": "daily", "format": "xml", "period": "today"}, "format"),
    ({"type": "daily", "format": "csv"}, "period"),
    ({"type": "daily", "format": "csv", "period": "fortnight"}, "period"),
    ({"type": "daily", "format": "csv", "since": "yesterday", "until": "2026-01-01"}, "since"),
    ({"type": "job", "format": "csv"}, "job"),
    ({"type": "daily", "format": "csv", "period": "today", "email": ["not-an-address"]},
     "email"),
    ({"type": "daily", "format": "xlsx", "period": "today", "delimiter": ";"}, "delimiter"),
    ({"type": "daily", "format": "csv", "period": "today", "colour": "red"}, "colour"),
])
def test_bad_report_requests_name_the_field(world: World, body: dict[str, Any],
                                            field: str) -> None:
    code, answer = world.client.request("POST", "/v1/reports", body)
    assert code == 400 and answer["field"] == field, answer
