"""XLSX with xlsxwriter in constant-memory mode: each row is flushed to the file as it
is written, so 100,000 or a million rows cost the memory of one. Cells are typed
(numbers as numbers, times as Excel date-times in the account's zone), the header is
frozen and filtered, and a second sheet states what the report is."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import xlsxwriter

from .cells import PROGRESS_EVERY, Progress
from .documents import Document

MAX_ROWS = 1_048_575  # Excel's limit, less the header
_WIDTHS = {"id": 34, "created": 20, "started": 20, "finished": 20, "text": 40, "content": 40,
           "explanation": 50, "name": 24, "recipient": 16, "sender": 12, "date": 12, "time": 10}


def write_xlsx(doc: Document, path: Path, progress: Progress) -> int:
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True,
                                               "strings_to_numbers": False,
                                               "strings_to_formulas": False,
                                               "strings_to_urls": False})
    try:
        return _write(workbook, doc, progress)
    finally:
        workbook.close()


def _write(workbook: Any, doc: Document, progress: Progress) -> int:
    header = workbook.add_format({"bold": True, "bg_color": "#DDE4EE", "border": 1})
    stamp = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    day = workbook.add_format({"num_format": "yyyy-mm-dd"})
    clock = workbook.add_format({"num_format": "hh:mm:ss"})
    percent = workbook.add_format({"num_format": "0.00"})
    sheet = workbook.add_worksheet("Report")
    columns = doc.columns
    for index, column in enumerate(columns):
        sheet.set_column(index, index, _WIDTHS.get(column.name, max(10, len(column.name) + 2)))
        sheet.write_string(0, index, column.name, header)
    sheet.freeze_panes(1, 0)
    count = 0
    for row in doc.rows:
        if count >= MAX_ROWS:
            break
        count += 1
        for index, value in enumerate(row):
            if value is None:
                continue
            kind = columns[index].kind
            if kind == "datetime" and isinstance(value, datetime):
                sheet.write_datetime(count, index, value.replace(tzinfo=None), stamp)
            elif kind == "date" and isinstance(value, date):
                sheet.write_datetime(count, index, datetime(value.year, value.month,
                                                            value.day), day)
            elif kind == "time" and isinstance(value, time):
                sheet.write_datetime(count, index, value, clock)
            elif kind == "percent":
                sheet.write_number(count, index, value, percent)
            elif isinstance(value, bool):
                sheet.write_boolean(count, index, value)
            elif isinstance(value, int | float):
                sheet.write_number(count, index, value)
            else:
                sheet.write_string(count, index, str(value))
        if count % PROGRESS_EVERY == 0:
            progress(count)
    sheet.autofilter(0, 0, max(count, 1), len(columns) - 1)
    about = workbook.add_worksheet("About")
    about.set_column(0, 0, 22)
    about.set_column(1, 1, 60)
    lines = [("Report", doc.title), *doc.facts]
    if not any(label == "Time zone" for label, _ in doc.facts):
        lines.append(("Time zone", doc.timezone))
    lines.append(("Times", f"local time in {doc.timezone}"))
    if count >= MAX_ROWS:
        lines.append(("Note", f"cut at Excel's limit of {MAX_ROWS:,} rows; use CSV"))
    for number, (label, value) in enumerate(lines):
        about.write_string(number, 0, label, header)
        about.write_string(number, 1, str(value))
    return count
