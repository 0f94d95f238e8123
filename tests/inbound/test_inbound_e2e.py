"""Inbound end to end: MO injected by the fake SMSC over real TCP, routed by the
daemon (SQLite), read and configured over the HTTP API; replies seen as submit_sm at
the SMSC, e-mail forwards at a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from smppd.protocol.text import Encoding
from tests.conftest import call
from tests.support.polling import until
from tests.support.running import Client, Running
from tests.support.smtp_sink import SmtpSink

DEDICATED, SHARED, SHORT, UNKNOWN = "+48500600700", "+48500600701", "4600", "+48999000111"
NUMBERS = [
    {"number": DEDICATED, "kind": "dedicated", "price": {"reservation": 100, "monthly": 50}},
    {"number": SHARED, "kind": "shared", "price": {"reservation": 10}},
    {"number": SHORT, "kind": "shortcode", "account": "acme"},
]
VOTER, VOTER2, VOTER3 = "48600100200", "48600100300", "48600100400"


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def eventually(check: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll from the test thread (HTTP calls must not run on the reactor)."""
    return until(check, timeout, what)


@pytest.fixture
def inbound(start_daemon: Callable[..., Running]) -> Callable[..., Running]:
    def start(**overrides: Any) -> Running:
        overrides.setdefault("inbound_numbers", NUMBERS)
        return start_daemon(**overrides)
    return start


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    server = SmtpSink().start()
    yield server
    server.stop()


def _inbound(client: Client, **query: str) -> list[dict[str, Any]]:
    path = "/v1/inbound" + ("?" + "&".join(f"{k}={v}" for k, v in query.items())
                            if query else "")
    status, body = client.request("GET", path)
    assert status == 200, body
    return body["items"]


def _replies(running: Running, to: str) -> list[str]:
    return [m.text for m in running.smsc.messages if m.destination == to]


def _unassigned(running: Running) -> list[Any]:
    from smppd.store import inbound_queries as iq

    def read(conn: Any) -> Any:
        return iq.list_inbound(conn, None, iq.InboundFilter(), None, 100)[0]
    return call(running.daemon._read, read)


def test_two_accounts_share_a_number_by_prefix_and_unmatched_is_kept(inbound: Any) -> None:
    running = inbound()
    acme, other = running.client, running.other_client()
    status, body = acme.request("POST", "/v1/inbound/numbers",
                                {"number": SHARED, "prefix": "Głos"})
    assert status == 201 and body["prefix"] == "Głos" and body["points"] == 10
    status, body = other.request("POST", "/v1/inbound/numbers",
                                 {"number": SHARED, "prefix": "GLOS"})
    assert status == 409 and "'Głos'" in body["error"] and body["field"] == "prefix"
    assert other.request("POST", "/v1/inbound/numbers",
                         {"number": SHARED, "prefix": "zima"})[0] == 201
    smsc = running.smsc
    call(smsc.inject_mo, VOTER, SHARED[1:], "GŁOS: Zażółć gęślą jaźń 😀", encoding=Encoding.UCS2)
    call(smsc.inject_mo, VOTER2, SHARED[1:], "glos tak")
    call(smsc.inject_mo, VOTER, SHARED[1:], "ZIMA " + "długi tekst " * 20)  # UCS-2, 4 parts
    call(smsc.inject_mo, VOTER, SHARED[1:], "lato 1")
    call(smsc.inject_mo, VOTER, UNKNOWN[1:], "who is this")
    mine = eventually(lambda: len(_inbound(acme)) == 2 and _inbound(acme), what="acme's MO")
    assert [(m["prefix"], m["body"], m["from"], m["to"]) for m in mine] == [
        ("glos", "tak", "+" + VOTER2, SHARED), ("GŁOS", "Zażółć gęślą jaźń 😀", "+" + VOTER,
                                                SHARED)]
    theirs = eventually(lambda: _inbound(other), what="other's MO")
    assert theirs[0]["prefix"] == "ZIMA" and theirs[0]["parts"] == 4  # UCS-2: 4 parts
    assert theirs[0]["body"] == "długi tekst " * 20
    assert _inbound(acme, sender="+" + VOTER2) == mine[:1]
    assert _inbound(other, number=SHARED) == theirs
    unassigned = eventually(lambda: len(_unassigned(running)) == 2 and _unassigned(running),
                            what="unassigned MO")
    assert {(m["text"], m["reason"]) for m in unassigned} == {
        ("lato 1", "no_prefix"), ("who is this", "unknown_number")}
    _status, metrics = acme.request("GET", "/metrics")
    assert 'smppd_inbound_unassigned_total{reason="no_prefix"} 1.0' in metrics
    assert "smppd_inbound_unassigned_stored 2.0" in metrics
    assert set(smsc.deliver_responses.values()) == {0}


def test_a_released_number_routes_to_unassigned(inbound: Any) -> None:
    running = inbound()
    acme = running.client
    assert acme.request("POST", "/v1/inbound/numbers", {"number": DEDICATED})[0] == 201
    _status, numbers = acme.request("GET", "/v1/inbound/numbers")
    assert [(n["number"], n["kind"], n["active"]) for n in numbers["numbers"]] == [
        (SHORT, "shortcode", True), (DEDICATED, "dedicated", True)]
    assert DEDICATED not in [n["number"] for n in numbers["available"]]
    call(running.smsc.inject_mo, VOTER, DEDICATED[1:], "before")
    eventually(lambda: _inbound(acme), what="the MO")
    assert acme.request("DELETE", f"/v1/inbound/numbers/{DEDICATED}")[0] == 200
    assert acme.request("DELETE", f"/v1/inbound/numbers/{DEDICATED}")[0] == 404
    call(running.smsc.inject_mo, VOTER, DEDICATED[1:], "after")
    lapsed = eventually(lambda: _unassigned(running), what="the lapsed MO")
    assert [(m["text"], m["reason"]) for m in lapsed] == [("after", "lapsed")]
    assert [m["text"] for m in _inbound(acme)] == ["before"]


def _poll_body(**overrides: Any) -> dict[str, Any]:
    now = time.time()
    body = {"name": "Ice cream", "number": DEDICATED, "prefix": "Głosuj",
            "starts_at": _iso(now - 60), "ends_at": _iso(now + 3600), "from": "Acme",
            "options": [{"keyword": "Tak", "reply": "Great! Code {code}"},
                        {"keyword": "Nie", "reply": "Sorry to hear that"}],
            "replies": {"default": "Thanks", "over_limit": "You voted twice today",
                        "unknown_option": "Answer TAK or NIE",
                        "no_codes": "Thanks! No codes left"},
            "limit": {"votes": 2, "per_seconds": 86400}, "discount_pool": "summer"}
    body.update(overrides)
    return body


def test_poll_votes_ucs2_and_concatenated_with_limit_codes_and_stats(inbound: Any) -> None:
    running = inbound()
    acme, smsc = running.client, running.smsc
    assert acme.request("POST", "/v1/inbound/numbers", {"number": DEDICATED})[0] == 201
    assert acme.request("POST", "/v1/discount-codes",
                        {"pool": "summer", "codes": ["AAA111", "BBB222"]})[1] == {
        "pool": "summer", "added": 2, "skipped": 0}
    status, created = acme.request("POST", "/v1/polls", _poll_body())
    assert status == 201, created
    poll_id = created["id"]
    call(smsc.inject_mo, VOTER, DEDICATED[1:], "GŁOSUJ tak 👍", encoding=Encoding.UCS2)
    eventually(lambda: _replies(running, VOTER), what="the first reply")
    call(smsc.inject_mo, VOTER, DEDICATED[1:], "głosuj: NIE, " + "bo tak " * 30)  # 2 parts
    eventually(lambda: len(_replies(running, VOTER)) == 2, what="the second reply")
    call(smsc.inject_mo, VOTER, DEDICATED[1:], "glosuj tak")  # a third today: over the limit
    call(smsc.inject_mo, VOTER2, DEDICATED[1:], "Glosuj TAK")
    call(smsc.inject_mo, VOTER3, DEDICATED[1:], "glosuj tak!")  # the pool ran dry
    call(smsc.inject_mo, VOTER3, DEDICATED[1:], "glosuj maybe")
    eventually(lambda: len(_replies(running, VOTER)) == 3 and _replies(running, VOTER3),
               what="all replies")
    eventually(lambda: len(_replies(running, VOTER3)) == 2, what="the last reply")
    assert _replies(running, VOTER) == ["Great! Code AAA111", "Sorry to hear that",
                                        "You voted twice today"]
    # Every accepted vote takes a code (the "Nie" vote took BBB222), so VOTER2 and
    # VOTER3 find the pool empty: counted, answered with the configured reply.
    assert _replies(running, VOTER2) == ["Thanks! No codes left"]
    assert sorted(_replies(running, VOTER3)) == ["Answer TAK or NIE", "Thanks! No codes left"]
    status, stats = acme.request("GET", f"/v1/polls/{poll_id}/stats")
    assert status == 200
    assert stats["accepted"] == 4 and stats["total"] == 6
    assert stats["refused"] == {"out_of_window": 0, "over_limit": 1, "not_allowed": 0,
                                "unknown_option": 1}
    assert [(o["keyword"], o["votes"], o["percent"]) for o in stats["options"]] == [
        ("Tak", 3, 75.0), ("Nie", 1, 25.0)]
    assert len(stats["messages"]) == 6 and stats["messages"][-1]["text"] == "tak 👍"
    status, votes_csv = acme.request("GET", f"/v1/polls/{poll_id}/votes.csv")
    rows = list(csv.reader(io.StringIO(votes_csv)))
    assert rows[0] == ["received_at", "sender", "text", "option", "outcome", "code"]
    assert [(r[1], r[3], r[4], r[5]) for r in rows[1:3]] == [
        ("+" + VOTER, "Tak", "accepted", "AAA111"), ("+" + VOTER, "Nie", "accepted", "BBB222")]
    status, stats_csv = acme.request("GET", f"/v1/polls/{poll_id}/stats.csv")
    assert "option,Tak,3,75.0" in stats_csv and "outcome,over_limit,1," in stats_csv
    _status, metrics = acme.request("GET", "/metrics")
    assert "smppd_discount_pool_empty_total 2.0" in metrics
    assert 'smppd_poll_votes_total{outcome="over_limit"} 1.0' in metrics
    status, poll = acme.request("GET", f"/v1/polls/{poll_id}")
    assert poll["prefix"] == "Głosuj" and poll["limit"] == {"votes": 2, "per_seconds": 86400}
    # Replies are charged as messages: 6 replies of one part at 1 point each.
    assert acme.request("GET", "/v1/account")[1]["balance"] == 100_000 - 150 - 6


def test_auto_reply_loops_and_hourly_limit(inbound: Any) -> None:
    running = inbound(inbound={"auto_replies_per_hour": 2})
    acme, smsc = running.client, running.smsc
    status, body = acme.request("PUT", f"/v1/inbound/numbers/{SHORT}/settings",
                                {"auto_reply": {"from": "Acme", "text": "We got it"}})
    assert status == 200, body
    status, body = acme.request("PUT", f"/v1/inbound/numbers/{SHORT}/settings",
                                {"forward": {"sms": [SHARED]}})
    assert status == 400 and body["field"] == "forward.sms" and "loop" in body["error"]
    for sender in ("BankAlert", "8080", SHARED[1:]):  # alphanumeric, a short code, ourselves
        call(smsc.inject_mo, sender, SHORT, "ping")
    for n in range(3):
        call(smsc.inject_mo, VOTER, SHORT, f"hello {n}")
    eventually(lambda: len(_inbound(acme)) == 6, what="six MO stored")
    time.sleep(0.3)  # replies would be out by now: the store committed them with the MO
    assert [m.destination for m in smsc.messages] == [VOTER, VOTER]
    assert {m.text for m in smsc.messages} == {"We got it"}
    loop = [m for m in _inbound(acme) if m["from"] == SHARED]
    assert len(loop) == 1  # kept, routed, but never answered or forwarded


def test_forward_by_email_sms_and_url_setting(inbound: Any, sink: SmtpSink) -> None:
    running = inbound(smtp={"host": "127.0.0.1", "port": sink.port, "starttls": False,
                            "from": "smppd@example.com"})
    acme, smsc = running.client, running.smsc
    settings = {"forward": {"email": ["ops@example.com", "boss@example.com"],
                            "sms": ["+48600100900"], "url": "https://hooks.example.com/mo"}}
    status, body = acme.request("PUT", f"/v1/inbound/numbers/{SHORT}/settings", settings)
    assert status == 200 and body["forward"]["url"] == "https://hooks.example.com/mo"
    call(smsc.inject_mo, VOTER, SHORT, "Zamawiam 2 pizze")
    eventually(lambda: sink.messages, what="the e-mail copy")
    mail = sink.messages[0]
    assert mail["Subject"] == f"SMS from +{VOTER} to {SHORT}"
    assert sorted(sink.envelopes[0].rcpt_tos) == ["boss@example.com", "ops@example.com"]
    assert "Zamawiam 2 pizze" in mail.get_payload(decode=True).decode()
    assert mail["Message-ID"].startswith("<inbound-forward-")
    eventually(lambda: _replies(running, "48600100900"), what="the SMS forward")
    assert _replies(running, "48600100900") == [f"SMS from +{VOTER} to {SHORT}: "
                                                "Zamawiam 2 pizze"]
    numbers = acme.request("GET", "/v1/inbound/numbers")[1]["numbers"]
    assert numbers[0]["forward"] == {"email": ["ops@example.com", "boss@example.com"],
                                     "sms": ["+48600100900"],
                                     "url": "https://hooks.example.com/mo"}
    time.sleep(0.2)
    assert len(sink.messages) == 1  # sent once


def test_isolation_between_accounts(inbound: Any) -> None:
    running = inbound()
    acme, other = running.client, running.other_client()
    assert acme.request("POST", "/v1/inbound/numbers", {"number": DEDICATED})[0] == 201
    poll_id = acme.request("POST", "/v1/polls", _poll_body(discount_pool=None))[1]["id"]
    assert acme.request("POST", "/v1/contacts", {"phone": "+" + VOTER, "groups": ["vip"]})[0] \
        == 201
    call(running.smsc.inject_mo, VOTER, DEDICATED[1:], "private")
    eventually(lambda: _inbound(acme), what="acme's MO")
    assert _inbound(other) == []
    for path in (f"/v1/polls/{poll_id}", f"/v1/polls/{poll_id}/stats",
                 f"/v1/polls/{poll_id}/votes.csv", f"/v1/contacts/+{VOTER}",
                 "/v1/contacts?group=vip"):
        assert other.request("GET", path)[0] == 404, path
    assert other.request("GET", "/v1/contacts")[1]["contacts"] == []
    assert other.request("GET", "/v1/groups")[1] == {"groups": []}
    assert other.request("DELETE", f"/v1/inbound/numbers/{DEDICATED}")[0] == 404
    assert other.request("PUT", f"/v1/inbound/numbers/{DEDICATED}/settings",
                         {"auto_reply": None})[0] == 404
    assert other.request("POST", "/v1/polls", _poll_body(discount_pool=None))[0] == 404
    assert other.request("GET", "/v1/inbound/numbers")[1]["numbers"] == []
    _, report = other.request("GET", "/v1/inbound/reports/detailed")
    assert report.splitlines()[1:] == []


def test_reports_as_csv(inbound: Any) -> None:
    running = inbound()
    acme = running.client
    assert acme.request("POST", "/v1/contacts", {"phone": "+" + VOTER, "first_name": "Ann",
                                                 "last_name": "Nowak", "city": "Kraków"})[0] == 201
    for text in ("one", "two"):
        call(running.smsc.inject_mo, VOTER, SHORT, text)
    eventually(lambda: len(_inbound(acme)) == 2, what="two MO")
    # Made by the reports subsystem's `inbound` and `inbound-daily` builders (the
    # same rows as POST /v1/reports gives), with the sender's phonebook fields.
    _status, detailed = acme.request("GET", "/v1/inbound/reports/detailed")
    rows = list(csv.DictReader(io.StringIO(detailed)))
    assert list(rows[0]) == ["date", "time", "sender", "number", "prefix", "text", "parts",
                             "id", "first_name", "last_name", "email", "contact.city"]
    assert [(r["sender"], r["number"], r["text"], r["first_name"], r["last_name"],
             r["contact.city"]) for r in rows] == [
        ("+" + VOTER, SHORT, text, "Ann", "Nowak", "Kraków") for text in ("one", "two")]
    _, daily = acme.request("GET", "/v1/inbound/reports/daily")
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert list(csv.reader(io.StringIO(daily))) == [["date", "replies", SHORT],
                                                    [today, "2", "2"]]
    _, none = acme.request("GET", "/v1/inbound/reports/daily?since=2020-01-01T00:00:00Z&"
                                  "until=2020-01-03T00:00:00Z")
    assert list(csv.reader(io.StringIO(none))) == [["date", "replies"], ["2020-01-01", "0"],
                                                   ["2020-01-02", "0"]]
    status, body = acme.request("GET", "/v1/inbound/reports/detailed?sender=")
    assert status == 400 and body["field"] == "sender"
    assert acme.request("GET", "/v1/inbound/reports/weekly")[0] == 404


def test_contacts_crud_csv_import_and_a_job_to_a_group(inbound: Any) -> None:
    running = inbound()
    acme = running.client
    status, body = acme.request("POST", "/v1/contacts", [
        {"phone": "+48600100201", "first_name": "Ann", "groups": ["vip"], "city": "Kraków"},
        {"phone": "+48600100202", "first_name": "Bob", "email": "bob@example.com"}])
    assert status == 201 and body["created"] == 2
    upload = ("phone,first_name,last_name,groups,city\r\n"
              "+48600100203,Cecylia,Nowak,vip;staff,Gdańsk\r\n"
              "+48600100201,Anna,,vip,Kraków\r\n"
              "not-a-phone,X,,vip,\r\n").encode()
    boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW"  # as a browser makes it: capitals
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"c.csv\"\r\nContent-Type: text/csv\r\n\r\n").encode() + upload + \
        f"\r\n--{boundary}--\r\n".encode()
    acme.conn.request("POST", "/v1/contacts", body=form, headers={
        "Authorization": f"Bearer {acme.token}",
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    response = acme.conn.getresponse()
    import json

    answer = json.loads(response.read())
    assert response.status == 201, answer
    assert (answer["created"], answer["updated"], answer["rejected_rows"]) == (1, 1, 1)
    assert answer["row_errors"][0]["row"] == 4 and answer["row_errors"][0]["field"] == "phone"
    status, vip = acme.request("GET", "/v1/contacts?group=vip")
    assert [(c["phone"], c["first_name"]) for c in vip["contacts"]] == [
        ("+48600100201", "Anna"), ("+48600100203", "Cecylia")]
    assert vip["contacts"][1]["fields"] == {"city": "Gdańsk"}
    assert acme.request("GET", "/v1/groups")[1] == {"groups": [
        {"name": "staff", "contacts": 1}, {"name": "vip", "contacts": 2}]}
    status, job = acme.request("POST", "/v1/jobs", {
        "name": "VIP", "from": "Acme", "text": "Hi {first_name} from {city}!", "group": "vip"})
    assert status == 201 and job["messages"] == 2, job
    eventually(lambda: len(running.smsc.messages) == 2, what="the job's messages")
    assert sorted(m.text for m in running.smsc.messages) == ["Hi Anna from Kraków!",
                                                             "Hi Cecylia from Gdańsk!"]
    assert acme.request("POST", "/v1/jobs", {"name": "x", "from": "Acme", "text": "x",
                                             "group": "nobody"})[0] == 404
    status, bob = acme.request("PUT", "/v1/contacts/+48600100202",
                               {"first_name": "Robert", "groups": ["staff"], "team": "B"})
    assert status == 200 and (bob["first_name"], bob["email"], bob["groups"], bob["fields"]) \
        == ("Robert", None, ["staff"], {"team": "B"})
    assert acme.request("PUT", "/v1/contacts/+48600100202", {"phone": "+48600100209"})[1][
        "field"] == "phone"
    assert acme.request("DELETE", "/v1/contacts/+48600100202")[0] == 200
    assert acme.request("GET", "/v1/contacts/+48600100202")[0] == 404


def test_an_mo_half_received_before_a_restart_is_routed_once(inbound: Any,
                                                             start_daemon: Any) -> None:
    running = inbound()
    text = "part " * 80  # 3 parts
    assert running.client.request("PUT", f"/v1/inbound/numbers/{SHORT}/settings",
                                  {"auto_reply": {"from": "Acme", "text": "Got it"}})[0] == 200
    call(running.smsc.inject_mo, VOTER, SHORT, text, order=[1, 2])
    eventually(lambda: len(running.smsc.deliver_responses) == 2, what="two parts acked")
    running.client.close()
    call(running.daemon.stop, drain_timeout=2.0)
    again = inbound()
    call(again.smsc.inject_mo, VOTER, SHORT, text, order=[3])
    items = eventually(lambda: _inbound(again.client), what="the whole MO")
    assert [(m["text"], m["parts"]) for m in items] == [(text, 3)]
    eventually(lambda: _replies(again, VOTER), what="the reply")
    time.sleep(0.3)
    assert _replies(again, VOTER) == ["Got it"]
    assert len(_inbound(again.client)) == 1


BAD_BODIES = [
    ("POST", "/v1/inbound/numbers", {}, "number"),
    ("POST", "/v1/inbound/numbers", {"number": "abc"}, "number"),
    ("POST", "/v1/inbound/numbers", {"number": SHARED}, "prefix"),
    ("POST", "/v1/inbound/numbers", {"number": SHARED, "prefix": "a"}, "prefix"),
    ("POST", "/v1/inbound/numbers", {"number": SHARED, "prefix": "x" * 17}, "prefix"),
    ("POST", "/v1/inbound/numbers", {"number": SHARED, "prefix": "no space"}, "prefix"),
    ("POST", "/v1/inbound/numbers", {"number": DEDICATED, "prefix": "AB"}, "prefix"),
    ("POST", "/v1/inbound/numbers", {"number": DEDICATED, "until": "yesterday"}, "until"),
    ("POST", "/v1/inbound/numbers", {"number": DEDICATED, "from": "2030-01-02T00:00:00Z",
                                     "until": "2030-01-01T00:00:00Z"}, "until"),
    ("POST", "/v1/inbound/numbers", {"number": DEDICATED, "colour": "red"}, "colour"),
    ("PUT", f"/v1/inbound/numbers/{SHORT}/settings", {"auto_reply": "yes"}, "auto_reply"),
    ("PUT", f"/v1/inbound/numbers/{SHORT}/settings", {"auto_reply": {"text": "x"}},
     "auto_reply.from"),
    ("PUT", f"/v1/inbound/numbers/{SHORT}/settings",
     {"auto_reply": {"from": "Acme", "text": ""}}, "auto_reply.text"),
    ("PUT", f"/v1/inbound/numbers/{SHORT}/settings", {"forward": {"email": ["nope"]}},
     "forward.email[0]"),
    ("PUT", f"/v1/inbound/numbers/{SHORT}/settings", {"forward": {"sms": ["+48 1"]}},
     "forward.sms[0]"),
    ("PUT", f"/v1/inbound/numbers/{SHORT}/settings", {"forward": {"url": "ftp://x/y"}},
     "forward.url"),
    ("PUT", f"/v1/inbound/numbers/{SHORT}/settings", {"forward": []}, "forward"),
    ("POST", "/v1/contacts", {"first_name": "Ann"}, "phone"),
    ("POST", "/v1/contacts", {"phone": "+48600100200", "email": "x@"}, "email"),
    ("POST", "/v1/contacts", {"phone": "+48600100200", "groups": [1]}, "groups"),
    ("POST", "/v1/contacts", [{"phone": "+48600100200"}, {"phone": "x"}], "[1].phone"),
    ("POST", "/v1/contacts", {"phone": "+48600100200", "bad name": "x"}, "bad name"),
    ("POST", "/v1/contacts", {"phone": "+48600100200", "city": {"a": 1}}, "city"),
    ("POST", "/v1/contacts", [], None),
    ("POST", "/v1/discount-codes", {"codes": ["a"]}, "pool"),
    ("POST", "/v1/discount-codes", {"pool": "p", "codes": []}, "codes"),
    ("POST", "/v1/discount-codes", {"pool": "p", "codes": ["a b"]}, "codes[0]"),
    ("POST", "/v1/discount-codes", {"pool": "p q", "codes": ["a"]}, "pool"),
    ("POST", "/v1/polls", {}, "name"),
    ("POST", "/v1/polls", {"options": []}, "name"),
    ("POST", "/v1/polls", "ends_at", "ends_at"),
    ("POST", "/v1/polls", "options", "options"),
    ("POST", "/v1/polls", "keyword", "options[1].keyword"),
    ("POST", "/v1/polls", "placeholder", "replies.default"),
    ("POST", "/v1/polls", "reply key", "replies.maybe"),
    ("POST", "/v1/polls", "limit", "limit.votes"),
    ("POST", "/v1/polls", "from", "from"),
]


def _bad_poll(kind: str) -> dict[str, Any]:
    body = _poll_body()
    if kind == "ends_at":
        body["ends_at"] = body["starts_at"]
    elif kind == "options":
        body["options"] = "tak,nie"
    elif kind == "keyword":
        body["options"] = [{"keyword": "Tak"}, {"keyword": "TAK"}]
    elif kind == "placeholder":
        body["replies"] = {"default": "Hi {first_name}"}
    elif kind == "reply key":
        body["replies"] = {"maybe": "x"}
    elif kind == "limit":
        body["limit"] = {"votes": -1}
    elif kind == "from":
        body["from"] = "Way too long sender"
    return body


@pytest.mark.parametrize(("method", "path", "body", "field"), BAD_BODIES)
def test_malformed_bodies_are_refused_naming_the_field(
        inbound: Any, method: str, path: str, body: Any, field: str | None) -> None:
    running = inbound()
    if isinstance(body, str):
        body = _bad_poll(body)
    status, answer = running.client.request(method, path, body)
    assert status == 400, answer
    assert answer.get("field") == field, answer
    assert "error" in answer


@pytest.mark.parametrize("raw", [b"", b"{", b"[1,", b"\xff\xfe", b'"text"'])
def test_bodies_that_are_not_json(inbound: Any, raw: bytes) -> None:
    running = inbound()
    for path in ("/v1/inbound/numbers", "/v1/contacts", "/v1/discount-codes", "/v1/polls"):
        status, answer = running.client.request("POST", path, raw=raw)
        assert status == 400 and "error" in answer, (path, answer)


def test_malformed_contact_csv(inbound: Any) -> None:
    running = inbound()
    acme = running.client

    def upload(data: bytes) -> tuple[int, Any]:
        acme.conn.request("POST", "/v1/contacts", body=data, headers={
            "Authorization": f"Bearer {acme.token}", "Content-Type": "text/csv"})
        response = acme.conn.getresponse()
        import json

        return response.status, json.loads(response.read())

    assert upload(b"")[1]["field"] == "file"
    assert "'phone' column" in upload(b"name,email\r\nAnn,a@b.c\r\n")[1]["error"]
    status, body = upload(b"phone,first_name\r\n\xff\xfe,Ann\r\n+48600100200,\"Bob\r\n")
    assert status == 201 and body["rejected_rows"] >= 1 and body["created"] <= 1
    status, body = upload(b"phone,email\r\n+48600100200,not-an-email\r\n")
    assert status == 201 and body["row_errors"][0]["field"] == "email"


@pytest.mark.parametrize(("answer", "state"), [("451 4.3.0 busy", "pending"),
                                               ("550 5.1.1 no such user", "failed")])
def test_an_email_forward_the_server_refuses(inbound: Any, answer: str, state: str) -> None:
    sink = SmtpSink(answer).start()
    try:
        running = inbound(smtp={"host": "127.0.0.1", "port": sink.port, "starttls": False})
        assert running.client.request("PUT", f"/v1/inbound/numbers/{SHORT}/settings",
                                      {"forward": {"email": ["ops@example.com"]}})[0] == 200
        call(running.smsc.inject_mo, VOTER, SHORT, "hello")

        def outbox() -> Any:
            return call(running.daemon._read, lambda conn: conn.exec_driver_sql(
                "SELECT state, attempts, last_error FROM inbound_forwards").all())

        rows = eventually(lambda: [r for r in outbox() if r[1] == 1], what="one attempt")
    finally:
        sink.stop()
    assert rows[0][0] == state and answer[:3] in rows[0][2]


def test_the_operator_lists_unassigned_messages(inbound: Any, capsys: Any) -> None:
    from smppd.cli import main

    running = inbound()
    call(running.smsc.inject_mo, VOTER, UNKNOWN[1:], "anyone there?")
    eventually(lambda: _unassigned(running), what="the unassigned MO")
    config = running.path / "ops.yaml"
    config.write_text(f"database: sqlite:///{running.path / 'smppd.db'}\n"
                      "http: {listen: 127.0.0.1:0}\n"
                      "smscs: [{name: a, host: h, port: 1, system_id: x, password: p}]\n"
                      "accounts: [{name: acme, token: token-of-account-a-0001}]\n")
    assert main(["unassigned", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "1 unassigned MO message(s)" in out
    assert f"+{VOTER} -> {UNKNOWN}" in out and "unknown_number" in out and "anyone there?" in out
