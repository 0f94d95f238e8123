"""Writing a Document to a file: CSV, JSON and XML here, XLSX, PDF and DOCX in their
own modules (each imports its library only when used).

Every writer streams: rows are written as they come from the cursor, so a
million-row report needs the memory of one buffer, not of the rows. `progress` is
called with the rows written so far, every PROGRESS_EVERY rows.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import XMLGenerator

from .cells import PROGRESS_EVERY, Progress
from .documents import Document

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xml": "application/xml",
}


def _as_text(doc: Document, bools: bool = False) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """A row with its time columns as ISO 8601 text, and with `bools` its true/false
    columns as `true` / `false` (CSV; JSON has its own). Only those columns are
    touched: a million rows of a dozen cells cannot afford a type check per cell."""
    times = [i for i, c in enumerate(doc.columns) if c.kind in ("datetime", "date", "time")]
    flags = [i for i, c in enumerate(doc.columns) if c.kind == "bool"] if bools else []
    if not times and not flags:
        return lambda row: row

    def convert(row: Sequence[Any]) -> Sequence[Any]:
        values = list(row)
        for index in times:
            value = values[index]
            if value is not None:
                values[index] = value.isoformat() if isinstance(value, date) and not \
                    isinstance(value, datetime) else value.isoformat(timespec="seconds")
        for index in flags:
            value = values[index]
            if value is not None:
                values[index] = "true" if value else "false"
        return values

    return convert


def write_csv(doc: Document, path: Path, progress: Progress, delimiter: str = ",") -> int:
    """UTF-8 with a header row; times are ISO 8601 with the account's UTC offset."""
    count = 0
    convert = _as_text(doc, bools=True)
    with path.open("w", newline="", encoding="utf-8", buffering=1 << 20) as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(doc.column_names())
        if doc.csv_chunks is not None:  # already CSV text
            reported = 0
            for text, rows in doc.csv_chunks(delimiter):
                handle.write(text)
                count += rows
                if count // PROGRESS_EVERY > reported:
                    reported = count // PROGRESS_EVERY
                    progress(count)
            return count
        if doc.text_batches is not None:  # already text: csv's C loop takes a list at once
            reported = 0
            for batch in doc.text_batches():
                writer.writerows(batch)
                count += len(batch)
                if count // PROGRESS_EVERY > reported:
                    reported = count // PROGRESS_EVERY
                    progress(count)
            return count
        for row in doc.rows:
            writer.writerow(convert(row))
            count += 1
            if count % PROGRESS_EVERY == 0:
                progress(count)
    return count


def write_json(doc: Document, path: Path, progress: Progress) -> int:
    """{"type", "account", "period", "timezone", "rows": [...], "totals", ...}, written a
    row at a time."""
    names = doc.column_names()
    head: dict[str, Any] = {"type": doc.type, "title": doc.title, "account": doc.account,
                            "timezone": doc.timezone}
    if doc.period is not None:
        head["period"] = {"since": doc.period.start.isoformat(),
                          "until": doc.period.end.isoformat()}
    count = 0
    convert = _as_text(doc)
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    with path.open("w", encoding="utf-8", buffering=1 << 20) as handle:
        handle.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "rows": [')
        for row in doc.rows:
            if count:
                handle.write(",\n")
            handle.write(dumps(dict(zip(names, convert(row), strict=True))))
            count += 1
            if count % PROGRESS_EVERY == 0:
                progress(count)
        tail = {"totals": doc.totals, **doc.extra}
        handle.write("], " + json.dumps(tail, ensure_ascii=False, default=str)[1:])
    return count


def write_xml(doc: Document, path: Path, progress: Progress,
              groups: Sequence[str] | None = None) -> int:
    """The number groups: <numbers><group key label messages><number>+48...</number>..."""
    count = 0
    wanted = [g for g in doc.groups if groups is None or g.key in groups]
    with path.open("w", encoding="utf-8", buffering=1 << 20) as handle:
        xml = XMLGenerator(handle, "utf-8", short_empty_elements=True)
        xml.startDocument()
        attributes = {"account": doc.account, "title": doc.title, "timezone": doc.timezone}
        if doc.extra.get("jobs"):
            attributes["jobs"] = " ".join(doc.extra["jobs"])
        xml.startElement("numbers", attributes)
        for group in wanted:
            xml.characters("\n  ")
            xml.startElement("group", {"key": group.key, "label": group.label,
                                       "messages": str(group.messages)})
            for number in (doc.numbers(group.key) if doc.numbers else ()):
                xml.characters("\n    ")
                xml.startElement("number", {})
                xml.characters(number)
                xml.endElement("number")
                count += 1
                if count % PROGRESS_EVERY == 0:
                    progress(count)
            xml.characters("\n  ")
            xml.endElement("group")
        xml.characters("\n")
        xml.endElement("numbers")
        xml.endDocument()
    return count


def write_numbers_csv(numbers: Any, path: Path, group: str) -> int:
    count = 0
    with path.open("w", newline="", encoding="utf-8", buffering=1 << 20) as handle:
        writer = csv.writer(handle)
        writer.writerow(["number", "group"])
        for number in numbers:
            writer.writerow([number, group])
            count += 1
    return count


def render(doc: Document, fmt: str, path: Path, progress: Progress,
           options: dict[str, Any]) -> int:
    """Write `doc` as `fmt` to `path`; returns the rows written."""
    if fmt == "csv":
        return write_csv(doc, path, progress, options.get("delimiter", ","))
    if fmt == "json":
        return write_json(doc, path, progress)
    if fmt == "xml":
        return write_xml(doc, path, progress)
    if fmt == "xlsx":
        from .xlsx_out import write_xlsx

        return write_xlsx(doc, path, progress)
    if fmt == "pdf":
        from .pdf_out import write_pdf

        return write_pdf(doc, path, progress)
    if fmt == "docx":
        from .docx_out import write_docx

        return write_docx(doc, path, progress)
    raise ValueError(f"no renderer for {fmt!r}")
