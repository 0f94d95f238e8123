"""Draw the dashboard's panels from a real Prometheus, for a look without Grafana.

Grafana itself is not packaged where smppd is built, so this renders
smppd-dashboard.json the plain way: every panel's queries go to Prometheus'
query_range API over the last minutes, and matplotlib draws them on the same grid.
It is a preview (no Grafana styling), but the queries, legends, units and layout
are the dashboard's own, so an empty or broken panel shows as one.

    pip install matplotlib
    python ops/grafana/render_preview.py --prometheus http://127.0.0.1:9090 \\
        --minutes 10 --out dashboard.png
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).with_name("smppd-dashboard.json")


def query_range(base: str, expr: str, start: float, end: float, step: float) -> list[Any]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{params}", timeout=30) as answer:
        body = json.load(answer)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return body["data"]["result"]


def legend(template: str, labels: dict[str, str]) -> str:
    for name, value in labels.items():
        template = template.replace("{{" + name + "}}", value)
    return template


def render(base: str, minutes: float, out: Path, rate_interval: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    board = json.loads(DASHBOARD.read_text())
    panels = board["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    figure = plt.figure(figsize=(24, rows * 0.42), dpi=60)
    figure.suptitle(f"{board['title']}: last {minutes:g} min from {base}", fontsize=18)
    end = time.time()
    start = end - minutes * 60
    step = max(1.0, minutes * 60 / 200)
    for panel in panels:
        grid = panel["gridPos"]
        if panel["type"] == "row":
            figure.text(grid["x"] / 24 + 0.005, 1 - (grid["y"] + 0.8) / rows * 0.97,
                        panel["title"], fontsize=16, weight="bold")
            continue
        axes = figure.add_axes((grid["x"] / 24 + 0.02, 1 - (grid["y"] + grid["h"]) / rows * 0.97
                                + 0.012, grid["w"] / 24 - 0.035, grid["h"] / rows * 0.97 - 0.04))
        unit = panel["fieldConfig"]["defaults"].get("unit", "")
        axes.set_title(f"{panel['title']}" + (f" ({unit})" if unit not in ("", "none") else ""),
                       fontsize=13, loc="left")
        drawn = 0
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", rate_interval) \
                .replace("$instance", ".*").replace("$smsc", ".*")
            for series in query_range(base, expr, start, end, step):
                times = [float(t) - end for t, _ in series["values"]]
                values = [float(v) for _, v in series["values"]]
                label = legend(target["legendFormat"], series["metric"])
                if panel["type"] == "stat":
                    axes.bar(label, values[-1])
                else:
                    axes.plot([t / 60 for t in times], values, label=label)
                drawn += 1
        if not drawn:
            axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes,
                      fontsize=14, color="grey")
        elif panel["type"] != "stat":
            axes.set_xlabel("minutes ago", fontsize=9)
            axes.legend(fontsize=8, loc="upper left")
        axes.tick_params(labelsize=8)
    figure.savefig(out)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate-interval", default="1m",
                        help="what Grafana's $__rate_interval stands for")
    parser.add_argument("--out", type=Path, default=Path("smppd-dashboard.png"))
    args = parser.parse_args()
    render(args.prometheus.rstrip("/"), args.minutes, args.out, args.rate_interval)


if __name__ == "__main__":
    main()
