"""A daemon with a known history, for the report tests: real HTTP, the fake SMSC over
real TCP with its receipt prefixes (4860 undelivered, 4869 expired, 4879 refused with
ESME_RINVDSTADR), SQLite or PostgreSQL. What was sent is kept so every report's
counts can be compared with it. With `inbound` (World.populate_inbound): contacts,
MO messages injected by the fake SMSC to a short code and to a dedicated number with
a poll, and clicks on the short links of the bulk job, on the links listener."""

from __future__ import annotations

import http.client
import os
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from smppd.fake_smsc import Behaviour, FakeSmsc
from sqlalchemy import text
from twisted.internet import reactor

from smppd import config
from smppd.daemon.app import Daemon
from smppd.protocol import constants as c
from smppd.store import database
from tests.conftest import call, wait_for
from tests.support.running import TOKEN_A, TOKEN_B, Client, settings_dict

POSTGRES_URL = os.environ.get("SMPPD_TEST_POSTGRES_URL")
BALANCE = 100_000
DEDICATED, SHORT, UNKNOWN = "+48500600700", "4600", "48999000111"
INBOUND_NUMBERS = [{"number": DEDICATED, "kind": "dedicated"},
                   {"number": SHORT, "kind": "shortcode", "account": "acme"}]
VOTER, VOTER2, VOTER3 = "48600100200", "48600100300", "48600100400"
BASE_URL = "https://s.example/"
PHONE_AGENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"
BOT_AGENT = "facebookexternalhit/1.1"
CONTACTS = [
    {"phone": "+48500100000", "first_name": "Ann", "last_name": "Nowak",
     "email": "ann@example.com", "city": "Kraków"},
    {"phone": "+48500300001", "first_name": "Bob", "tier": "gold"},
    {"phone": "+" + VOTER, "first_name": "Vera", "last_name": "Voter", "city": "Gdańsk"},
]
# (sender, number, text): in this order; the poll's outcome for the votes.
MO = [(VOTER, SHORT, "hello one"), (VOTER, SHORT, "hello two"), (VOTER2, SHORT, "Hi there"),
      (VOTER, DEDICATED[1:], "VOTE A"), (VOTER2, DEDICATED[1:], "vote b"),
      (VOTER3, DEDICATED[1:], "Vote a"), (VOTER, DEDICATED[1:], "VOTE B"),
      (VOTER2, DEDICATED[1:], "VOTE C")]
OUTCOMES = {"accepted": 3, "out_of_window": 0, "over_limit": 1, "not_allowed": 0,
            "unknown_option": 1}


def reset_postgres(url: str) -> None:
    engine = database.make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def database_url(backend: str, folder: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder / 'smppd.db'}"
    assert POSTGRES_URL
    reset_postgres(POSTGRES_URL)
    return POSTGRES_URL


def start(database: str, smsc_port: int, clock: Any = None, inbound: bool = False,
          **reports: Any) -> Daemon:
    extra = {"inbound_numbers": INBOUND_NUMBERS,
             "links": {"listen": "127.0.0.1:0", "base_url": BASE_URL}} if inbound else {}
    data = settings_dict(database, smsc_port, reports=reports, **extra)
    data["accounts"][0]["timezone"] = "Europe/Warsaw"
    data["accounts"][0]["balance"] = BALANCE
    settings = config.parse(data, "test.yaml")
    daemon = Daemon(settings, reactor)
    if clock is not None:
        daemon.reports.clock = clock
    call(daemon.start)
    wait_for(lambda: daemon.readiness()[0], what="daemon ready")
    return daemon


def download(client: Client, path: str, token: str | None = None) -> tuple[int, dict[str, str],
                                                                        bytes]:
    client.conn.request("GET", path, headers={"Authorization": f"Bearer {token or client.token}"})
    response = client.conn.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def until(predicate: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class World:
    """The history every report is checked against."""

    API: ClassVar[list[tuple[str, int, str]]] = [
        ("+48500100{:03d}", 8, "delivered"), ("+48601000{:03d}", 3, "undelivered"),
        ("+48691000{:03d}", 2, "expired"), ("+48791000{:03d}", 2, "rejected")]
    LONG_TEXT = "Long " + "message " * 30  # two parts

    def __init__(self, daemon: Daemon, smsc: FakeSmsc) -> None:
        self.daemon = daemon
        self.smsc = smsc
        self.client = Client(daemon.http_port, TOKEN_A)
        self.other = Client(daemon.http_port, TOKEN_B)
        self.expected: Counter[str] = Counter()
        self.ids: list[str] = []
        self.api_ids: list[str] = []
        self.partners: Counter[str] = Counter()
        self.job_id = ""
        self.poll_id = ""
        self.job_messages: list[dict[str, Any]] = []  # with their short links
        self.clicked_id = ""  # the job's message a person clicked

    def populate(self) -> None:
        number = 0
        for pattern, count, status in self.API:
            for _ in range(count):
                partner = "shop-1" if number % 3 == 0 else None
                extra = {"partner": partner} if partner else {}
                code, body = self.client.send(to=pattern.format(number), ref_id=f"r{number}",
                                              **extra)
                assert code == 201, body
                self.ids.append(body["id"])
                self.api_ids.append(body["id"])
                self.expected[status] += 1
                self.partners[partner or "acme"] += 1
                number += 1
        code, body = self.client.send(to="+48500200001", text=self.LONG_TEXT,
                                      params={"order": "7", "shop": "north"})
        assert code == 201 and body["parts"] == 2, body
        self.ids.append(body["id"])
        self.api_ids.append(body["id"])
        self.expected["delivered"] += 1
        self.partners["acme"] += 1
        recipients = [f"+48500300{i:03d}" for i in range(4)] + \
            [f"+48601300{i:03d}" for i in range(2)]
        code, body = self.client.request("POST", "/v1/jobs", {
            "name": "Spring sale", "from": "Acme", "text": "Hi https://shop.example/spring",
            "recipients": recipients, "partner": "shop-2", "description": "spring promotion",
            "shorten_links": self.daemon.links_port is not None})
        assert code == 201, body
        self.job_id = body["id"]
        self.expected["delivered"] += 4
        self.expected["undelivered"] += 2
        self.partners["shop-2"] += 6
        until(self._all_final, "every message final")

    def _all_final(self) -> bool:
        code, body = self.client.request("GET", "/v1/messages?limit=1000")
        assert code == 200, body
        statuses = Counter(m["status"] for m in body["messages"])
        return statuses == self.expected

    def populate_inbound(self) -> None:
        """Contacts, a reserved number with a poll, MO messages and votes, and clicks:
        one click by a phone (and a repeat) on one job message, a preview robot's
        fetch of another."""
        client = self.client
        code, body = client.request("POST", "/v1/contacts", CONTACTS)
        assert code == 201, body
        assert client.request("POST", "/v1/inbound/numbers", {"number": DEDICATED})[0] == 201
        now = time.time()
        code, body = client.request("POST", "/v1/polls", {
            "name": "Best flavour", "number": DEDICATED, "prefix": "Vote",
            "starts_at": _iso(now - 60), "ends_at": _iso(now + 3600), "from": "Acme",
            "options": [{"keyword": "A"}, {"keyword": "B"}],
            "limit": {"votes": 1, "per_seconds": 86400}})
        assert code == 201, body
        self.poll_id = body["id"]
        for count, (sender, number, body_text) in enumerate(MO, 1):
            call(self.smsc.inject_mo, sender, number, body_text)
            # One at a time: the over-limit vote must come after the accepted one.
            until(lambda n=count: len(self.inbound()) == n, f"MO {count} routed")
        call(self.smsc.inject_mo, VOTER, UNKNOWN, "nobody's")  # unassigned: in no report
        code, page = client.request("GET", f"/v1/messages?job={self.job_id}&limit=100")
        assert code == 200, page
        self.job_messages = sorted(page["messages"], key=lambda m: m["to"])
        port = self.daemon.links_port.getHost().port
        codes = [message["text"].split(BASE_URL)[1].split()[0] for message in self.job_messages]
        self.clicked_id = self.job_messages[0]["id"]
        for code_, agent in ((codes[0], PHONE_AGENT), (codes[0], PHONE_AGENT),
                             (codes[1], BOT_AGENT)):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/" + code_, headers={"User-Agent": agent})
            assert conn.getresponse().status == 302
            conn.close()
        until(lambda: client.request("GET", f"/v1/jobs/{self.job_id}")[1]["links"]["clicks"]
              == 3, "the clicks recorded")

    def inbound(self) -> list[dict[str, Any]]:
        code, body = self.client.request("GET", "/v1/inbound?limit=100")
        assert code == 200, body
        return body["items"]

    @property
    def total(self) -> int:
        return sum(self.expected.values())

    def report(self, client: Client | None = None, **body: Any) -> dict[str, Any]:
        code, found = (client or self.client).request("POST", "/v1/reports", body)
        assert code == 201, found
        return found

    def ready(self, report_id: str, client: Client | None = None) -> dict[str, Any]:
        client = client or self.client

        def done() -> Any:
            code, found = client.request("GET", f"/v1/reports/{report_id}")
            assert code == 200, found
            return found if found["state"] in ("ready", "failed") else None

        found = until(done, f"report {report_id} ready")
        assert found["state"] == "ready", found
        return found

    def file(self, report: dict[str, Any]) -> bytes:
        code, headers, data = download(self.client, f"/v1/reports/{report['id']}/file")
        assert code == 200, data[:200]
        assert report["file_name"] in headers["content-disposition"]
        return data

    def balance(self) -> int:
        return self.client.request("GET", "/v1/account")[1]["balance"]

    def close(self) -> None:
        self.client.close()
        self.other.close()


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_smsc() -> FakeSmsc:
    smsc = FakeSmsc(Behaviour(receipt_status_by_prefix={"4860": "UNDELIV", "4869": "EXPIRED"},
                              submit_status_by_prefix={"4879": c.ESME_RINVDSTADR}))
    port = call(smsc.listen)
    smsc.port = port.getHost().port
    smsc.listening = port
    return smsc


def stop_smsc(smsc: FakeSmsc) -> None:
    call(smsc.listening.stopListening)
    call(smsc.drop_all)
