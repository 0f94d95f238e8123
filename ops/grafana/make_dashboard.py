"""Writes smppd-dashboard.json, the Grafana dashboard for smppd's metrics.

The JSON is generated rather than edited by hand so that every panel has the
same shape (datasource, legend, units) and the grid never overlaps; the suite
checks that the committed JSON is what this script writes, that every query is
valid PromQL (promtool) and that every metric it reads is one smppd exports.

    python ops/grafana/make_dashboard.py      # rewrites the JSON next to this file
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
SEL = 'instance=~"$instance"'
SMSC = f'{SEL}, smsc=~"$smsc"'
RATE = "$__rate_interval"
WIDTH = 24


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref,
            "range": True}


def _panel(title: str, kind: str, targets: list[tuple[str, str]], unit: str,
           description: str, width: int = 12, height: int = 8,
           extra: dict[str, Any] | None = None) -> dict[str, Any]:
    panel: dict[str, Any] = {
        "title": title, "type": kind, "description": description, "datasource": DATASOURCE,
        "targets": [_target(expr, legend, chr(ord("A") + i))
                    for i, (expr, legend) in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"},
                    "tooltip": {"mode": "multi"}},
        "gridPos": {"w": width, "h": height},
    }
    if kind == "stat":
        panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]},
                            "colorMode": "background", "graphMode": "none"}
    panel.update(extra or {})
    return panel


def _row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": [],
            "gridPos": {"w": WIDTH, "h": 1}}


def _bound_stat() -> dict[str, Any]:
    return _panel(
        "SMSCs bound", "stat", [(f"smppd_smsc_bound{{{SMSC}}}", "{{smsc}}")], "none",
        "1 when every transmitting bind of the SMSC is up (alert: SmppdSmscUnbound).", 8, 6,
        {"fieldConfig": {"defaults": {"unit": "none", "mappings": [
            {"type": "value", "options": {"0": {"text": "DOWN", "color": "red"},
                                          "1": {"text": "bound", "color": "green"}}}],
            "thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": None},
                                                         {"color": "green", "value": 1}]}},
            "overrides": []}})


PANELS: list[dict[str, Any]] = [
    _row("Binds"),
    _bound_stat(),
    _panel("Bind transitions", "timeseries",
           [(f"sum by (smsc, direction) (increase(smppd_bind_transitions_total{{{SMSC}}}"
             f"[{RATE}]))", "{{smsc}} {{direction}}")], "none",
           "Binds coming up and going down; a flapping link shows as both.", 8, 6),
    _panel("Configuration", "stat",
           [(f"smppd_config_last_reload_successful{{{SEL}}}", "{{instance}} reload ok"),
            (f"count by (version) (smppd_build_info{{{SEL}}})", "version {{version}}")],
           "none", "0 when the last reload was refused (alert: SmppdReloadFailed), and the "
           "running versions.", 8, 6),
    _row("Traffic"),
    _panel("Submit rate", "timeseries",
           [(f"sum by (smsc) (rate(smppd_pdus_sent_total{{{SMSC}, command=\"submit_sm\"}}"
             f"[{RATE}]))", "{{smsc}} submit_sm"),
            (f"sum by (smsc) (rate(smppd_pdus_received_total{{{SMSC}, "
             f"command=\"submit_sm_resp\", status=\"ESME_ROK\"}}[{RATE}]))", "{{smsc}} accepted")],
           "reqps", "submit_sm sent per second and those the SMSC accepted."),
    _panel("Throttling", "timeseries",
           [(f"sum by (smsc) (rate(smppd_throttled_total{{{SMSC}}}[{RATE}]))",
             "{{smsc}} ESME_RTHROTTLED"),
            (f"sum by (smsc) (rate(smppd_pdus_received_total{{{SMSC}, "
             f"command=\"submit_sm_resp\", status=\"ESME_RMSGQFUL\"}}[{RATE}]))",
             "{{smsc}} ESME_RMSGQFUL")],
           "reqps", "Answers that slow the bind down (alert: SmppdThrottlingSustained)."),
    _panel("Unknown outcomes", "timeseries",
           [(f"sum by (smsc) (increase(smppd_submit_unknown_total{{{SMSC}}}[{RATE}]))",
             "{{smsc}}")], "none",
           "Submits with no response in time: charged, not resent "
           "(alert: SmppdUnknownOutcomesRising)."),
    _panel("Receipts by status", "timeseries",
           [(f"sum by (status) (rate(smppd_receipts_total{{{SMSC}}}[{RATE}]))", "{{status}}"),
            (f"sum (rate(smppd_receipts_unparsable_total{{{SMSC}}}[{RATE}]))", "unparsable")],
           "reqps", "Delivery receipts per second by the status they set."),
    _panel("API", "timeseries",
           [(f"sum by (route, status_class) (rate(smppd_http_requests_total{{{SEL}}}"
             f"[{RATE}]))", "{{route}} {{status_class}}"),
            (f"sum by (result) (rate(smppd_api_messages_total{{{SEL}}}[{RATE}]))",
             "POST /v1/messages {{result}}")],
           "reqps", "HTTP requests by route template and status class; messages by result.",
           WIDTH),
    _row("Queues"),
    _panel("Queue depth", "timeseries",
           [(f"sum by (instance) (smppd_queue_depth{{{SEL}}})", "{{instance}} queued in memory"),
            (f"sum by (instance) (smppd_parts_unsettled{{{SEL}}})",
             "{{instance}} awaiting an outcome")],
           "none", "Messages waiting to be sent, and parts sent whose outcome is not yet "
           "committed."),
    _panel("Window in use", "timeseries",
           [(f"sum by (smsc) (smppd_window_in_use{{{SMSC}}})", "{{smsc}} in use"),
            (f"sum by (smsc) (smppd_window_capacity{{{SMSC}}})", "{{smsc}} capacity")],
           "none", "submit_sm awaiting a response, next to the window allowed."),
    _panel("Store backlog", "timeseries",
           [(f"sum by (instance) (smppd_store_backlog{{{SEL}}})", "{{instance}} backlog"),
            (f"sum by (instance) (rate(smppd_store_operations_total{{{SEL}}}[{RATE}]))",
             "{{instance}} written/s")],
           "none", "Operations waiting for the database writer (alert: "
           "SmppdStoreBacklogGrowing) and the write rate.", WIDTH),
    _row("Latency"),
    _panel("Submit round trip", "timeseries",
           [(f"histogram_quantile({q}, sum by (le, smsc) (rate("
             f"smppd_submit_duration_seconds_bucket{{{SMSC}}}[{RATE}])))",
             f"{{{{smsc}}}} p{int(float(q) * 100)}") for q in ("0.5", "0.95", "0.99")],
           "s", "submit_sm to submit_sm_resp, by SMSC."),
    _panel("Store batch time", "timeseries",
           [(f"histogram_quantile({q}, sum by (le, instance) (rate("
             f"smppd_store_batch_seconds_bucket{{{SEL}}}[{RATE}])))",
             f"{{{{instance}}}} p{int(float(q) * 100)}") for q in ("0.5", "0.95")],
           "s", "One write-behind batch, one transaction."),
    _row("Process"),
    _panel("CPU", "timeseries",
           [(f"rate(process_cpu_seconds_total{{{SEL}}}[{RATE}])", "{{instance}}")],
           "percentunit", "CPU seconds per second of the smppd process.", 8),
    _panel("Memory", "timeseries",
           [(f"process_resident_memory_bytes{{{SEL}}}", "{{instance}} RSS")], "bytes",
           "Resident memory of the smppd process.", 8),
    _panel("Open files", "timeseries",
           [(f"process_open_fds{{{SEL}}}", "{{instance}} open"),
            (f"process_max_fds{{{SEL}}}", "{{instance}} limit")], "none",
           "File descriptors (sockets, the database) against LimitNOFILE.", 8),
]


def _layout(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Left to right, top to bottom: a panel that does not fit starts a new line."""
    x = y = line_height = 0
    for number, panel in enumerate(panels, start=1):
        grid = panel["gridPos"]
        if x + grid["w"] > WIDTH or panel["type"] == "row":
            x, y, line_height = 0, y + line_height, 0
        grid.update(x=x, y=y)
        panel["id"] = number
        x += grid["w"]
        line_height = max(line_height, grid["h"])
        if panel["type"] == "row":
            x, y, line_height = 0, y + grid["h"], 0
    return panels


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "query", "datasource": DATASOURCE,
            "definition": query, "query": {"query": query, "refId": name},
            "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
            "current": {"text": "All", "value": "$__all"}, "sort": 1}


def dashboard() -> dict[str, Any]:
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                      "pluginId": "prometheus", "pluginName": "Prometheus"}],
        "__requires": [{"type": "grafana", "id": "grafana", "version": "10.0.0"},
                       {"type": "datasource", "id": "prometheus", "version": "1.0.0"}],
        "title": "smppd", "uid": "smppd-overview", "description":
            "smppd: binds, traffic, throttling, receipts, queues, store and latency.",
        "tags": ["smppd", "sms", "smpp"], "timezone": "utc", "schemaVersion": 38,
        "version": 1, "editable": True, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            _variable("instance", "Instance", "label_values(smppd_build_info, instance)"),
            _variable("smsc", "SMSC", 'label_values(smppd_smsc_bound{instance=~"$instance"}, '
                                      "smsc)")]},
        "annotations": {"list": []},
        "panels": _layout([json.loads(json.dumps(p)) for p in PANELS]),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    target = Path(__file__).with_name("smppd-dashboard.json")
    target.write_text(render())
    print(f"wrote {target}", file=sys.stderr)
