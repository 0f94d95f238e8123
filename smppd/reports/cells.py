"""What every renderer shares: the progress callback, how a value reads as text and
as a printed cell, and which columns and rows a printed document (PDF, DOCX) shows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time
from typing import Any

from .documents import PRINTED_ROWS, Document

PROGRESS_EVERY = 10_000  # rows between progress reports
Progress = Callable[[int], None]
# Columns a printed table leaves out: too wide for a page, and in CSV/XLSX anyway.
NOT_PRINTED = {"id", "text", "content", "campaign", "refunded", "created", "finished"}


def text_value(value: Any) -> Any:
    if isinstance(value, datetime | time):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def printed_rows(doc: Document, printed: list[int]) -> tuple[list[list[str]], int]:
    """The first PRINTED_ROWS rows as printed cells, and how many rows there are (read
    to the end to count them, unless the document knows its count)."""
    shown: list[list[str]] = []
    count = 0
    for row in doc.rows:
        if count >= PRINTED_ROWS and doc.row_count is not None:
            return shown, doc.row_count
        count += 1
        if count <= PRINTED_ROWS:
            shown.append([printed_cell(row[i]) for i in printed])
    return shown, count


def printed_cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    value = text_value(value)
    return "" if value is None else str(value)[:40]
