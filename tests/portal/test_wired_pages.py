"""The Reports tab and the Callbacks pages on the real reports and callbacks services
(no browser): what a page makes is what the API shows, a failed delivery is listed
for its owner and the operator and, resent from a page, arrives once."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from tests.support.pages import PageClient, start_portal
from tests.support.polling import until
from tests.support.receiver import Receiver
from tests.support.running import TOKEN_A, Client

FAST = {"retry": {"initial": 0.2, "max": 0.5}, "timeout": 2, "max_age": 1}


def test_a_report_made_in_the_portal_is_the_apis_and_downloads_whole(start_daemon: Any,
                                                                      ) -> None:
    running = start_portal(start_daemon)
    api = Client(running.daemon.http_port, TOKEN_A)
    for n in range(3):
        assert api.send(to=f"+4850010{n:04d}")[0] == 201
    client = PageClient(running.daemon.http_port)
    client.login("ann")
    made = client.form("/portal/reports", "/portal/reports",
                       {"type": "daily", "format": "csv", "period": "today",
                        "name": "from the portal"})
    assert made.status == 303, made.text[:800]
    status, listed = api.request("GET", "/v1/reports")
    assert status == 200, listed
    [report] = [r for r in listed["reports"] if r["name"] == "from the portal"]
    until(lambda: api.request("GET", f"/v1/reports/{report['id']}")[1]["state"] == "ready",
          what="the portal's report to be ready")
    page = client.get("/portal/reports")
    assert f"/portal/reports/{report['id']}/file" in page.text
    download = client.get(f"/portal/reports/{report['id']}/file")
    assert download.status == 200 and "attachment" in download.headers["content-disposition"]
    assert download.text.splitlines()[0].startswith("date,")
    assert sum(int(row.split(",")[1]) for row in download.text.splitlines()[1:]
               if row[:1].isdigit()) == 3
    # Another account's report is not found through the portal either.
    other = PageClient(running.daemon.http_port)
    other.login("olga")
    assert other.get(f"/portal/reports/{report['id']}/file").status == 404


def test_a_failed_delivery_is_listed_and_resent_from_the_portal_and_the_console(
        start_daemon: Any) -> None:
    receiver = Receiver(status=500).start()
    running = start_portal(start_daemon, callbacks=FAST)
    client = PageClient(running.daemon.http_port)
    client.login("ann")
    made = client.form("/portal/callbacks", "/portal/callbacks",
                       {"url": receiver.url, "event_final": "on", "default": "on"})
    assert made.status == 200 and "whsec_" in made.text  # the secret, shown this once
    secret = re.search(r"whsec_[A-Za-z0-9+/=]+", made.text).group(0)
    assert secret not in client.get("/portal/callbacks").text  # never again
    api = Client(running.daemon.http_port, TOKEN_A)
    assert api.send(to="+48500100201")[0] == 201
    assert api.send(to="+48500100202")[0] == 201

    def failed() -> list[str]:
        page = client.get("/portal/callbacks")
        return re.findall(r"/portal/callbacks/deliveries/([A-Za-z0-9_-]+)/resend", page.text)

    ids = until(lambda: len(failed()) == 2 and failed(), timeout=20,
                what="both events to fail after max_age")
    console = PageClient(running.daemon.http_port)
    console.login("root", area="ops")
    listed = console.get("/ops/callbacks").text
    assert all(f"/ops/callbacks/{event_id}/resend" in listed for event_id in ids)
    assert "acme" in listed and receiver.url in listed
    # Another owner cannot resend them.
    other = PageClient(running.daemon.http_port)
    other.login("olga")
    refused = other.post(f"/portal/callbacks/deliveries/{ids[0]}/resend", {},
                         other.get("/portal/callbacks").csrf())
    assert refused.status == 404
    receiver.status = 200
    resent = client.post(f"/portal/callbacks/deliveries/{ids[0]}/resend", {},
                         client.get("/portal/callbacks").csrf())
    assert resent.status == 303 and "done=resent" in resent.location
    token = console.get("/ops/callbacks").csrf()
    assert console.post(f"/ops/callbacks/{ids[1]}/resend", {}, token).status == 303
    until(lambda: set(receiver.accepted) == set(ids), timeout=20,
          what="both resent events to arrive")
    assert failed() == []
    assert console.post(f"/ops/callbacks/{ids[1]}/resend", {}, token).status == 404
    receiver.stop()


def test_pages_show_and_read_times_in_the_accounts_zone(start_daemon: Any) -> None:
    """Kolkata is UTC+5:30: a job started at 10:00 on the page starts at 04:30 UTC, a
    date filter means the local day, and the footer names the zone."""
    running = start_portal(start_daemon, accounts=[
        {"name": "acme", "token": TOKEN_A, "balance": 100_000, "timezone": "Asia/Kolkata"},
        {"name": "other", "token": "token-of-account-b-0002", "balance": 100}])
    client = PageClient(running.daemon.http_port)
    client.login("ann")
    home = client.get("/portal/")
    assert "times in Asia/Kolkata" in home.text
    made = client.form("/portal/jobs/new", "/portal/jobs",
                       {"name": "Later", "from": "Acme", "text": "Hi", "throughput": "1",
                        "start_at": "2031-01-02T10:00"},
                       files={"file": ("r.csv", b"to\n+48500100300\n")})
    assert made.status == 303, made.text[:800]
    job_id = made.location.split("?")[0].rsplit("/", 1)[1]
    api = Client(running.daemon.http_port, TOKEN_A)
    status, job = api.request("GET", f"/v1/jobs/{job_id}")
    assert status == 200 and job["start_at"].startswith("2031-01-02T04:30:00"), job
    assert "Start at (Asia/Kolkata, optional)" in client.get("/portal/jobs/new").text
    # The local day 2031-01-02 runs from 2031-01-01T18:30Z: the job's scheduled message
    # (created now) is outside it, today's local day has it.
    assert api.send(to="+48500100301")[0] == 201
    today = datetime.now(timezone(timedelta(hours=5, minutes=30))).date().isoformat()
    listed = client.get(f"/portal/history?since={today}&until={today}")
    assert listed.status == 200 and "+48500100301" in listed.text
    future = client.get("/portal/history?since=2031-01-02&until=2031-01-02")
    assert "+48500100301" not in future.text
    # The console stays in UTC.
    console = PageClient(running.daemon.http_port)
    console.login("root", area="ops")
    assert "times in UTC" in console.get("/ops/").text


def test_a_jobs_page_shows_its_short_links_clicks(start_daemon: Any) -> None:
    running = start_portal(start_daemon, links={"listen": "127.0.0.1:0",
                                                "base_url": "https://s.example/"})
    api = Client(running.daemon.http_port, TOKEN_A)
    status, job = api.request("POST", "/v1/jobs", {
        "name": "Sale", "from": "Acme", "text": "See https://shop.example/sale",
        "recipients": ["+48500100401", "+48500100402"], "shorten_links": True})
    assert status == 201, job
    client = PageClient(running.daemon.http_port)
    client.login("ann")
    page = until(lambda: (lambda p: p if "messages clicked" in p.text else None)(
        client.get(f"/portal/jobs/{job['id']}")), what="the job page with its links")
    assert "0 of 2 messages clicked (0 clicks)" in page.text
    assert "click-through rate 0" in page.text
