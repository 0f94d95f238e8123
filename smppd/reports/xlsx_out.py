"""XLSX: typed cells (numbers as numbers, times as Excel date-times in the account's
zone), a frozen, filtered header, and a second sheet stating what the report is.

xlsxwriter makes the workbook: styles, the header, column widths, the frozen pane,
the autofilter and the About sheet. The rows of the Report sheet are not written
through it. In its constant-memory mode every cell still goes through a decorated
write call, a bounds check, a named tuple and an attribute list before its XML is
formatted: ~85% of a `detailed` XLSX's time under cProfile (20,000 rows; 100,000
took 13.4 s on a quiet machine). Here each row's XML is formatted in one pass
(`SheetRows`) and streamed to a temporary file; the workbook xlsxwriter made is then
copied into the final zip with those rows spliced into the Report sheet's
<sheetData>. Memory stays that of one row and one zip buffer. The cell XML is what
xlsxwriter writes for the same value (inline strings, numbers as %.16G, its
control-character escapes), so a reader sees the same cells. One exception:
xlsxwriter passes a string shaped like "<r>...</r>" through as rich-text XML (which
can break the file); here it is escaped like any text.
"""

from __future__ import annotations

import io
import math
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, Any

import xlsxwriter
from xlsxwriter.utility import xl_col_to_name

from .cells import PROGRESS_EVERY, Progress
from .documents import Document

MAX_ROWS = 1_048_575  # Excel's limit, less the header
_WIDTHS = {"id": 34, "created": 20, "started": 20, "finished": 20, "text": 40, "content": 40,
           "explanation": 50, "name": 24, "recipient": 16, "sender": 12, "date": 12, "time": 10}
_SHEET = "xl/worksheets/sheet1.xml"  # the Report sheet: the workbook's first
_STYLED = ("datetime", "date", "time", "percent")  # kinds whose cells carry a style
_PROBE = {"datetime": datetime(2000, 1, 1), "date": date(2000, 1, 1), "time": time(0, 0),
          "percent": 0.0}
_CELL_STYLE = re.compile(r'<c r="([A-Z]+)\d+" s="(\d+)"')
_STRING_MAX = 32767  # Excel's longest cell text, in UTF-16 units
_ESCAPED = re.compile(r"_x[0-9a-fA-F]{4}_")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")
_EPOCH = datetime(1899, 12, 31)
_EXACT = 10**16  # ints below this print the same with str() as with %.16G
# What sends a text cell the long way (`_string`): XML's specials, control characters
# and what Excel escapes, "_" (of a literal _xHHHH_), and blanks at either end.
_SPECIAL = re.compile(r"[&<>_\x00-\x1f\ufffe\uffff]|\A\s|\s\Z")


def write_xlsx(doc: Document, path: Path, progress: Progress) -> int:
    """Rows first (their count is known only at the end, and the autofilter, the
    dimension and the About sheet's note depend on it), with style numbers from a
    first template; then the final template, checked to number its styles the same."""
    styles = _template(doc, 1)[1]
    with tempfile.TemporaryFile(dir=path.parent) as rows_file:
        text = io.TextIOWrapper(rows_file, encoding="utf-8", newline="")
        count = SheetRows(doc, styles).write(text, progress)
        text.flush()
        text.detach()
        workbook, final = _template(doc, count)
        if count and final != styles:  # xlsxwriter numbers styles by first use: same calls
            raise RuntimeError(f"xlsx styles moved: {styles} then {final}")
        rows_file.seek(0)
        _splice(workbook, rows_file, path)
    return count


def _template(doc: Document, count: int) -> tuple[bytes, dict[int, int]]:
    """The workbook without its rows: the Report sheet has the header and, at row
    `count` (the last, so the sheet's dimension is right: openpyxl's read-only mode
    trusts it), a probe cell of each styled kind, from which the style numbers to use
    are read; the rows replace it.
    Returns the workbook's bytes and {column index: style number}."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_numbers": False,
                                            "strings_to_formulas": False,
                                            "strings_to_urls": False})
    header = workbook.add_format({"bold": True, "bg_color": "#DDE4EE", "border": 1})
    formats = {"datetime": workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"}),
               "date": workbook.add_format({"num_format": "yyyy-mm-dd"}),
               "time": workbook.add_format({"num_format": "hh:mm:ss"}),
               "percent": workbook.add_format({"num_format": "0.00"})}
    sheet = workbook.add_worksheet("Report")
    columns = doc.columns
    for index, column in enumerate(columns):
        sheet.set_column(index, index, _WIDTHS.get(column.name, max(10, len(column.name) + 2)))
        sheet.write_string(0, index, column.name, header)
    sheet.freeze_panes(1, 0)
    probe = count
    for index, column in enumerate(columns):
        if probe and column.kind in _STYLED:
            value = _PROBE[column.kind]
            if column.kind == "percent":
                sheet.write_number(probe, index, value, formats["percent"])
            else:
                sheet.write_datetime(probe, index, value, formats[column.kind])
    if probe and not any(column.kind in _STYLED for column in columns):
        sheet.write_number(probe, 0, 0)  # for the dimension alone
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
    workbook.close()
    data = buffer.getvalue()
    if not probe:
        return data, {}
    with zipfile.ZipFile(io.BytesIO(data)) as made:
        xml = made.read(_SHEET).decode("utf-8")
    probe_row = xml[xml.index(f'<row r="{probe + 1}"'):]
    letters = {xl_col_to_name(i): i for i in range(len(columns))}
    styles = {letters[letter]: int(style) for letter, style in
              _CELL_STYLE.findall(probe_row[:probe_row.index("</row>")])}
    return data, styles


def _splice(workbook: bytes, rows: IO[bytes], path: Path) -> None:
    """Copy the template into `path`, the Report sheet's rows after its header (the
    probe row) replaced by the XML in `rows`."""
    with zipfile.ZipFile(io.BytesIO(workbook)) as made, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in made.infolist():
            if info.filename != _SHEET:
                out.writestr(info, made.read(info.filename))
                continue
            xml = made.read(_SHEET)
            data = xml.index(b"<sheetData")
            head_end = xml.find(b"</row>", data)
            head_end = data if head_end < 0 else head_end + len(b"</row>")
            tail = xml.index(b"</sheetData>")
            with out.open(info, "w", force_zip64=True) as sheet:
                sheet.write(xml[:head_end])
                shutil.copyfileobj(rows, sheet, 1 << 20)
                sheet.write(xml[tail:])


class SheetRows:
    """The <row> elements of the Report sheet, a row's cells formatted at once."""

    def __init__(self, doc: Document, styles: dict[int, int]) -> None:
        self.doc = doc
        refs = [xl_col_to_name(i) for i in range(len(doc.columns))]
        # Per column: how a value becomes a cell, from the column's kind (the same
        # choices the cell-by-cell writer made, in the same order).
        self.cells: list[Callable[[str, Any], str]] = [
            self._cell_maker(column.kind, refs[i], styles.get(i))
            for i, column in enumerate(doc.columns)]

    def write(self, out: IO[str], progress: Progress) -> int:
        count = 0
        cells = self.cells
        for row in self.doc.rows:
            if count >= MAX_ROWS:
                break
            count += 1
            number = str(count + 1)
            out.write(f'<row r="{number}">' + "".join(
                [cell(number, value) for cell, value in zip(cells, row, strict=False)
                 if value is not None]) + "</row>")
            if count % PROGRESS_EVERY == 0:
                progress(count)
        return count

    @staticmethod
    def _cell_maker(kind: str, ref: str, style: int | None) -> Callable[[str, Any], str]:
        """The cell function of one column. The common case of its kind (a str in a
        text column, an int in an int column) is tested first and written directly;
        anything else takes `_any_cell`, which decides as xlsxwriter's typed writes
        did."""
        if kind in _STYLED:
            return lambda number, value: _any_cell(kind, ref + number, value, style)
        if kind == "int":
            def int_cell(number: str, value: Any) -> str:
                if type(value) is int and -_EXACT < value < _EXACT:
                    return f'<c r="{ref}{number}"><v>{value}</v></c>'
                return _any_cell(kind, ref + number, value, style)

            return int_cell

        def text_cell(number: str, value: Any) -> str:
            if type(value) is str and len(value) < _STRING_MAX // 2 \
                    and not _SPECIAL.search(value):
                return f'<c r="{ref}{number}" t="inlineStr"><is><t>{value}</t></is></c>'
            return _any_cell(kind, ref + number, value, style)

        return text_cell


def _any_cell(kind: str, ref: str, value: Any, style: int | None) -> str:
    """A cell of any value, typed by the column's kind and the value's type."""
    if kind == "datetime" and isinstance(value, datetime):
        return _number(ref, excel_time(value.replace(tzinfo=None)), style)
    if kind == "date" and isinstance(value, date):
        return _number(ref, excel_time(datetime(value.year, value.month, value.day)), style)
    if kind == "time" and isinstance(value, time):
        return _number(ref, excel_time(value), style)
    if kind == "percent":
        return _number(ref, value, style)
    if isinstance(value, bool):
        return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | float):
        return _number(ref, value, None)
    return _string(ref, str(value))


def _number(ref: str, value: float, style: int | None) -> str:
    if math.isnan(value) or math.isinf(value):
        raise TypeError("NAN/INF not supported in write_number()")
    styled = "" if style is None else f' s="{style}"'
    return f'<c r="{ref}"{styled}><v>{value:.16G}</v></c>'


def _string(ref: str, value: str) -> str:
    """An inline string cell: at most Excel's length, control characters as Excel's
    _xHHHH_ escapes (and a literal _xHHHH_ kept literal by escaping its underscore),
    XML's &, < and > escaped, and leading or trailing blanks kept."""
    if len(value) > _STRING_MAX // 2:
        encoded = value.encode("utf-16-le", "surrogatepass")
        if len(encoded) > 2 * _STRING_MAX:
            value = encoded[:2 * _STRING_MAX].decode("utf-16-le", "ignore")
    if "_x" in value:
        value = _ESCAPED.sub(lambda found: "_x005F" + found.group(0), value)
    if _CONTROL.search(value):
        value = _CONTROL.sub(lambda found: f"_x{ord(found.group(0)):04X}_", value)
    if "\ufffe" in value or "\uffff" in value:
        value = value.replace("\ufffe", "_xFFFE_").replace("\uffff", "_xFFFF_")
    if "&" in value or "<" in value or ">" in value:
        value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    keep = ' xml:space="preserve"' if value and (value[0].isspace() or value[-1].isspace()) \
        else ""
    return f'<c r="{ref}" t="inlineStr"><is><t{keep}>{value}</t></is></c>'


def excel_time(value: datetime | time) -> float:
    """Excel's serial date-time (1900 system): days since 1899-12-31 plus the fraction
    of the day, one more from March 1900 on (Excel counts a 29 February 1900), and a
    time alone a fraction of day 0. The float comes out of the same operations in the
    same order as xlsxwriter's, so the cells hold the same numbers bit for bit."""
    if isinstance(value, time):
        delta = datetime.combine(_EPOCH, value) - _EPOCH
        return (float(delta.seconds) + float(delta.microseconds) / 1e6) / (60 * 60 * 24)
    delta = value - _EPOCH
    serial = delta.days + (float(delta.seconds) + float(delta.microseconds) / 1e6) \
        / (60 * 60 * 24)
    if delta.days < 2 and value.isocalendar() == (1900, 1, 1):
        serial -= 1  # Excel's day 0 is 1900-01-00, not Python's 1900-01-01
    if serial > 59:
        serial += 1
    return serial
