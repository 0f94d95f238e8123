"""Short links and the customer's own fields end to end: the 201 answers the parts and
points of the text as sent, the SMSC gets the short link, the links listener
redirects and records each click (first, then repeats), jobs carry ref_id, params and
partner (per CSV row too) and report their click-through rate, history filters by
partner."""

from __future__ import annotations

import http.client
import time
from typing import Any

from smppd.callbacks import links
from tests.daemon.test_jobs import _upload
from tests.support.receiver import Receiver

BASE_URL = "https://s.example/"


def links_config() -> dict[str, Any]:
    return {"links": {"listen": "127.0.0.1:0", "base_url": BASE_URL}}


def follow(port: int, code: str, agent: str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like "
           "Mac OS X) AppleWebKit/605.1.15 Mobile/15E148") -> tuple[int, str | None, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/" + code, headers={"User-Agent": agent})
    response = conn.getresponse()
    body = response.read().decode()
    conn.close()
    return response.status, response.getheader("location"), body


def codes_in(text: str) -> list[str]:
    return [url[len(BASE_URL):] for _, _, url in links.find_urls(text)
            if url.startswith(BASE_URL)]


def test_short_links_price_the_text_as_sent_and_redirect(start_daemon: Any) -> None:
    running = start_daemon(**links_config())
    port = running.daemon.links_port.getHost().port
    long_url = "https://shop.example/autumn-sale/" + "x" * 60 + "?utm_source=sms"
    text = "Sale: " + long_url + " " + "y" * (161 - len(long_url) - 7)
    assert len(text) == 161
    status, plain = running.client.send(text=text)
    assert status == 201 and plain["parts"] == 2 and plain["points"] == 2
    status, short = running.client.send(text=text, shorten_links=True)
    assert status == 201, short
    assert short["parts"] == 1 and short["points"] == 1
    final = running.client.wait_status(short["id"], "delivered")
    [code] = codes_in(final["text"])
    assert final["links"] == [{"code": code, "url": long_url, "clicks": 0,
                               "first_click_at": None}]
    sent = [m.text for m in running.smsc.messages]
    assert final["text"] in sent and long_url not in final["text"]
    # Each request is one click; the first is first, the others repeats.
    assert follow(port, code) == (302, long_url, follow(port, code)[2])
    follow(port, code, agent="WhatsApp/2.23.20.0 A")
    deadline = time.monotonic() + 5
    while running.client.message(short["id"])["links"][0]["clicks"] < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    clicks = _query(running, "SELECT is_repeat, agent, message_id FROM link_clicks ORDER BY id")
    assert [(bool(r), a) for r, a, _ in clicks] == [(False, "mobile"), (True, "mobile"),
                                                    (True, "bot")]
    assert {m for _, _, m in clicks} == {short["id"]}
    # An unknown code, a malformed one, the root: a plain 404 page.
    for path in ("ZZZZZZZZZ", "short", ""):
        status, location, body = follow(port, path)
        assert status == 404 and location is None and "Link not found" in body
    assert len(_query(running, "SELECT id FROM link_clicks")) == 3


def test_shorten_links_without_a_base_url_is_refused(start_daemon: Any) -> None:
    running = start_daemon()
    status, body = running.client.send(text="go https://x.example/", shorten_links=True)
    assert status == 400 and body["field"] == "shorten_links"


def test_ref_id_params_partner_through_the_api_and_history(start_daemon: Any) -> None:
    running = start_daemon()
    client = running.client
    status, body = client.send(ref_id="ż" * 128, params={"a": "b"}, partner="retail-1")
    assert status == 201, body
    status, refused = client.send(ref_id="ż" * 128 + "x")
    assert status == 400 and refused["field"] == "ref_id" and "257" in refused["error"]
    status, refused = client.send(params={"k": "v" * 256})
    assert status == 400 and refused["field"] == "params.k"
    client.send(partner="retail-2")
    client.send()
    status, page = client.request("GET", "/v1/messages?partner=retail-1")
    assert status == 200 and [m["id"] for m in page["messages"]] == [body["id"]]
    item = page["messages"][0]
    assert item["ref_id"] == "ż" * 128 and item["params"] == {"a": "b"}
    assert item["partner"] == "retail-1"
    _, everything = client.request("GET", "/v1/messages")
    assert len(everything["messages"]) == 3
    _, other = running.other_client().request("GET", "/v1/messages?partner=retail-1")
    assert other["messages"] == []
    status, refused = client.request("GET", "/v1/messages?partner=" + "p" * 65)
    assert status == 400 and refused["field"] == "partner"


def test_a_job_carries_fields_per_row_shortens_links_and_reports_clicks(
        start_daemon: Any) -> None:
    receiver = Receiver().start()
    try:
        running = start_daemon(**links_config(), callbacks={"retry": {"initial": 0.2,
                                                                      "max": 0.5}})
        port = running.daemon.links_port.getHost().port
        status, endpoint = running.client.request("POST", "/v1/callbacks",
                                                  {"url": receiver.url, "events": ["final"]})
        assert status == 201, endpoint
        csv_text = (b"to,name,ref_id,param.order\n"
                    b"+48500100201,Ann,ref-a,o-1\n"
                    b"+48500100202,Bo,,\n"
                    b"+48500100203,Cy,ref-c,o-3\n")
        status, job = _upload(running.client, {
            "name": "autumn", "from": "Acme", "text": "Hi {name} https://shop.example/a",
            "ref_id": "job-ref", "params": '{"campaign": "autumn"}', "partner": "p-9",
            "shorten_links": "true"}, csv_text)
        assert status == 201, job
        deadline = time.monotonic() + 20
        while len(receiver.accepted) < 3:
            assert time.monotonic() < deadline, "callbacks of the job"
            time.sleep(0.05)
        data = sorted((d.event["data"] for d in receiver.accepted.values()),
                      key=lambda item: item["to"])
        assert [(d["ref_id"], d["params"], d["partner"], d["job"]) for d in data] == [
            ("ref-a", {"campaign": "autumn", "order": "o-1"}, "p-9", job["id"]),
            ("job-ref", {"campaign": "autumn"}, "p-9", job["id"]),
            ("ref-c", {"campaign": "autumn", "order": "o-3"}, "p-9", job["id"])]
        texts = [m.text for m in running.smsc.messages]
        codes = [code for text in texts for code in codes_in(text)]
        assert len(set(codes)) == 3 and not any("shop.example" in t for t in texts)
        follow(port, codes[0])
        follow(port, codes[0])
        follow(port, codes[1], agent="facebookexternalhit/1.1")
        # The 302 does not wait for the click's commit: the figures follow shortly.
        deadline = time.monotonic() + 5
        while (found := running.client.request("GET", f"/v1/jobs/{job['id']}")[1])[
                "links"]["clicks"] < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert found["ref_id"] == "job-ref" and found["partner"] == "p-9"
        assert found["params"] == {"campaign": "autumn"} and found["shorten_links"] is True
        assert found["links"] == {"messages_with_links": 3, "clicked": 1, "clicks": 3,
                                  "ctr": 0.3333}
    finally:
        receiver.stop()


def _query(running: Any, sql: str) -> list[Any]:
    from sqlalchemy import text

    with running.daemon.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]
