"""The fast writers of big reports against the plain ones, on awkward values.

The `detailed` CSV has three ways to its text (rows the database joined, text
batches, per-row conversion) and the XLSX rows are written as sheet XML rather than
through xlsxwriter's cell calls. Each must give what the plain way gives: the same
bytes for CSV, the same cells (values, types, formats) for XLSX. The values here are
the ones the fast paths treat specially: delimiters, quotes, line breaks, NUL and
control characters, XML's specials, blanks at the ends, the separator the database
joins with, a literal _x0041_, clicks, and times either side of a DST change.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import xlsxwriter
from openpyxl import load_workbook
from sqlalchemy import Engine

from smppd.reports import periods
from smppd.reports import queries as report_queries
from smppd.reports.documents import Column, Context, Document, LocalTime, detailed
from smppd.reports.render import write_csv
from smppd.reports.xlsx_out import write_xlsx
from smppd.store import database, queries
from smppd.store import schema as t
from tests.store.conftest import POSTGRES_URL, _reset_postgres

WARSAW = ZoneInfo("Europe/Warsaw")
# Warsaw leaves summer time at 2026-10-25 01:00 UTC: messages either side of it.
CHANGE = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)
AWKWARD = ["plain", "a,b", 'say "hi"', "line\nbreak", "cr\rhere", "semi;colon", "pipe|bar",
           "tab\there", "unit\x1fsep", "nul\x00byte", " lead", "trail ", "zażółć 😀",
           "_x0041_", "a<b & c>d", "bell\x07", ""]


def _store(tmp_path: Path, links: bool = True,
           backend: str = "sqlite") -> tuple[Engine, int, list[str]]:
    """A store with a message per awkward value (in sender, error, ref_id and partner
    in turn); with `links`, one with a clicked link, one with an unclicked. PostgreSQL
    text holds no NUL: that value is left out there."""
    if backend == "sqlite":
        engine = database.make_engine(f"sqlite:///{tmp_path / 'writers.db'}")
        awkward = AWKWARD
    else:
        if not POSTGRES_URL:
            pytest.skip("PostgreSQL report tests need SMPPD_TEST_POSTGRES_URL "
                        "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
        engine = database.make_engine(POSTGRES_URL)
        _reset_postgres(engine)
        awkward = [value for value in AWKWARD if "\x00" not in value]
    database.upgrade(engine)
    ids = []
    with engine.begin() as conn:
        account = queries.seed_accounts(conn, [("acme", 1000)])["acme"]
        for index, value in enumerate(awkward * 4):
            moment = CHANGE + timedelta(minutes=7 * index - 130, seconds=index,
                                        microseconds=999_999 * (index % 2))
            message_id = f"{int(moment.timestamp() * 1000):012x}{index:020x}"
            ids.append(message_id)
            field = index // len(awkward)
            stamp = moment.replace(tzinfo=None)
            conn.execute(t.messages.insert().values(
                id=message_id, account_id=account, job_id=None,
                sender=value if field == 0 else "Shop", recipient=f"48500{index:06d}",
                country="PL", text="hello", encoding="gsm", parts=1 + index % 2,
                points=1 + index % 2, refunded=index % 3, concat_ref=0,
                status="undelivered" if field == 1 else "delivered",
                error_code=value if field == 1 else None,
                ref_id=value if field == 2 else None, params=None,
                created_at=stamp, updated_at=stamp, channel="api",
                partner=value if field == 3 else None))
        made = [(ids[1], "mobile"), (ids[2], None)] if links else []
        for number, (message_id, agent) in enumerate(made):
            conn.execute(t.links.insert().values(
                code=f"code{number}", message_id=message_id, account_id=account,
                url="https://example.com/", created_at=datetime(2026, 10, 25)))
            if agent:
                conn.execute(t.link_clicks.insert().values(
                    code=f"code{number}", message_id=message_id, account_id=account,
                    at=datetime(2026, 10, 25), agent=agent, is_repeat=False))
    return engine, account, ids


def _detailed(conn: Any, account: int, request: dict[str, Any]) -> Document:
    period = periods.Period(datetime(2026, 10, 24, tzinfo=WARSAW),
                            datetime(2026, 10, 26, tzinfo=WARSAW), WARSAW)
    ctx = Context(account, "acme", {"type": "detailed", "format": "csv", **request}, period,
                  WARSAW)
    return detailed(conn, ctx)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("links", [True, False])
@pytest.mark.parametrize("delimiter", [",", ";", "|", "\t"])
def test_detailed_csv_is_the_same_by_every_path(tmp_path: Path, delimiter: str, links: bool,
                                                backend: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Without links in the period the database skips the clicks lookups. On SQLite
    the database joins a row with printf(), on PostgreSQL with concat() and to_char():
    the same bytes either way."""
    # Batches of 3: some are plain (joined lines kept), some are not (written again).
    monkeypatch.setattr(report_queries, "STREAM_ROWS", 3)
    engine, account, ids = _store(tmp_path, links, backend)
    made = {}
    with engine.connect() as conn:
        for way in ("joined", "batches", "rows"):
            doc = _detailed(conn, account, {})
            assert doc.csv_chunks is not None and doc.text_batches is not None
            if way != "joined":
                doc.csv_chunks = None
            if way == "rows":
                doc.text_batches = None
            path = tmp_path / f"{way}.csv"
            assert write_csv(doc, path, lambda _n: None, delimiter) == len(ids)
            made[way] = path.read_bytes()
    engine.dispose()
    assert made["joined"] == made["batches"] == made["rows"]
    text = made["rows"].decode("utf-8")
    assert "2026-10-25T02:5" in text and "+02:00" in text and "+01:00" in text  # both sides
    assert '"say ""hi"""' in text and ("nul\x00byte" in text) == (backend == "sqlite")
    clicked = {f"{delimiter}true\r\n" in text, f"{delimiter}false\r\n" in text}
    assert clicked == {links}


def test_detailed_csv_with_content_uses_the_batches(tmp_path: Path) -> None:
    """Optional columns are not joined by the database; the batches carry them."""
    engine, account, _ids = _store(tmp_path)
    with engine.connect() as conn:
        doc = _detailed(conn, account, {"include_content": True})
        assert doc.csv_chunks is None
        fast = tmp_path / "fast.csv"
        write_csv(doc, fast, lambda _n: None)
        doc = _detailed(conn, account, {"include_content": True})
        doc.text_batches = None
        plain = tmp_path / "plain.csv"
        write_csv(doc, plain, lambda _n: None)
    engine.dispose()
    assert fast.read_bytes() == plain.read_bytes()
    assert fast.read_text(encoding="utf-8").splitlines()[0].endswith(",clicked,content")


@pytest.mark.parametrize("zone", ["Europe/Warsaw", "Asia/Kathmandu", "UTC",
                                  "America/St_Johns", "Africa/Monrovia"])
def test_local_time_text_is_isoformat(zone: str) -> None:
    """Per-minute text equals formatting the shifted datetime, including an offset
    with seconds (Monrovia before 1972), which takes the long way."""
    local = LocalTime(ZoneInfo(zone))
    moments = [datetime(2026, 3, 29, 0, 59, 59, 999999), datetime(2026, 3, 29, 1, 0, 1),
               datetime(2026, 10, 25, 0, 30, 5, 5), datetime(2026, 10, 25, 1, 0, 0),
               datetime(1960, 6, 1, 12, 0, 30), datetime(2026, 11, 30, 23, 59, 59)]
    for moment in moments:
        stored = moment.isoformat(" ", "microseconds")
        expected = local(stored).isoformat(timespec="seconds")  # type: ignore[union-attr]
        assert local.text(stored) == expected
        assert local.text(stored) == expected  # from the cache
        assert local.text(moment) == expected  # a datetime (PostgreSQL)
    assert local.text(None) is None


COLUMNS = [Column("name"), Column("when", "datetime"), Column("day", "date"),
           Column("at", "time"), Column("count", "int"), Column("share", "percent"),
           Column("ratio", "float"), Column("flag", "bool"), Column("note")]


def _rows() -> list[list[Any]]:
    rows: list[list[Any]] = []
    for index, value in enumerate(AWKWARD):
        rows.append([value, datetime(2026, 10, 25, 2, 59, index, 123456 * (index % 3),
                                     tzinfo=WARSAW),
                     date(2026, 1, 1 + index), time(index, 30, 15), index * 1000 - 5000,
                     index / 7, 2.5 ** index, index % 2 == 0, None if index % 3 else value])
    rows.append([None, datetime(1900, 1, 1, 6), date(1900, 2, 28), None, 10**17, 0.0,
                 -1e-9, None, "x" * 40000])
    rows.append(["mixed", "not a time", "not a date", "not a time", "7", 1, True, 1, 2.0])
    return rows


def _reference(doc: Document, path: Path) -> None:
    """The Report sheet written the plain way, cell by cell through xlsxwriter."""
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    formats = {"datetime": workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"}),
               "date": workbook.add_format({"num_format": "yyyy-mm-dd"}),
               "time": workbook.add_format({"num_format": "hh:mm:ss"}),
               "percent": workbook.add_format({"num_format": "0.00"})}
    sheet = workbook.add_worksheet("Report")
    for index, column in enumerate(doc.columns):
        sheet.write_string(0, index, column.name)
    for number, row in enumerate(doc.rows, start=1):
        for index, value in enumerate(row):
            kind = doc.columns[index].kind
            if value is None:
                continue
            if kind == "datetime" and isinstance(value, datetime):
                sheet.write_datetime(number, index, value.replace(tzinfo=None), formats[kind])
            elif kind == "date" and isinstance(value, date):
                sheet.write_datetime(number, index, datetime(value.year, value.month,
                                                             value.day), formats[kind])
            elif kind == "time" and isinstance(value, time):
                sheet.write_datetime(number, index, value, formats[kind])
            elif kind == "percent":
                sheet.write_number(number, index, value, formats[kind])
            elif isinstance(value, bool):
                sheet.write_boolean(number, index, value)
            elif isinstance(value, int | float):
                sheet.write_number(number, index, value)
            else:
                sheet.write_string(number, index, str(value))
    workbook.close()


def _cells(path: Path, read_only: bool) -> list[list[tuple[Any, str]]]:
    sheet = load_workbook(path, read_only=read_only)["Report"]
    return [[(cell.value, cell.number_format) for cell in row] for row in sheet.iter_rows()]


def test_xlsx_rows_are_the_cells_xlsxwriter_writes(tmp_path: Path) -> None:
    doc = Document("test", "Test", "acme", None, "Europe/Warsaw", COLUMNS, _rows())
    fast = tmp_path / "fast.xlsx"
    assert write_xlsx(doc, fast, lambda _n: None) == len(_rows())
    doc.rows = _rows()
    plain = tmp_path / "plain.xlsx"
    _reference(doc, plain)
    for read_only in (True, False):
        assert _cells(fast, read_only) == _cells(plain, read_only)
    book = load_workbook(fast)
    report = book["Report"]
    assert (report.freeze_panes, report.auto_filter.ref) == ("A2", f"A1:I{len(_rows()) + 1}")
    assert report["A1"].font.b and report["B2"].is_date
    assert report["A9"].value == "tab\there"  # the rest: as xlsxwriter wrote them, above
    assert book["About"]["A1"].value == "Report"


def test_xlsx_of_no_rows_and_of_no_styled_column(tmp_path: Path) -> None:
    empty = Document("test", "Test", "acme", None, "UTC", COLUMNS, [])
    path = tmp_path / "empty.xlsx"
    assert write_xlsx(empty, path, lambda _n: None) == 0
    sheet = load_workbook(path, read_only=True)["Report"]
    assert [[c.value for c in row] for row in sheet.iter_rows()] == \
        [[c.name for c in COLUMNS]]
    plain = Document("test", "Test", "acme", None, "UTC", [Column("a"), Column("n", "int")],
                     [["x", 1], ["y", None], [None, 3]])
    path = tmp_path / "plain.xlsx"
    assert write_xlsx(plain, path, lambda _n: None) == 3
    sheet = load_workbook(path, read_only=True)["Report"]
    assert [list(row) for row in sheet.iter_rows(values_only=True)] == \
        [["a", "n"], ["x", 1], ["y", None], [None, 3]]
