"""A horizontal bar chart as SVG, drawn on the server: one bar per option with its
votes and percent. Horizontal because option labels are words and a phone screen is
narrow; the SVG scales to its box (viewBox) and reads out as a list to a screen
reader (role="img" with a title and a description that says every figure)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

BAR = 28
GAP = 10
LABEL = 120
WIDTH = 640


def bars(title: str, items: Sequence[tuple[str, int, float]], votes_word: str) -> Markup:
    """items: (label, count, percent 0..100)."""
    height = max(1, len(items)) * (BAR + GAP) + GAP
    room = WIDTH - LABEL - 150
    summary = "; ".join(f"{label}: {count} {votes_word}, {percent:g}%"
                        for label, count, percent in items)
    rows = []
    for index, (label, count, percent) in enumerate(items):
        y = GAP + index * (BAR + GAP)
        width = max(0.0, min(100.0, percent)) / 100 * room
        shown = label if len(label) <= 14 else label[:13] + "…"
        rows.append(
            f'<g><text x="{LABEL - 8}" y="{y + BAR / 2 + 5}" text-anchor="end" '
            f'class="chart-label">{escape(shown)}</text>'
            f'<rect x="{LABEL}" y="{y}" width="{room}" height="{BAR}" class="chart-track"/>'
            f'<rect x="{LABEL}" y="{y}" width="{width:.1f}" height="{BAR}" class="chart-bar"/>'
            f'<text x="{LABEL + room + 8}" y="{y + BAR / 2 + 5}" class="chart-value">'
            f'{percent:g}% ({count})</text></g>')
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="chart-title">{escape(title)}</title>'
        f'<desc id="chart-desc">{escape(summary)}</desc>{"".join(rows)}</svg>')
