"""An idle bound gateway, smppd against Kannel: what does doing nothing cost?

Uses ../shared/peer-bench (its SMSC sink, its Kannel configuration and smppd's
configuration from bench_smppd.py), so both gateways are bound to the same sink with
the same enquire_link interval. Alternates Kannel and smppd; for each, waits for the
bind, lets it settle, then measures over `--seconds`:

- CPU time from /proc/PID/task/*/schedstat (nanoseconds, summed over threads: see
  procstat.py);
- wake-ups: voluntary context switches over all threads.

Kannel counts bearerbox + smsbox. Prints per pair and the medians; asserts nothing.

    python bench/idle.py [--pairs 2] [--seconds 60] [--settle 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

PEER = Path(__file__).resolve().parents[2] / "shared" / "peer-bench"
sys.path.insert(0, str(PEER))
import bench_kannel  # noqa: E402
import bench_smppd  # noqa: E402
import harness as H  # noqa: E402
from procstat import cpu_ns, wakeups, with_children  # noqa: E402  (bench/ is the working directory)


def measure(pids: list[int], seconds: float) -> tuple[float, float]:
    """(CPU s per minute, wake-ups per minute) over `seconds` of idling."""
    pids = with_children(pids)  # smppd's writer process is the daemon's too
    cpu0, wake0 = cpu_ns(pids), wakeups(pids)
    time.sleep(seconds)
    cpu1, wake1 = cpu_ns(pids), wakeups(pids)
    per_minute = 60.0 / seconds
    return (cpu1 - cpu0) / 1e9 * per_minute, (wake1 - wake0) * per_minute


def _bound(sink_log: Path) -> bool:
    return any(r.get("event") == "bind" for r in H.read_jsonl(sink_log))


def _start_sink(rec, run: Path):
    sink = H.start(rec, [H.PY, PEER / "sink.py", "--port", H.SINK_PORT, "--log", "sink.jsonl",
                         "--quiet"], run, "sink.out")
    H.wait_until(lambda: H.port_open(H.SINK_PORT), 10)
    return sink


def run_kannel(run: Path, args) -> tuple[float, float]:
    run.mkdir(parents=True)
    rec = H.Recorder(run / "commands.txt")
    conf = argparse.Namespace(window=100, loglevel=1, max_pending_requests=512,
                              throughput=None, msg_id_type=None)
    bench_kannel.build_conf(conf, run)
    procs = {"sink": _start_sink(rec, run)}
    try:
        procs["bearerbox"] = H.start(rec, ["bearerbox", "-v", "2", "kannel.conf"], run,
                                     "bearerbox.out")
        H.wait_until(lambda: H.port_open(13001), 20)
        procs["smsbox"] = H.start(rec, ["smsbox", "-v", "2", "kannel.conf"], run, "smsbox.out")
        if not H.wait_until(lambda: H.port_open(13013) and _bound(run / "sink.jsonl"), 30):
            raise SystemExit(f"kannel did not bind; see {run}")
        time.sleep(args.settle)
        return measure([procs["bearerbox"].pid, procs["smsbox"].pid], args.seconds)
    finally:
        for name in ("smsbox", "bearerbox", "sink"):
            H.stop(procs.get(name))


def run_smppd(run: Path, args) -> tuple[float, float]:
    run.mkdir(parents=True)
    rec = H.Recorder(run / "commands.txt")
    bench_smppd.build_conf(argparse.Namespace(throughput=None, window=100), run)
    procs = {"sink": _start_sink(rec, run)}
    try:
        procs["smppd"] = H.start(rec, [bench_smppd.SMPPD, "run", "--config", "smppd.yaml"], run,
                                 "smppd.out")
        if not H.wait_until(lambda: _bound(run / "sink.jsonl"), 30):
            raise SystemExit(f"smppd did not bind; see {run}")
        time.sleep(args.settle)
        return measure([procs["smppd"].pid], args.seconds)
    finally:
        for name in ("smppd", "sink"):
            H.stop(procs.get(name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0, help="idle time measured")
    parser.add_argument("--settle", type=float, default=20.0,
                        help="seconds after the bind before measuring (start-up work ends)")
    parser.add_argument("--only", choices=("kannel", "smppd"), help="run one gateway only")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="smppd-idle-"))
    results: dict[str, list[tuple[float, float]]] = {"kannel": [], "smppd": []}
    runners = {"kannel": run_kannel, "smppd": run_smppd}
    order = [args.only] if args.only else ["kannel", "smppd"]
    for pair in range(1, args.pairs + 1):
        for name in order:
            cpu, wake = runners[name](base / f"{name}-{pair}", args)
            results[name].append((cpu, wake))
            print(f"pair {pair} {name:6}: {cpu:.4f} CPU s per idle minute, "
                  f"{wake:.0f} wake-ups per minute", flush=True)
    for name in order:
        if results[name]:
            print(f"median {name:6}: "
                  f"{statistics.median(c for c, _ in results[name]):.4f} CPU s per idle minute, "
                  f"{statistics.median(w for _, w in results[name]):.0f} wake-ups per minute")
    if not args.only:
        pairs = zip(results["kannel"], results["smppd"], strict=True)
        ratios = [mine[0] / theirs[0] for theirs, mine in pairs if theirs[0]]
        print("smppd / Kannel per pair: " + ", ".join(f"{r:.2f}" for r in ratios))
    print(f"run folders: {base}")


if __name__ == "__main__":
    main()
