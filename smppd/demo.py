"""`smppd demo`: the protocol core end to end against the bundled fake SMSC.

Starts the fake SMSC on a free 127.0.0.1 port, binds one transceiver, sends a mix of
texts (GSM, GSM extension characters, UCS-2 with emoji, long multi-part ones) under
the window, follows every part to its receipt, prints progress and a status
summary, and writes a per-message CSV report. Until the store lands (issue 3) this
is the whole job; the daemon will take over the same path.
"""

from __future__ import annotations

import csv
import random
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from . import status as st
from .protocol import constants as c
from .protocol import receipts
from .protocol.connector import Connector, ConnectorConfig, ConnectorListener, Link
from .protocol.message_id import IdPolicy
from .protocol.segmentation import ConcatReferences, split
from .protocol.session import SessionConfig

SAMPLES = [
    "Your code is {n}. It expires in 10 minutes.",
    "Promo: 20% off [today] {{only}} at Acme ~ see you! €5 voucher #{n}",
    "Zażółć gęślą jaźń – zamówienie {n} wysłane 📦",
    "Привет! Ваш заказ {n} готов 😀",
    "Reminder {n}: " + "your appointment is tomorrow at 09:00, reply YES to confirm. " * 4,
    "Długa wiadomość {n}: " + "ąęłńóśźż " * 30,
]
DESTINATION_PREFIXES = {"4860": "UNDELIV", "4869": "EXPIRED"}


@dataclass
class DemoMessage:
    number: int
    destination: str
    text: str
    encoding: str
    parts: list[dict[str, Any]]
    part_status: list[str] = field(default_factory=list)
    smsc_ids: list[str | None] = field(default_factory=list)

    @property
    def status(self) -> str:
        return st.combine_parts(self.part_status)


class DemoListener(ConnectorListener):
    def __init__(self, messages: list[DemoMessage], policy: IdPolicy) -> None:
        self.messages = messages
        self.policy = policy
        self.by_key: dict[str, tuple[DemoMessage, int]] = {}
        self.early: dict[str, str] = {}  # receipts that came before their response
        self.receipts = 0
        self.unmatched = 0

    def submit_result(self, link: Link, event: Any) -> None:
        message, index = event.token
        if event.status != c.ESME_ROK:
            message.part_status[index] = st.REJECTED
            return
        message.smsc_ids[index] = event.message_id
        message.part_status[index] = st.merge(message.part_status[index], st.SUBMITTED)
        if event.message_id:
            key = self.policy.from_response(event.message_id)
            self.by_key[key] = (message, index)
            if key in self.early:
                self._apply(message, index, self.early.pop(key))

    def submit_unknown(self, link: Link, event: Any) -> None:
        message, index = event.token
        message.part_status[index] = st.merge(message.part_status[index], st.UNKNOWN)

    def deliver(self, link: Link, event: Any) -> int:
        if not receipts.is_receipt(event.pdu):
            return 0
        try:
            receipt = receipts.parse(event.pdu)
        except receipts.ReceiptError:
            self.unmatched += 1
            return 0
        self.receipts += 1
        key = self.policy.from_receipt(receipt.message_id)
        found = self.by_key.get(key)
        if found is None:
            self.early[key] = receipt.status
        else:
            self._apply(found[0], found[1], receipt.status)
        return 0

    @staticmethod
    def _apply(message: DemoMessage, index: int, status: str) -> None:
        message.part_status[index] = st.merge(message.part_status[index], status)


def build_messages(count: int, rng: random.Random) -> list[DemoMessage]:
    refs = ConcatReferences(rng=rng)
    messages = []
    prefixes = ["4850", "4851", "4860", "4869", "4853"]
    for number in range(count):
        text = SAMPLES[number % len(SAMPLES)].format(n=number)
        destination = f"{prefixes[number % len(prefixes)]}{rng.randrange(10**7):07d}"
        info, parts = split(text, reference=lambda d=destination: refs.next(d))
        messages.append(DemoMessage(number, destination, text, info.encoding.value, parts,
                                    [st.QUEUED] * len(parts), [None] * len(parts)))
    return messages


def run_demo(count: int = 300, output: Path | None = None, out: TextIO = sys.stdout,
             timeout: float = 60.0) -> int:
    """Run the demo in this process's reactor; returns a process exit code."""
    from twisted.internet import reactor, task

    from .fake_smsc import Behaviour, FakeSmsc

    output = output or Path("demo-output")
    output.mkdir(parents=True, exist_ok=True)  # before the reactor: a bad --dir fails fast
    smsc = FakeSmsc(Behaviour(receipt_delay=0.2, receipt_status_by_prefix=DESTINATION_PREFIXES,
                              id_format="hexpad", receipt_id_format="dec"))
    port = smsc.listen()
    messages = build_messages(count, random.Random(2026))
    policy = IdPolicy.from_kannel(1)  # this SMSC answers hex and reports decimal
    listener = DemoListener(messages, policy)
    config = ConnectorConfig("demo-smsc", "127.0.0.1", port.getHost().port,
                             SessionConfig("demo", "demo", window=20))
    connector = Connector(config, listener, reactor)
    queue = deque((message, index) for message in messages for index in range(len(message.parts)))
    started = time.monotonic()
    result = {"code": 0}
    print(f"smppd demo: fake SMSC on 127.0.0.1:{port.getHost().port}, {count} messages "
          f"({len(queue)} parts)", file=out)

    def pump() -> None:
        while queue and connector.window_available > 0:
            message, index = queue.popleft()
            fields = dict(message.parts[index], source_addr="Acme",
                          source_addr_ton=c.TON_ALPHANUMERIC, destination_addr=message.destination,
                          dest_addr_ton=c.TON_INTERNATIONAL, dest_addr_npi=c.NPI_ISDN,
                          registered_delivery=c.REGISTERED_DELIVERY_FINAL)
            connector.submit(fields, (message, index), flush=False)
        connector.flush()

    last_report = [0.0]

    def progress() -> None:
        pump()
        counts = Counter(m.status for m in messages)
        done = sum(n for s, n in counts.items() if s in st.FINAL)
        now = time.monotonic()
        if now - last_report[0] >= 0.5 or done == count:
            last_report[0] = now
            summary = ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
            print(f"  {now - started:5.1f} s  sent {len(smsc.submits):4d} parts, "
                  f"receipts {listener.receipts:4d}  [{summary}]", file=out)
        if done == count or now - started > timeout:
            if done != count:
                print(f"smppd demo: gave up after {timeout:g} s", file=out)
                result["code"] = 1
            loop.stop()
            connector.stop().addBoth(lambda _: port.stopListening()).addBoth(
                lambda _: reactor.stop())

    loop = task.LoopingCall(progress)
    connector.start()
    loop.start(0.05, now=False)
    reactor.run()

    report = output / "demo-report.csv"
    with report.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["message", "destination", "encoding", "parts", "status", "smsc_ids",
                         "text"])
        for message in messages:
            writer.writerow([message.number, message.destination, message.encoding,
                             len(message.parts), message.status,
                             " ".join(i or "" for i in message.smsc_ids), message.text])
    counts = Counter(m.status for m in messages)
    encodings = Counter(m.encoding for m in messages)
    parts = sum(len(m.parts) for m in messages)
    print("\nstatus        messages", file=out)
    for name in st.ALL:
        if counts.get(name):
            print(f"{name:<13} {counts[name]:>8}", file=out)
    print(f"{'total':<13} {count:>8}   ({parts} parts; "
          + ", ".join(f"{e} {n}" for e, n in sorted(encodings.items())) + ")", file=out)
    print(f"report written: {report}", file=out)
    return result["code"]
