"""`smppd demo --serve`: the demo prints the portal's address and logins, and keeps
the daemon running so that a newcomer can click through what it sent."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.pages import PageClient


def test_demo_serve_keeps_the_portal_up_until_interrupted(tmp_path: Path) -> None:
    demo = subprocess.Popen([sys.executable, "-m", "smppd.cli", "demo", "--count", "20",
                             "--dir", str(tmp_path), "--serve"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while not any("serving the portal" in line for line in lines):
            assert time.monotonic() < deadline and demo.poll() is None, "".join(lines)
            lines.append(demo.stdout.readline())
        text = "".join(lines)
        port, login, password = re.search(
            r"portal:\s+http://127\.0\.0\.1:(\d+)/portal/\s+login (\w+), password (\S+)",
            text).groups()
        operator = re.search(r"console: \S+\s+login (\w+), password (\S+)", text).groups()
        client = PageClient(int(port))
        client.login(login, password)
        history = client.get("/portal/history")
        assert history.status == 200 and "delivered" in history.text
        assert "Ice cream" in client.get("/portal/polls").text
        console = PageClient(int(port))
        console.login(operator[0], operator[1], area="ops")
        assert "demo-smsc" in console.get("/ops/").text
    finally:
        demo.send_signal(signal.SIGINT)
        out, err = demo.communicate(timeout=60)
    assert demo.returncode == 0, out + err
    assert "Traceback" not in err
    assert (tmp_path / "demo-report.csv").exists()
