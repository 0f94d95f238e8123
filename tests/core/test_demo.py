"""`smppd demo` (the README's first command) runs the daemon end to end."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path


def test_demo_sends_every_kind_and_writes_a_report(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "smppd.cli", "demo", "--count", "60",
                           "--dir", str(folder)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "60 messages accepted over HTTP" in done.stdout
    assert "final   60/60" in done.stdout
    with (folder / "demo-report.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    sent = [row for row in rows if row["ref_id"]]  # the rest: replies to the MO votes
    assert len(sent) == 60
    assert {row["status"] for row in sent} == {"delivered", "undelivered", "expired"}
    assert "poll 'Ice cream': 4 accepted of 6" in done.stdout
    assert "refused: over_limit 1, unknown_option 1" in done.stdout
    assert {row["encoding"] for row in rows} == {"gsm", "ucs2"}
    assert any(int(row["parts"]) > 1 for row in rows)
    assert all(row["smsc_ids"] for row in rows)
    assert "Traceback" not in done.stderr
    # It ends with the daily report and a PDF summary from the API, next to the CSV:
    # the 60 it sent and the replies to the votes, as the store has them.
    with (folder / "demo-daily.csv").open(encoding="utf-8") as handle:
        days = list(csv.DictReader(handle))
    assert sum(int(day["messages"]) for day in days) == len(rows)
    # Taken once the replies were final too: the report agrees with the status table.
    assert sum(int(day["delivered"]) + int(day["undelivered"]) + int(day["expired"])
               for day in days) == len(rows)
    from pypdf import PdfReader

    text = PdfReader(folder / "demo-summary.pdf").pages[0].extract_text()
    assert "Messages per day" in text and f"Messages\n{len(rows)}\n" in text
    assert f"daily report written: {folder / 'demo-daily.csv'}" in done.stdout
    assert f"PDF summary written:  {folder / 'demo-summary.pdf'}" in done.stdout
