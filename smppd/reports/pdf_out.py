"""The printed summary (PDF): title, account, period, time zone, totals, a chart (daily
volume stacked by status, or delivered/undelivered as a pie for a job), the top
non-delivery reasons, the table when it is short enough to print, page numbers.

Why reportlab and not HTML-to-PDF (WeasyPrint from jinja2 templates): reportlab is
one wheel (plus Pillow) with its own chart library and needs no system libraries,
while WeasyPrint needs Pango/HarfBuzz from the OS and a chart drawn some other way
(SVG by hand or matplotlib, another ~40 MB). Rendering speed points the same way: a
reportlab page with a chart is tens of milliseconds, a WeasyPrint page (CSS layout,
font shaping) several hundred; and the summary of a 1,000,000-message job must be
under 5 s all told, most of which is the counting in SQL.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.piecharts import Pie
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas
from reportlab.platypus import Paragraph, SimpleDocTemplate, Table, TableStyle

from .cells import NOT_PRINTED, Progress, printed_rows
from .documents import PRINTED_ROWS, Document

COLOURS = {"delivered": colors.HexColor("#2E8B57"), "not delivered": colors.HexColor("#C0392B"),
           "pending": colors.HexColor("#E6A23C"), "cancelled": colors.HexColor("#95A5A6"),
           "other": colors.HexColor("#E6A23C")}
PALETTE = [colors.HexColor(c) for c in ("#2E86C1", "#28B463", "#CB4335", "#F39C12",
                                        "#7D3C98", "#17A589", "#839192", "#D4AC0D")]
# Columns the printed table leaves out (ids and long texts do not fit a page).
_FONT = {"regular": "Helvetica", "bold": "Helvetica-Bold"}
_FONT_FILES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
               "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


def _fonts() -> dict[str, str]:
    """DejaVu when the system has it (Polish and Cyrillic job names print), else the
    PDF base fonts (Latin-1 only)."""
    if _FONT["regular"] == "DejaVuSans":
        return _FONT
    regular, bold = _FONT_FILES
    if Path(regular).exists() and Path(bold).exists():
        pdfmetrics.registerFont(TTFont("DejaVuSans", regular))
        pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", bold))
        _FONT.update(regular="DejaVuSans", bold="DejaVuSans-Bold")
    return _FONT


class _NumberedCanvas(canvas.Canvas):
    """Holds the pages until the end so each can say "page N of M"."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.footer = kwargs.pop("footer", "")
        super().__init__(*args, **kwargs)
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for state in self._pages:
            self.__dict__.update(state)
            self.setFont(_FONT["regular"], 8)
            self.setFillColor(colors.grey)
            self.drawString(18 * mm, 10 * mm, self.footer)
            self.drawRightString(A4[0] - 18 * mm, 10 * mm, f"page {self._pageNumber} of {total}")
            super().showPage()
        super().save()


def write_pdf(doc: Document, path: Path, progress: Progress) -> int:
    fonts = _fonts()
    styles = getSampleStyleSheet()
    title = ParagraphStyle("title", parent=styles["Title"], fontName=fonts["bold"],
                           fontSize=18, alignment=TA_LEFT, spaceAfter=2 * mm)
    heading = ParagraphStyle("heading", parent=styles["Heading2"], fontName=fonts["bold"],
                             fontSize=12, spaceBefore=5 * mm, spaceAfter=2 * mm)
    body = ParagraphStyle("body", parent=styles["BodyText"], fontName=fonts["regular"],
                          fontSize=8, leading=10)
    story: list[Any] = [Paragraph(_escape(doc.title), title)]
    story.append(_facts_table(doc, fonts))
    charts = list(doc.more_charts)
    if doc.chart is not None:
        kind = doc.chart[0]
        charts.insert(0, (doc.chart_title or (
            "Delivery by job" if doc.type == "jobs" else
            "Daily volume by status" if kind == "stacked" else "Delivery"), doc.chart))
    for chart_title, (kind, data) in charts:
        story.append(Paragraph(_escape(chart_title), heading))
        story.append(_stacked(data, fonts) if kind == "stacked" else _pie(data, fonts))
    if doc.shows_reasons:
        story.append(Paragraph("Top non-delivery reasons", heading))
        if doc.reasons:
            rows = [["code", "meaning", "messages"]] + [
                [code, Paragraph(_escape(meaning), body), f"{n:,}"]
                for code, meaning, n in doc.reasons]
            story.append(_table(rows, fonts, [40 * mm, 107 * mm, 23 * mm]))
        else:
            story.append(Paragraph("None: every message in scope was delivered or is "
                                   "pending.", body))
    count = 0
    if doc.printed_rows:
        printed = doc.printed(NOT_PRINTED)
        names = [doc.columns[i].name for i in printed]
        shown, count = printed_rows(doc, printed)
        rows = [names, *shown]
        if len(rows) > 1:
            story.append(Paragraph("Details", heading))
            story.append(_table(rows, fonts, None, size=_fitting_size(rows, fonts, 7)))
            if count > PRINTED_ROWS:
                story.append(Paragraph(f"The first {PRINTED_ROWS:,} of {count:,} rows; the "
                                       "CSV or XLSX format has them all.", body))
    generated = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    template = SimpleDocTemplate(str(path), pagesize=A4, leftMargin=18 * mm,
                                 rightMargin=18 * mm, topMargin=16 * mm, bottomMargin=18 * mm,
                                 title=doc.title, author="smppd",
                                 subject=f"{doc.account} {doc.timezone}")
    footer = f"smppd report · {doc.account} · generated {generated}"
    template.build(story, canvasmaker=lambda *a, **k: _NumberedCanvas(*a, footer=footer, **k))
    progress(count)
    return count


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


WIDTH = A4[0] - 36 * mm  # between the margins
PADDING = 6  # points left and right of a cell's text (reportlab's default)


def _fitting_size(rows: list[list[Any]], fonts: dict[str, str], size: float) -> float:
    """The font size (at most `size`, at least 5) at which the widest text of each
    column, padded, fits the page's width: a report with many columns prints
    smaller rather than off the page."""
    text = sum(max(pdfmetrics.stringWidth(str(row[i]), fonts["bold"], 1) for row in rows)
               for i in range(len(rows[0])))
    room = WIDTH - 2 * PADDING * len(rows[0])
    return size if text * size <= room else max(5.0, room / text)


def _facts_table(doc: Document, fonts: dict[str, str]) -> Table:
    facts = list(doc.facts) or [("Account", doc.account), ("Time zone", doc.timezone)]
    half = (len(facts) + 1) // 2
    left, right = facts[:half], facts[half:] + [("", "")] * (2 * half - len(facts))
    value = ParagraphStyle("fact", fontName=fonts["regular"], fontSize=9, leading=11)
    rows = [[a, Paragraph(_escape(str(b)), value), c, Paragraph(_escape(str(d)), value)]
            for (a, b), (c, d) in zip(left, right, strict=True)]
    # Each label column as wide as its longest label (the values wrap).
    labels = [max(pdfmetrics.stringWidth(label, fonts["bold"], 9) for label, _ in side)
              + 2 * PADDING for side in (left, right)]
    values = (WIDTH - sum(labels)) / 2
    table = Table(rows, colWidths=[labels[0], values, labels[1], values], hAlign="LEFT")
    table.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -1), fonts["regular"], 9),
        ("FONT", (0, 0), (0, -1), fonts["bold"], 9),
        ("FONT", (2, 0), (2, -1), fonts["bold"], 9),
        ("TEXTCOLOR", (0, 0), (0, -1), colors.HexColor("#34495E")),
        ("TEXTCOLOR", (2, 0), (2, -1), colors.HexColor("#34495E")),
        ("LINEBELOW", (0, -1), (-1, -1), 0.5, colors.HexColor("#BDC3C7")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3)]))
    return table


def _table(rows: list[list[Any]], fonts: dict[str, str], widths: list[float] | None,
           size: int = 8) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1, hAlign="LEFT")
    table.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -1), fonts["regular"], size),
        ("FONT", (0, 0), (-1, 0), fonts["bold"], size),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#DDE4EE")),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#F5F7FA")]),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#BDC3C7")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]))
    return table


def _stacked(data: Any, fonts: dict[str, str]) -> Drawing:
    labels, series = data
    drawing = Drawing(170 * mm, 75 * mm)
    if not labels or not any(any(values) for values in series.values()):
        drawing.add(String(10, 100, "No messages in this period.", fontName=fonts["regular"],
                           fontSize=10))
        return drawing
    chart = VerticalBarChart()
    chart.x, chart.y = 12 * mm, 14 * mm
    # A bar is at most 12 mm wide: a one-day report is one bar, not a wall.
    chart.width, chart.height = min(118 * mm, max(25 * mm, len(labels) * 12 * mm)), 55 * mm
    names = list(series)
    chart.data = [series[name] for name in names]
    chart.categoryAxis.categoryNames = labels
    chart.categoryAxis.style = "stacked"
    chart.categoryAxis.labels.fontName = fonts["regular"]
    chart.categoryAxis.labels.fontSize = 6 if len(labels) > 15 else 7
    chart.categoryAxis.labels.angle = 90 if len(labels) > 15 else 0
    chart.categoryAxis.labels.boxAnchor = "e" if len(labels) > 15 else "n"
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labels.fontName = fonts["regular"]
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.labelTextFormat = lambda value: f"{value:,.0f}"
    chart.barWidth = 6
    chart.groupSpacing = 4
    for index, name in enumerate(names):
        chart.bars[index].fillColor = COLOURS.get(name, PALETTE[index % len(PALETTE)])
        chart.bars[index].strokeColor = None
    drawing.add(chart)
    drawing.add(_legend([(COLOURS.get(name, PALETTE[i % len(PALETTE)]), name)
                         for i, name in enumerate(names)], chart.x + chart.width + 8 * mm,
                        60 * mm, fonts))
    return drawing


def _pie(data: dict[str, int], fonts: dict[str, str]) -> Drawing:
    drawing = Drawing(170 * mm, 60 * mm)
    items = [(name, n) for name, n in data.items() if n]
    if not items:
        drawing.add(String(10, 80, "No messages.", fontName=fonts["regular"], fontSize=10))
        return drawing
    total = sum(n for _, n in items)
    pie = Pie()
    pie.x, pie.y = 10 * mm, 5 * mm
    pie.width = pie.height = 50 * mm
    pie.data = [n for _, n in items]
    pie.labels = [f"{100.0 * n / total:.1f}%" if n / total >= 0.03 else "" for _, n in items]
    pie.slices.strokeColor = colors.white
    pie.slices.fontName = fonts["regular"]
    pie.slices.fontSize = 8
    pie.sideLabels = False
    chosen = []
    for index, (name, _n) in enumerate(items):
        colour = COLOURS.get(name, PALETTE[index % len(PALETTE)])
        pie.slices[index].fillColor = colour
        chosen.append(colour)
    drawing.add(pie)
    drawing.add(_legend([(colour, f"{name}: {n:,}") for colour, (name, n)
                         in zip(chosen, items, strict=True)], 75 * mm, 45 * mm, fonts))
    return drawing


def _legend(pairs: list[tuple[Any, str]], x: float, y: float, fonts: dict[str, str]) -> Legend:
    legend = Legend()
    legend.x, legend.y = x, y
    legend.alignment = "right"
    legend.fontName = fonts["regular"]
    legend.fontSize = 8
    legend.colorNamePairs = pairs
    legend.columnMaximum = 8
    legend.deltay = 12
    return legend
