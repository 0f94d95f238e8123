"""`smppd demo`: the whole daemon on the embedded default, shown end to end.

Starts the bundled fake SMSC and the daemon (SQLite in the output folder) in this
process, sends a few hundred messages of every kind over the HTTP API as a customer
would (GSM, GSM extension characters, Polish and Cyrillic text, emoji, long
multi-part texts), prints progress while receipts arrive, then a status summary,
and writes a CSV report read back from the database. Then inbound: a number is
reserved, a poll runs on it, the SMSC sends a few MO votes and messages, and the
poll's statistics are printed (the replies are in the report too).

The portal is on the daemon's port: the demo prints its address and a login (an
owner of the demo account) and one for the operator's console. With `--serve` it
keeps running after the report, so that a newcomer can click through what it sent,
until Ctrl-C.
"""

from __future__ import annotations

import csv
import http.client
import json
import random
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import select

from . import config
from . import status as st
from .store import database
from .store import schema as t

SAMPLES = [
    "Your code is {n}. It expires in 10 minutes.",
    "Promo: 20% off [today] {{only}} at Acme ~ see you! €5 voucher #{n}",
    "Zażółć gęślą jaźń – zamówienie {n} wysłane 📦",
    "Привет! Ваш заказ {n} готов 😀",
    "Reminder {n}: " + "your appointment is tomorrow at 09:00, reply YES to confirm. " * 4,
    "Długa wiadomość {n}: " + "ąęłńóśźż " * 30,
]
# The fake SMSC reports these destination prefixes as not delivered / expired.
RECEIPTS_BY_PREFIX = {"4860": "UNDELIV", "4869": "EXPIRED"}
PREFIXES = ["4850", "4851", "4860", "4869", "4853"]
TOKEN = "demo-token-0123456789abcdef"
POLL_NUMBER, SHARED_NUMBER = "+48500600700", "+48500600701"
# (sender, number, text, UCS-2): votes in several spellings, a long vote in parts, a
# refused one, a message to a prefix on a shared number, and one nobody holds.
MO_SAMPLES = [
    ("48600100201", POLL_NUMBER, "VOTE 5", False),
    ("48600100202", POLL_NUMBER, "vote: 5 świetne lody!", True),
    ("48600100203", POLL_NUMBER, "Vote 4", False),
    ("48600100204", POLL_NUMBER, "vote 1 " + "bo za słodkie " * 12, False),
    ("48600100205", POLL_NUMBER, "VOTE 9", False),
    ("48600100201", POLL_NUMBER, "vote 5", False),
    ("48600100206", SHARED_NUMBER, "Pizza: dwie margherity na 19:00", False),
    ("48600100207", SHARED_NUMBER, "who is this?", False),
]


DEMO_LOGIN, OPERATOR_LOGIN = "demo", "operator"


def _settings(folder: Path, smsc_port: int, operator_hash: str) -> config.Settings:
    return config.parse({
        "database": f"sqlite:///{folder / 'smppd.db'}",
        "http": {"listen": "127.0.0.1:0"},
        # This SMSC answers ids in hex and writes them in decimal in its receipts.
        "smscs": [{"name": "demo-smsc", "host": "127.0.0.1", "port": smsc_port,
                   "system_id": "demo", "password": "demo", "window": 50,
                   "id_format": {"response": "hex", "receipt": "dec"}}],
        "accounts": [{"name": "demo", "token": TOKEN, "balance": 1_000_000}],
        "inbound_numbers": [
            {"number": POLL_NUMBER, "kind": "dedicated", "price": {"reservation": 100,
                                                                   "monthly": 50}},
            {"number": SHARED_NUMBER, "kind": "shared"}],
        "operators": [{"login": OPERATOR_LOGIN, "password_hash": operator_hash}],
    }, "demo")


def _customer(port: int, count: int, out: TextIO, result: dict[str, Any]) -> None:
    """What a customer's system does: POST every message, keep the ids."""
    rng = random.Random(2026)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    ids = []
    for number in range(count):
        destination = f"+{PREFIXES[number % len(PREFIXES)]}{rng.randrange(10**7):07d}"
        body = {"to": destination, "from": "Acme", "text": SAMPLES[number % len(SAMPLES)]
                .format(n=number), "ref_id": f"demo-{number}"}
        conn.request("POST", "/v1/messages", json.dumps(body),
                     {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        response = conn.getresponse()
        answer = json.loads(response.read())
        if response.status != 201:
            print(f"smppd demo: message {number} refused: {answer}", file=out)
            continue
        ids.append(answer["id"])
    conn.close()
    result["ids"] = ids


def _counts(engine: Any) -> Counter[str]:
    from sqlalchemy import func

    with engine.connect() as conn:
        return Counter(dict(conn.execute(select(t.messages.c.status, func.count())
                                         .group_by(t.messages.c.status)).all()))


def run_demo(count: int = 300, output: Path | None = None, out: TextIO = sys.stdout,
             timeout: float = 120.0, serve: bool = False) -> int:
    """Run the demo in this process's reactor; returns a process exit code."""
    from twisted.internet import reactor

    from .daemon.app import Daemon
    from .fake_smsc import Behaviour, FakeSmsc
    from .portal import passwords

    output = output or Path("demo-output")
    output.mkdir(parents=True, exist_ok=True)  # before the reactor: a bad --dir fails fast
    for stale in ("smppd.db", "smppd.db-wal", "smppd.db-shm"):
        (output / stale).unlink(missing_ok=True)
    shutil.rmtree(output / "reports", ignore_errors=True)  # report files of earlier runs
    smsc = FakeSmsc(Behaviour(receipt_delay=0.2, receipt_status_by_prefix=RECEIPTS_BY_PREFIX,
                              id_format="hexpad", receipt_id_format="dec"))
    smsc_port = smsc.listen().getHost().port
    logins = {DEMO_LOGIN: passwords.one_time_password(),
              OPERATOR_LOGIN: passwords.one_time_password()}
    daemon = Daemon(_settings(output, smsc_port,
                              passwords.hash_password(logins[OPERATOR_LOGIN])), reactor)
    result: dict[str, Any] = {"code": 0}
    started = time.monotonic()

    def shut_down() -> None:
        from twisted.internet.threads import blockingCallFromThread

        blockingCallFromThread(reactor, daemon.stop)
        reactor.callFromThread(reactor.stop)

    def drive() -> None:
        try:
            _demo_user(daemon, logins[DEMO_LOGIN])
            _drive(daemon, smsc, output / "smppd.db", count, out, result, started, timeout)
        except Exception as exc:  # the demo must end, and say why
            print(f"smppd demo: {exc}", file=out)
            result["code"] = 1
        if serve and result["code"] == 0:
            _report(output, out)
            _print_reports(result.get("reports", []), out)
            result["reported"] = True
            print(f"\nserving the portal at http://127.0.0.1:{daemon.http_port}/portal/ "
                  "until Ctrl-C", file=out, flush=True)
            return
        shut_down()

    def started_ok(_: Any) -> None:
        print(f"smppd demo: fake SMSC on 127.0.0.1:{smsc_port}, daemon API on "
              f"127.0.0.1:{daemon.http_port}, database {output / 'smppd.db'}", file=out)
        print(f"  portal:  http://127.0.0.1:{daemon.http_port}/portal/  login "
              f"{DEMO_LOGIN}, password {logins[DEMO_LOGIN]}", file=out)
        print(f"  console: http://127.0.0.1:{daemon.http_port}/ops/  login "
              f"{OPERATOR_LOGIN}, password {logins[OPERATOR_LOGIN]}", file=out, flush=True)
        threading.Thread(target=drive, name="demo-customer", daemon=True).start()

    if serve:  # Ctrl-C or a TERM stops the daemon cleanly
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: threading.Thread(target=shut_down,
                                                              daemon=True).start())

    def failed(failure: Any) -> None:
        print(f"smppd demo: the daemon did not start: {failure.getErrorMessage()}", file=out)
        result["code"] = 1
        reactor.stop()

    reactor.callWhenRunning(lambda: daemon.start().addCallbacks(started_ok, failed))
    reactor.run(installSignalHandlers=False)
    if result["code"] == 0 and not result.get("reported"):
        _report(output, out)
        _print_reports(result.get("reports", []), out)
    return result["code"]


def _print_reports(saved: list[tuple[str, Path]], out: TextIO) -> None:
    for fmt, path in saved:
        if fmt == "csv":
            print("\ndaily report (from the API, days in UTC):", file=out)
            with path.open(encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
            print(f"{'date':<12} {'messages':>8} {'delivered':>9} {'undelivered':>11} "
                  f"{'expired':>7} {'points':>6}", file=out)
            for row in rows:
                print(f"{row['date']:<12} {row['messages']:>8} {row['delivered']:>9} "
                      f"{row['undelivered']:>11} {row['expired']:>7} {row['points']:>6}",
                      file=out)
            print(f"daily report written: {path}", file=out)
        else:
            print(f"PDF summary written:  {path}", file=out)


def _demo_user(daemon: Any, password: str) -> None:
    """The demo account's owner, to sign in to the portal with."""
    from twisted.internet import reactor
    from twisted.internet.threads import blockingCallFromThread

    from .portal import passwords
    from .store import portal_ops

    account = daemon.accounts["demo"]
    blockingCallFromThread(reactor, daemon.writer.put, portal_ops.CreateUser(
        account.id, DEMO_LOGIN, None, passwords.hash_password(password), "owner", False, "en",
        "demo"))


def _drive(daemon: Any, smsc: Any, db: Path, count: int, out: TextIO, result: dict[str, Any],
           started: float, timeout: float) -> None:
    deadline = started + timeout
    while not daemon.readiness()[0]:
        if time.monotonic() > deadline:
            raise RuntimeError("the daemon did not bind to the fake SMSC")
        time.sleep(0.05)
    _customer(daemon.http_port, count, out, result)
    accepted = len(result["ids"])
    print(f"  {time.monotonic() - started:5.1f} s  {accepted} messages accepted over HTTP",
          file=out)
    engine = database.make_engine(f"sqlite:///{db}")
    try:
        while True:
            counts = _counts(engine)
            done = sum(n for status, n in counts.items() if status in st.FINAL)
            summary = ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
            print(f"  {time.monotonic() - started:5.1f} s  final {done:4d}/{accepted}  "
                  f"[{summary}]", file=out)
            if done >= accepted:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"gave up after {timeout:g} s")
            time.sleep(0.5)
    finally:
        engine.dispose()
    _inbound(daemon, smsc, started, out)
    _settled(db, deadline)  # the votes' replies too, so the report agrees with the table
    result["reports"] = _api_reports(daemon.http_port, db.parent)


def _settled(db: Path, deadline: float) -> None:
    """Wait (up to the demo's deadline) until every message has its final status."""
    engine = database.make_engine(f"sqlite:///{db}")
    try:
        while any(status not in st.FINAL for status in _counts(engine)):
            if time.monotonic() > deadline:
                return  # the report then shows what is still on its way
            time.sleep(0.2)
    finally:
        engine.dispose()


def _api(port: int, method: str, path: str, body: Any = None) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None,
                     {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        response = conn.getresponse()
        answer = json.loads(response.read())
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {answer}")
        return answer
    finally:
        conn.close()


def _inbound(daemon: Any, smsc: Any, started: float, out: TextIO) -> None:
    """A number reserved, a poll on it, MO votes injected by the SMSC, the stats."""
    from twisted.internet import reactor
    from twisted.internet.threads import blockingCallFromThread

    port = daemon.http_port
    _api(port, "POST", "/v1/inbound/numbers", {"number": POLL_NUMBER})
    _api(port, "POST", "/v1/inbound/numbers", {"number": SHARED_NUMBER, "prefix": "Pizza"})
    now = time.time()
    poll = _api(port, "POST", "/v1/polls", {
        "name": "Ice cream", "number": POLL_NUMBER, "prefix": "VOTE", "from": "Acme",
        "starts_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60)),
        "ends_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600)),
        "options": [{"keyword": str(n)} for n in range(1, 6)],
        "replies": {"default": "Thanks for your vote ({keyword})!",
                    "unknown_option": "Please answer VOTE 1 to VOTE 5",
                    "over_limit": "You have voted already"},
        "limit": {"votes": 1}})
    for sender, number, text, ucs2 in MO_SAMPLES:
        from .protocol.text import Encoding

        blockingCallFromThread(reactor, smsc.inject_mo, sender, number[1:], text,
                               encoding=Encoding.UCS2 if ucs2 else None)
    votes = sum(1 for _, number, _, _ in MO_SAMPLES if number == POLL_NUMBER)
    deadline = time.monotonic() + 30
    while (stats := _api(port, "GET", f"/v1/polls/{poll['id']}/stats"))["total"] < votes:
        if time.monotonic() > deadline:
            raise RuntimeError("the votes were not all counted")
        time.sleep(0.05)
    items = _api(port, "GET", "/v1/inbound")["items"]
    print(f"  {time.monotonic() - started:5.1f} s  {len(MO_SAMPLES)} MO injected by the SMSC: "
          f"{len(items)} routed to the account, "
          f"{len(MO_SAMPLES) - len(items)} unassigned", file=out)
    print(f"\npoll {stats['name']!r}: {stats['accepted']} accepted of {stats['total']}",
          file=out)
    for option in stats["options"]:
        print(f"  {option['keyword']:<4} {option['votes']:>3}  {option['percent']:5.1f}%",
              file=out)
    print("  refused: " + ", ".join(f"{reason} {n}" for reason, n in stats["refused"].items()
                                    if n), file=out)



def _api_reports(port: int, output: Path) -> list[tuple[str, Path]]:
    """As a customer would: ask the API for today's daily report (CSV) and its printed
    summary (PDF), and save both next to the demo's CSV."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    saved = []
    for fmt, name in (("csv", "demo-daily.csv"), ("pdf", "demo-summary.pdf")):
        conn.request("POST", "/v1/reports", json.dumps(
            {"type": "daily", "format": fmt, "period": "today", "name": "Demo"}), headers)
        response = conn.getresponse()
        report = json.loads(response.read())
        if response.status != 201 or report.get("state") != "ready":
            raise RuntimeError(f"the {fmt} report was not made: {report}")
        conn.request("GET", f"/v1/reports/{report['id']}/file", headers=headers)
        response = conn.getresponse()
        (output / name).write_bytes(response.read())
        saved.append((fmt, output / name))
    conn.close()
    return saved


def _report(output: Path, out: TextIO) -> None:
    engine = database.make_engine(f"sqlite:///{output / 'smppd.db'}")
    report = output / "demo-report.csv"
    m, p = t.messages.c, t.parts.c
    with engine.connect() as conn, report.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "ref_id", "to", "encoding", "parts", "points", "status",
                         "smsc_ids", "created_at", "final_at", "text"])
        ids: dict[str, list[str]] = {}
        for message_id, smsc_id in conn.execute(select(p.message_id, p.smsc_id)
                                                .order_by(p.message_id, p.part_no)):
            ids.setdefault(message_id, []).append(smsc_id or "")
        rows = conn.execute(select(m.id, m.ref_id, m.recipient, m.encoding, m.parts, m.points,
                                   m.status, m.created_at, m.final_at, m.text)
                            .order_by(m.id)).all()
        for row in rows:
            writer.writerow([row.id, row.ref_id, "+" + row.recipient, row.encoding, row.parts,
                             row.points, row.status, " ".join(ids.get(row.id, [])),
                             row.created_at, row.final_at, row.text])
    engine.dispose()
    statuses = Counter(row.status for row in rows)
    encodings = Counter(row.encoding for row in rows)
    print("\nstatus        messages", file=out)
    for name in st.ALL:
        if statuses.get(name):
            print(f"{name:<13} {statuses[name]:>8}", file=out)
    print(f"{'total':<13} {len(rows):>8}   ({sum(r.parts for r in rows)} parts; "
          + ", ".join(f"{e} {n}" for e, n in sorted(encodings.items())) + ")", file=out)
    print(f"report written: {report}", file=out)
