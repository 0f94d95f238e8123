"""ops/: the Grafana dashboard and the Prometheus alert rules are checked here:
the dashboard's structure, every query as PromQL (promtool), the rules by
`promtool check rules` and `promtool test rules`, and every metric either of
them reads against what a running smppd actually exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ops" / "grafana" / "smppd-dashboard.json"
RULES = ROOT / "ops" / "prometheus" / "smppd-alerts.yml"
RULE_TESTS = ROOT / "ops" / "prometheus" / "smppd-alerts.test.yml"
# Made by Prometheus itself, not exported by smppd.
SYNTHETIC = {"up"}
_PROMQL_WORDS = {"sum", "by", "rate", "increase", "histogram_quantile", "count", "and", "deriv",
                 "le", "without", "on", "ignoring", "group_left", "max", "min", "avg"}


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panel_queries() -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in _dashboard()["panels"]
            for target in panel.get("targets", [])]


def _rule_queries() -> list[tuple[str, str]]:
    rules = yaml.safe_load(RULES.read_text())
    return [(rule["alert"], rule["expr"]) for group in rules["groups"]
            for rule in group["rules"]]


def _as_promql(expr: str) -> str:
    """Grafana's variables, as Prometheus would see them once Grafana fills them in."""
    return expr.replace("$__rate_interval", "5m").replace("$instance", ".*") \
        .replace("$smsc", ".*")


def _metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    without_groupings = re.sub(r"\b(by|without)\s*\([^)]*\)", "", without_ranges)
    names = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", without_groupings))
    return {n for n in names if n not in _PROMQL_WORDS and not n.isdigit()}


def test_the_dashboard_json_is_what_its_generator_writes() -> None:
    sys.path.insert(0, str(DASHBOARD.parent))
    try:
        import make_dashboard
    finally:
        sys.path.pop(0)
    assert DASHBOARD.read_text() == make_dashboard.render(), \
        "run: python ops/grafana/make_dashboard.py"


def test_dashboard_structure() -> None:
    board = _dashboard()
    assert board["title"] == "smppd" and board["uid"] and board["schemaVersion"] >= 36
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    assert {v["name"] for v in board["templating"]["list"]} == {"instance", "smsc"}
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["type"] in ("timeseries", "stat"), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert panel["targets"] and panel["description"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"] and target["refId"] and target["legendFormat"]
            assert target["datasource"] == panel["datasource"]
    titles = " | ".join(p["title"].lower() for p in panels)
    for topic in ("bound", "submit rate", "throttling", "unknown", "receipts by status",
                  "queue depth", "store backlog", "round trip"):
        assert topic in titles, topic


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        print("\nskipped: promtool is not installed (Debian: apt-get install prometheus)")
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return found


def test_promtool_checks_the_alert_rules() -> None:
    done = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True,
                          text=True, timeout=60)
    print("\n" + done.stdout + done.stderr)
    assert done.returncode == 0 and "SUCCESS: 6 rules found" in done.stdout
    alerts = {name for name, _ in _rule_queries()}
    assert {"SmppdSmscUnbound", "SmppdThrottlingSustained", "SmppdUnknownOutcomesRising",
            "SmppdStoreBacklogGrowing", "SmppdReloadFailed"} <= alerts


def test_promtool_unit_tests_fire_each_alert() -> None:
    done = subprocess.run([_promtool(), "test", "rules", str(RULE_TESTS)], capture_output=True,
                          text=True, timeout=60, cwd=RULE_TESTS.parent)
    print("\n" + done.stdout + done.stderr)
    assert done.returncode == 0 and "SUCCESS" in done.stdout
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert tested == {name for name, _ in _rule_queries()}


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses rule expressions: each panel query becomes a recording rule."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": _as_promql(expr)}
        for i, (_title, expr) in enumerate(_panel_queries())]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_metric_names_are_found_in_queries() -> None:
    assert _metric_names('sum by (smsc) (rate(smppd_x_total{a="b", c=~"$d"}[5m])) > 0.5') == \
        {"smppd_x_total"}
    assert _metric_names("histogram_quantile(0.95, sum by (le) (rate(a_bucket[1m])))") == \
        {"a_bucket"}


def test_every_metric_used_is_exported_by_a_running_daemon(start_daemon) -> None:  # type: ignore[no-untyped-def]
    from tests.ops.test_metrics import _get

    running = start_daemon()
    status, text = _get(running.daemon.http_port, "/metrics")
    assert status == 200
    exported: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            exported.add(name)
            if kind == "histogram":
                exported |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif line and not line.startswith("#"):
            exported.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    used = {name: where for where, expr in _panel_queries() + _rule_queries()
            for name in _metric_names(expr)}
    missing = {name: where for name, where in used.items()
               if name not in exported and name not in SYNTHETIC}
    assert not missing, missing
    assert len(used) >= 20, sorted(used)
