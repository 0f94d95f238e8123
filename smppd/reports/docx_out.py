"""DOCX (python-docx): the summary as a Word document, the way the Polish portals offer
"doc": title, the facts, the top non-delivery reasons and the table (jobs, days,
countries...). python-docx builds the document in memory, so the table is limited
to PRINTED_ROWS rows; the whole data set is what CSV and XLSX are for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docx import Document as WordDocument
from docx.enum.section import WD_ORIENT
from docx.shared import Mm, Pt

from .cells import NOT_PRINTED, Progress, printed_rows
from .documents import PRINTED_ROWS, Document


def write_docx(doc: Document, path: Path, progress: Progress) -> int:
    word = WordDocument()
    section = word.sections[0]
    section.orientation = WD_ORIENT.LANDSCAPE
    section.page_width, section.page_height = Mm(297), Mm(210)
    for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
        setattr(section, side, Mm(15))
    style = word.styles["Normal"]
    style.font.name = "Calibri"
    style.font.size = Pt(9)
    word.core_properties.title = doc.title
    word.core_properties.author = "smppd"
    word.add_heading(doc.title, level=0)
    facts = doc.facts or [("Account", doc.account), ("Time zone", doc.timezone)]
    table = word.add_table(rows=0, cols=2)
    table.style = "Light List Accent 1"
    for label, value in facts:
        cells = table.add_row().cells
        cells[0].text, cells[1].text = label, str(value)
    if doc.reasons:
        word.add_heading("Top non-delivery reasons", level=1)
        _grid(word, ["code", "meaning", "messages"],
              [[code, meaning, f"{n:,}"] for code, meaning, n in doc.reasons])
    count = 0
    if doc.printed_rows:
        printed = doc.printed(NOT_PRINTED)
        rows, count = printed_rows(doc, printed)
        word.add_heading("Details", level=1)
        _grid(word, [doc.columns[i].name for i in printed], rows)
        if count > PRINTED_ROWS:
            word.add_paragraph(f"The first {PRINTED_ROWS:,} of {count:,} rows; the CSV or "
                               "XLSX format has them all.")
    word.save(str(path))
    progress(count)
    return count


def _grid(word: Any, header: list[str], rows: list[list[Any]]) -> None:
    table = word.add_table(rows=1, cols=len(header))
    table.style = "Light Grid Accent 1"
    for cell, name in zip(table.rows[0].cells, header, strict=True):
        cell.text = name
    for row in rows:
        for cell, value in zip(table.add_row().cells, row, strict=True):
            cell.text = str(value)
