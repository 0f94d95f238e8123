"""The portal and console over real HTTP from a real daemon (no browser): every
page renders for its role, sessions, CSRF, roles, isolation and escaping."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.pages import PASSWORD, PageClient, portal_settings, start_portal


@pytest.fixture
def portal(start_daemon: Any) -> Any:
    return start_portal(start_daemon)


PAGES = ["/portal/", "/portal/send", "/portal/history", "/portal/jobs", "/portal/jobs/new",
         "/portal/reports", "/portal/inbound", "/portal/polls", "/portal/polls/new",
         "/portal/contacts", "/portal/callbacks", "/portal/users", "/portal/password"]


def test_every_page_renders_for_an_owner(portal: Any) -> None:
    client = PageClient(portal.daemon.http_port)
    client.login("ann")
    for path in PAGES:
        answer = client.get(path)
        assert answer.status == 200, (path, answer.status, answer.text[:2000])
        assert "<html lang=\"en\">" in answer.text


def test_every_console_page_renders(portal: Any) -> None:
    client = PageClient(portal.daemon.http_port)
    client.login("root", area="ops")
    for path in ["/ops/", "/ops/accounts", "/ops/inbound", "/ops/callbacks",
                 f"/ops/accounts/{portal.daemon.accounts['acme'].id}"]:
        answer = client.get(path)
        assert answer.status == 200, (path, answer.status, answer.text[:2000])


def _job(client: PageClient) -> str:
    csv = "to,name\n" + "".join(f"+4850010{n:04d},P{n}\n" for n in range(30))
    answer = client.form("/portal/jobs/new", "/portal/jobs",
                         {"name": "J", "from": "Acme", "text": "Hi {name}", "throughput": "1"},
                         files={"file": ("r.csv", csv.encode())})
    assert answer.status == 303, answer.text[:800]
    return answer.location.split("?")[0]


def test_login_sets_a_new_httponly_lax_session_and_logout_ends_it(portal: Any) -> None:
    client = PageClient(portal.daemon.http_port)
    first = client.get("/portal/login")
    assert any("smppd_pre=" in c and "HttpOnly" in c and "SameSite=Lax" in c
               for c in first.cookies)
    answer = client.login("ann")
    cookie = next(c for c in answer.cookies if c.startswith("smppd_portal="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/portal/" in cookie
    assert "Secure" not in cookie  # plain HTTP without an https base_url
    session = client.cookies["smppd_portal"]
    client.login("ann")  # a login always makes a new session id and ends the old one
    assert client.cookies["smppd_portal"] != session
    stale = PageClient(portal.daemon.http_port)
    stale.cookies["smppd_portal"] = session
    assert stale.get("/portal/").status == 303
    assert client.get("/portal/").status == 200
    token = client.get("/portal/").csrf()
    client_cookie = client.cookies["smppd_portal"]
    out = client.post("/portal/logout", {}, token)
    assert out.status == 303 and "/portal/login" in out.location
    replay = PageClient(portal.daemon.http_port)
    replay.cookies["smppd_portal"] = client_cookie
    assert replay.get("/portal/").status == 303  # ended in the store, not only forgotten


def test_secure_cookies_behind_an_https_base_url(start_daemon: Any) -> None:
    running = start_portal(start_daemon, portal={"base_url": "https://sms.example/"})
    answer = PageClient(running.daemon.http_port).login("ann")
    assert any(c.startswith("smppd_portal=") and "; Secure" in c for c in answer.cookies)


def test_a_session_survives_a_restart(start_daemon: Any, tmp_path: Any) -> None:
    from tests.conftest import call

    running = start_portal(start_daemon)
    client = PageClient(running.daemon.http_port)
    client.login("ann")
    call(running.daemon.stop)
    again = start_daemon(database=f"sqlite:///{tmp_path / 'smppd.db'}", **portal_settings())
    client.port = again.daemon.http_port
    assert client.get("/portal/").status == 200


def test_a_post_without_the_csrf_token_is_refused(portal: Any) -> None:
    client = PageClient(portal.daemon.http_port)
    client.login("sam")
    job = _job(client)
    for token in (None, "forged-token-value", client.get("/portal/login").csrf()):
        answer = client.post(job + "/pause", {}, token)
        assert answer.status == 403, token
    assert "running" in client.get(job).text
    # The login form too: without the double-submit cookie's value, no login.
    anonymous = PageClient(portal.daemon.http_port)
    assert anonymous.post("/portal/login", {"login": "ann", "password": PASSWORD}).status \
        == 403
    # The page's own fetch() may send the token as a header instead.
    token = client.get(job).csrf()
    answer = client.request("POST", job + "/pause", b"", {"X-CSRF-Token": token})
    assert answer.status == 303


def test_failed_logins_are_throttled_even_for_the_right_password(start_daemon: Any) -> None:
    running = start_portal(start_daemon, portal={"failed_logins_per_login": 3})
    client = PageClient(running.daemon.http_port)
    for _ in range(3):
        answer = client.form("/portal/login", "/portal/login",
                             {"login": "ann", "password": "wrong password"})
        assert answer.status == 401 and "wrong" in answer.text
    answer = client.form("/portal/login", "/portal/login", {"login": "ann",
                                                            "password": PASSWORD})
    assert answer.status == 429 and "Too many failed attempts" in answer.text
    assert "smppd_portal" not in client.cookies
    other = client.form("/portal/login", "/portal/login", {"login": "sam",
                                                           "password": PASSWORD})
    assert other.status == 303  # another login from the same address still may


def test_a_unknown_login_and_a_wrong_password_get_the_same_answer(portal: Any) -> None:
    client = PageClient(portal.daemon.http_port)
    wrong = client.form("/portal/login", "/portal/login", {"login": "ann", "password": "x" * 12})
    unknown = client.form("/portal/login", "/portal/login", {"login": "nobody",
                                                             "password": "x" * 12})
    assert wrong.status == unknown.status == 401
    assert "The login or the password is wrong." in wrong.text
    assert "The login or the password is wrong." in unknown.text


def test_roles_decide_what_a_user_may_post(portal: Any) -> None:
    sender = PageClient(portal.daemon.http_port)
    sender.login("sam")
    job = _job(sender)
    assert sender.get("/portal/users").status == 403  # an owner's page
    viewer = PageClient(portal.daemon.http_port)
    viewer.login("vic")
    token = viewer.get("/portal/").csrf()
    for path, fields in ((job + "/pause", {}), (job + "/stop", {}),
                         ("/portal/send", {"to": "+48500100200", "from": "A", "text": "x"}),
                         ("/portal/contacts", {"phone": "+48500100200"}),
                         ("/portal/users", {"login": "sneaky", "role": "owner"})):
        answer = viewer.post(path, fields, token)
        assert answer.status == 403, path
    assert viewer.get("/portal/send").status == 403
    page = viewer.get(job)
    assert page.status == 200 and "Pause" not in page.text and "Stop" not in page.text
    assert ">Send<" not in viewer.get("/portal/").text


def test_one_account_never_sees_another_ones(portal: Any) -> None:
    acme = PageClient(portal.daemon.http_port)
    acme.login("sam")
    job = _job(acme)
    acme.form("/portal/send", "/portal/send", {"to": "+48500100200", "from": "Acme",
                                               "text": "for acme only", "action": "send"})
    other = PageClient(portal.daemon.http_port)
    other.login("olga")
    assert other.get(job).status == 404
    assert other.get(job + "/progress").status == 404
    token = other.get("/portal/").csrf()
    assert other.post(job + "/stop", {}, token).status == 404
    assert "for acme only" not in other.get("/portal/history").text
    assert "for acme only" not in other.get(f"/portal/history?job={job.rsplit('/', 1)[1]}").text
    assert "sam" not in other.get("/portal/users").text
    # A customer's session opens nothing in the console, nor the operator's in the portal.
    assert other.get("/ops/").status == 303
    operator = PageClient(portal.daemon.http_port)
    operator.login("root", area="ops")
    assert operator.get("/portal/").status == 303


def test_history_shows_markup_as_text(portal: Any) -> None:
    client = PageClient(portal.daemon.http_port)
    client.login("ann")
    answer = client.form("/portal/send", "/portal/send", {
        "to": "+48500100200", "from": "Acme", "text": "<script>alert(1)</script>",
        "ref_id": "\"><img src=x>", "action": "send"})
    assert answer.status == 303
    page = client.get("/portal/history").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page and "<img src=x>" not in page
    assert "&#34;&gt;&lt;img src=x&gt;" in page


def test_the_preview_prices_as_the_api_does(portal: Any) -> None:
    client = PageClient(portal.daemon.http_port)
    client.login("sam")
    import json

    def preview(**query: str) -> Any:
        from urllib.parse import urlencode

        return json.loads(client.get("/portal/send/preview?" + urlencode(query)).text)

    assert preview(to="+48500100200", text="x" * 161) == {
        "characters": 161, "parts": 2, "encoding": "gsm", "points": 2}
    assert preview(text="zażółć")["encoding"] == "ucs2"
    assert preview(text="zażółć")["points"] is None  # no number: no price yet
    assert preview(to="+4850", text="x")["field"] == "to"
    status, body = portal.client.send(text="x" * 161)
    assert status == 201 and body["parts"] == 2 and body["points"] == 2


def test_sent_by_and_channel_are_recorded_for_the_api_and_the_portal(portal: Any) -> None:
    from smppd.api.http import token_label
    from tests.support.running import TOKEN_A

    status, body = portal.client.send(text="from a program")
    assert status == 201
    message = portal.client.message(body["id"])
    assert message["channel"] == "api" and message["sent_by"] == token_label(TOKEN_A)
    assert TOKEN_A not in str(message)
    client = PageClient(portal.daemon.http_port)
    client.login("sam")
    client.form("/portal/send", "/portal/send", {"to": "+48500100200", "from": "Acme",
                                                 "text": "from a person", "action": "send"})
    status, page = portal.client.request("GET", "/v1/messages?channel=portal")
    assert status == 200
    assert [(m["channel"], m["sent_by"]) for m in page["messages"]] == [("portal", "sam")]
    _job(client)
    status, page = portal.client.request("GET", "/v1/messages?channel=job&limit=1")
    assert page["messages"][0]["sent_by"] == "sam"


def test_a_one_time_password_must_be_changed_first(portal: Any) -> None:
    owner = PageClient(portal.daemon.http_port)
    owner.login("ann")
    answer = owner.form("/portal/users", "/portal/users", {"login": "newbie", "role": "viewer",
                                                           "locale": "pl"})
    assert answer.status == 200
    import re

    password = re.search(r'id="one-time-password">([^<]+)<', answer.text).group(1)
    newbie = PageClient(portal.daemon.http_port)
    assert newbie.login("newbie", password).location == "/portal/password"
    assert newbie.get("/portal/history").location == "/portal/password"
    changed = newbie.form("/portal/password", "/portal/password", {
        "current": password, "new": "my own password", "repeat": "my own password"})
    assert changed.status == 303
    assert newbie.get("/portal/history").status == 200
    assert "Historia" in newbie.get("/portal/history").text  # their language
    # The owner disables them: their session ends at once.
    users = owner.get("/portal/users")
    user_id = re.search(r'/portal/users/(\d+)/disable', users.text.split("<td>newbie")[1]).group(1)
    owner.post(f"/portal/users/{user_id}/disable", {}, users.csrf())
    assert newbie.get("/portal/history").status == 303
    # An owner cannot lock themselves out.
    own = re.search(r'/portal/users/(\d+)/role', users.text.split("<td>ann")[1]).group(1)
    assert owner.post(f"/portal/users/{own}/role", {"role": "viewer"}, users.csrf()).status \
        == 403


def test_no_open_redirect_after_login(portal: Any) -> None:
    client = PageClient(portal.daemon.http_port)
    for target in ("https://evil.example/", "//evil.example/", "/ops/", "/portal/\\evil",
                   "/portal/\r\nSet-Cookie: a=b", "/portal/ x"):
        answer = client.form("/portal/login", "/portal/login", {
            "login": "ann", "password": PASSWORD, "next": target})
        assert answer.location == "/portal/", target
    answer = client.form("/portal/login", "/portal/login", {
        "login": "ann", "password": PASSWORD, "next": "/portal/history?status=failed"})
    assert answer.location == "/portal/history?status=failed"


def test_pages_carry_a_strict_content_security_policy(portal: Any) -> None:
    client = PageClient(portal.daemon.http_port)
    answer = client.get("/portal/login")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    css = client.get("/portal/static/portal.css")
    assert css.status == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/portal/static/../templates/base.html").status == 404
    assert "<script>" not in answer.text and "style=" not in answer.text


def test_a_csv_kept_on_disk_makes_the_same_job_and_contacts(portal: Any,
                                                            monkeypatch: Any) -> None:
    """Portal uploads are read from disk as API uploads are (smppd.api.uploads): the
    file part is a window of the spooled body, not read into memory."""
    from smppd.api import forms, uploads

    seen: list[Any] = []
    finish, csv_rows = uploads.UploadBuffer.finish, forms.csv_rows
    monkeypatch.setattr(uploads, "SPOOL_BYTES", 64)
    monkeypatch.setattr(uploads.UploadBuffer, "finish",
                        lambda self: seen.append(finish(self)) or seen[-1])
    read: list[type] = []  # what the views give the CSV reader
    monkeypatch.setattr(forms, "csv_rows", lambda data, *args, **kwargs: (
        read.append(type(data)), csv_rows(data, *args, **kwargs))[1])
    client = PageClient(portal.daemon.http_port)
    client.login("ann")
    _job(client)
    assert isinstance(seen[-1], uploads.SpooledBody)
    status, page = portal.client.request("GET", "/v1/messages?channel=job&limit=100")
    assert status == 200 and len(page["messages"]) == 30
    blank = client.form("/portal/jobs/new", "/portal/jobs",
                        {"name": "J", "from": "Acme", "text": "Hi", "throughput": "1"},
                        files={"file": ("r.csv", b" \n" * 100)})
    assert blank.status == 400 and "upload a CSV file" in blank.text
    contacts = "phone,first_name\n" + "".join(f"+4860010{n:04d},C{n}\n" for n in range(20))
    answer = client.form("/portal/contacts", "/portal/contacts/import", {},
                         files={"file": ("c.csv", contacts.encode())})
    assert answer.status == 200 and isinstance(seen[-1], uploads.SpooledBody)
    status, listed = portal.client.request("GET", "/v1/contacts?limit=100")
    assert status == 200 and len(listed["contacts"]) == 20, listed
    assert read == [uploads.SpooledBody, uploads.SpooledBody]  # the job's, the contacts'
