"""Throughput control: does a bind configured for N submit_sm/s hold N every second,
and what does the daemon's CPU cost while it is throttled, and while it idles?

The fake SMSC (its own process) counts the submits it receives per wall-clock second
and sends a receipt for each; the daemon (`smppd run`, SQLite, window 100,
`throughput: N`) sends one job of N x (seconds + 5) messages. Prints the count of
every full second after the first two (start-up) while the job runs, the daemon's
CPU seconds per 1,000 messages sent at that rate, and its CPU seconds over an idle
minute afterwards (bound, nothing to send); asserts nothing.

    python bench/rate.py [--rate 100] [--seconds 30] [--idle 60] [--py-spy FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

from e2e import TOKEN, free_port, wait_port  # bench/ is the working directory
from procstat import Tree, cpu_ns, with_children

COUNTER = r'''
import json, sys, time
from collections import Counter
from twisted.internet import reactor
from smppd.fake_smsc import Behaviour, FakeSmsc
seconds = Counter()
smsc = FakeSmsc(Behaviour(receipts=True))
class Recorder(list):
    def append(self, item):
        seconds[int(time.time())] += 1
        super().append(item)
smsc.submits = Recorder()
smsc.listen(int(sys.argv[1]), "127.0.0.1")
def dump():
    with open(sys.argv[2], "w") as out:
        out.write(json.dumps(seconds))
    reactor.callLater(0.5, dump)
reactor.callLater(0.5, dump)
reactor.run()
'''


def _batches(http_port: int) -> float:
    """Store transactions committed so far (from /metrics)."""
    request = urllib.request.Request(f"http://127.0.0.1:{http_port}/metrics",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    text = urllib.request.urlopen(request, timeout=10).read().decode()
    return next((float(line.split()[-1]) for line in text.splitlines()
                 if line.startswith("smppd_store_batch_seconds_count")), 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--idle", type=int, default=60, help="idle seconds measured")
    parser.add_argument("--py-spy", metavar="FILE",
                        help="record the daemon while it sends (py-spy, collapsed stacks)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="smppd-rate-"))
    smsc_port, http_port = free_port(), free_port()
    counts_file = folder / "counts"
    config = folder / "smppd.yaml"
    config.write_text(f"""
database: sqlite:///{folder / 'smppd.db'}
log_level: warning
http: {{listen: 127.0.0.1:{http_port}}}
smscs:
  - {{name: fake, host: 127.0.0.1, port: {smsc_port}, system_id: b, password: b,
     window: 100, throughput: {args.rate}}}
accounts:
  - {{name: bench, token: {TOKEN}, balance: 100000000}}
""")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    smsc = subprocess.Popen([sys.executable, "-c", COUNTER, str(smsc_port), str(counts_file)],
                            env=env)
    wait_port(smsc_port)
    daemon = subprocess.Popen([sys.executable, "-m", "smppd.cli", "run", "--config",
                               str(config)], env=env)
    try:
        wait_port(http_port)
        time.sleep(0.5)
        total = args.rate * (args.seconds + 5)
        body = json.dumps({"name": "rate", "from": "Bench", "text": "rate test",
                           "recipients": [f"+4850{i:07d}" for i in range(total)]}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{http_port}/v1/jobs", body,
            {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=600) as answer:
            job = json.loads(answer.read())
        print(f"job {job['id']}: {job['messages']} messages at {args.rate}/s")
        process = Tree(daemon.pid)  # with its writer process
        spy = None
        if args.py_spy:
            spy = subprocess.Popen(["py-spy", "record", "-p", str(daemon.pid), "-o",
                                    args.py_spy, "--format", "raw", "--gil", "-d",
                                    str(args.seconds)])
        time.sleep(2)  # past the job's creation
        cpu_start = sum(process.cpu_times()[:2])
        batches_start = _batches(http_port)
        time.sleep(args.seconds)
        cpu_sending = sum(process.cpu_times()[:2]) - cpu_start
        batches = _batches(http_port) - batches_start
        if spy is not None:
            spy.wait(60)
        time.sleep(total / args.rate - args.seconds + 3)  # the rest of the job drains
        cpu_idle_start = cpu_ns(with_children([daemon.pid]))
        time.sleep(args.idle)
        cpu_idle = (cpu_ns(with_children([daemon.pid])) - cpu_idle_start) / 1e9
    finally:
        daemon.terminate()
        daemon.wait(60)
        smsc.terminate()
        smsc.wait(10)
    seconds = Counter({int(k): v for k, v in json.loads(counts_file.read_text()).items()})
    ordered = sorted(seconds)
    steady = ordered[2:2 + args.seconds]
    values = [seconds[s] for s in steady]
    print(f"submit_sm per second at the SMSC over {len(values)} s after the first two: "
          + " ".join(str(v) for v in values))
    inside = sum(1 for v in values if args.rate - 1 <= v <= args.rate + 1)
    print(f"min {min(values)}, max {max(values)}, "
          f"{inside}/{len(values)} seconds within {args.rate}±1")
    sent = args.rate * args.seconds
    print(f"daemon CPU while sending at {args.rate}/s: {cpu_sending:.2f} s over "
          f"{args.seconds} s = {cpu_sending / sent * 1000:.3f} s per 1,000 messages "
          "(submit, response, receipt)")
    print(f"store transactions while sending: {batches / args.seconds:.1f} per second "
          f"({sent * 3 / max(batches, 1):.1f} operations each, about)")
    print(f"daemon CPU while idle (bound, nothing to send): {cpu_idle:.4f} s over "
          f"{args.idle} s = {cpu_idle * 60 / args.idle:.4f} s per idle minute")


if __name__ == "__main__":
    main()
