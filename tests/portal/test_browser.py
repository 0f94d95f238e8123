"""The portal and console in a real browser: Playwright driving Debian's Chromium
against the real daemon and the fake SMSC (issue 15's browser tests).

Every page visited is saved as a screenshot in the test's tmp folder (screenshots/);
with SMPPD_SAVE_SCREENSHOTS=DIR set, the set is also copied there (the committed
copy is docs/screenshots/). Without a Chromium the tests skip and say why:
`apt-get install -y chromium` (Playwright's own browser download is not used).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smppd.protocol.text import Encoding
from tests.conftest import call, wait_for
from tests.support.pages import PASSWORD, PageClient, add_user, start_portal

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                               "(pip install -e '.[test]')")

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
POLL_NUMBER = "+48500600700"


def _chromium() -> str | None:
    for candidate in (os.environ.get("SMPPD_CHROMIUM"), "/usr/bin/chromium",
                      "/usr/bin/chromium-browser", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install -y chromium, or set "
                    "SMPPD_CHROMIUM): the browser tests need one")
    with sync_api.sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=executable,
                                                  args=CHROMIUM_ARGS)
        except Exception as exc:  # a broken install: say so, do not fail the suite
            pytest.skip(f"Chromium at {executable} does not start: {exc}")
        yield launched
        launched.close()


class Shots:
    """Screenshots named in the order taken, as a person would look at them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, page: Any, name: str) -> Path:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        target = os.environ.get("SMPPD_SAVE_SCREENSHOTS")
        if target:
            Path(target).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(target) / path.name)
        return path


@pytest.fixture
def shots(tmp_path: Path) -> Shots:
    return Shots(tmp_path / "screenshots")


@pytest.fixture
def portal(start_daemon: Any) -> Any:
    running = start_portal(start_daemon, inbound_numbers=[
        {"number": POLL_NUMBER, "kind": "dedicated", "price": {"reservation": 10,
                                                               "monthly": 5}}])
    running.smsc.behaviour.receipt_delay = 0.1
    return running


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    dialogs: list[str] = []
    opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    opened.dialogs = dialogs
    yield opened
    context.close()


def base(portal: Any) -> str:
    return f"http://127.0.0.1:{portal.daemon.http_port}"


def sign_in(page: Any, portal: Any, login: str, area: str = "portal") -> None:
    page.goto(f"{base(portal)}/{area}/login")
    page.get_by_label("Login").fill(login)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert "/login" not in page.url, page.content()[:1000]


def reload_until(page: Any, check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"the page did not show it in {timeout:g} s: {page.url}\n"
                                 + page.locator("main").inner_text()[:3000])
        time.sleep(0.3)
        page.reload()


def test_sign_in_send_and_see_it_delivered_in_the_history(portal: Any, page: Any,
                                                          shots: Shots) -> None:
    page.goto(f"{base(portal)}/portal/")
    assert page.url.endswith("/portal/login?next=%2Fportal%2F")
    shots.take(page, "01-login")
    sign_in(page, portal, "ann")
    shots.take(page, "02-dashboard-empty")
    page.get_by_role("link", name="Send", exact=True).click()
    page.get_by_label("To", exact=True).fill("+48500100200")
    page.get_by_label("From", exact=True).fill("Acme")
    page.get_by_label("Text", exact=True).fill("Zażółć gęślą jaźń " * 5)
    # As the user types: the daemon's own pricing says UCS-2, 2 parts, 2 points.
    parts = page.locator("[data-preview-field=parts]")
    sync_api.expect(parts).to_have_text("2")
    sync_api.expect(page.locator("[data-preview-field=encoding]")).to_have_text("ucs2")
    sync_api.expect(page.locator("[data-preview-field=points]")).to_have_text("2")
    shots.take(page, "03-send-preview")
    with page.expect_navigation():
        page.get_by_role("button", name="Send", exact=True).click()
    sync_api.expect(page.get_by_role("status")).to_contain_text("queued")
    sync_api.expect(page.get_by_label("From", exact=True)).to_have_value("Acme")  # kept
    # A text that is markup is shown as text, never run.
    page.get_by_label("To", exact=True).fill("+48500100201")
    page.get_by_label("Text", exact=True).fill("<script>alert('x')</script><b>bold?</b>")
    with page.expect_navigation():
        page.get_by_role("button", name="Send", exact=True).click()
    sync_api.expect(page.get_by_role("status")).to_contain_text("queued")
    page.get_by_role("link", name="History", exact=True).click()
    reload_until(page, lambda: page.locator(".history summary .status-delivered").count() == 2)
    first = page.locator(".history details").first
    first.locator("summary").click()
    details = first.locator(".details")
    sync_api.expect(details).to_contain_text("ann")  # the sender's login
    sync_api.expect(details).to_contain_text("portal")  # the channel
    assert first.locator("pre.content").inner_text() == "<script>alert('x')</script><b>bold?</b>"
    assert page.locator("b", has_text="bold?").count() == 0
    assert page.dialogs == []
    sync_api.expect(details.locator("table code").first).not_to_have_text("–")  # SMSC id
    sync_api.expect(page.locator("#information")).to_contain_text("undelivered")
    shots.take(page, "04-history-details")
    page.get_by_label("Channel").select_option("api")
    page.get_by_role("button", name="Filter").click()
    sync_api.expect(page.get_by_text("No messages match.")).to_be_visible()
    mobile = page.context.browser.new_context(viewport={"width": 390, "height": 844},
                                              device_scale_factor=1, is_mobile=True)
    phone = mobile.new_page()
    phone.context.add_cookies(page.context.cookies())
    phone.goto(f"{base(portal)}/portal/history")
    phone.locator(".history summary").first.click()
    shots.take(phone, "05-history-phone")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 392  # no sideways scroll
    mobile.close()


CSV = "to,name\n" + "".join(f"+4850010{n:04d},Person {n}\n" for n in range(120))


def test_csv_job_pause_resume_stop_and_the_refund(portal: Any, page: Any, shots: Shots,
                                                  tmp_path: Path) -> None:
    sign_in(page, portal, "sam")
    balance_before = call(lambda: portal.daemon.get_balance(portal.daemon.accounts["acme"]))
    upload = tmp_path / "recipients.csv"
    upload.write_text(CSV)
    page.goto(f"{base(portal)}/portal/jobs/new")
    page.get_by_label("Name").fill("Spring sale")
    page.get_by_label("From", exact=True).fill("Acme")
    page.get_by_label("Text", exact=True).fill("Hi {name}, 20% off today")
    page.get_by_label("CSV file").set_input_files(str(upload))
    page.get_by_label("At most, messages per second (optional)").fill("2")
    shots.take(page, "06-job-new")
    page.get_by_role("button", name="Create the job").click()
    sync_api.expect(page.get_by_role("status")).to_contain_text("created")
    sync_api.expect(page.locator("h1 .state")).to_have_text("running")
    page.get_by_role("button", name="Pause").click()
    sync_api.expect(page.locator("h1 .state")).to_have_text("paused")
    page.get_by_role("button", name="Resume").click()
    sync_api.expect(page.locator("h1 .state")).to_have_text("running")
    time.sleep(1.5)  # a few go out at 2/s
    page.get_by_role("link", name="Stop…").click()
    confirm = page.locator(".card p").first.inner_text()
    cancelled, points = (int(n) for n in re.findall(r"\d+", confirm)[:2])
    assert 100 <= cancelled < 120 and points == cancelled, confirm
    shots.take(page, "07-job-stop-confirm")
    page.get_by_role("button", name="Stop the job").click()
    sync_api.expect(page.get_by_role("status")).to_contain_text("points refunded")
    sync_api.expect(page.locator("h1 .state")).to_have_text("stopped")
    shots.take(page, "08-job-stopped")
    refunded = int(re.search(r"(\d+) points refunded",
                             page.get_by_role("status").inner_text()).group(1))
    assert refunded >= points - 5  # a few more may have gone out after the confirmation
    page.get_by_role("link", name="Dashboard", exact=True).click()
    row = page.locator("tr", has_text="Spring sale")
    sync_api.expect(row.locator("td.refund")).to_have_text(str(refunded))
    shown = int(page.locator("#balance").inner_text().replace(",", "").replace("\u202f", ""))
    assert shown == balance_before - 120 + refunded
    shots.take(page, "09-dashboard-refund")


def test_inbound_message_and_a_poll_with_its_percentages(portal: Any, page: Any,
                                                         shots: Shots) -> None:
    sign_in(page, portal, "ann")
    page.goto(f"{base(portal)}/portal/inbound")
    page.get_by_role("button", name="Reserve").click()
    sync_api.expect(page.get_by_role("status")).to_contain_text("reserved")
    call(portal.smsc.inject_mo, "48600100200", POLL_NUMBER[1:], "Hello, is the shop open?")
    reload_until(page, lambda: "is the shop open?" in page.locator("#inbound-list").inner_text()
                 if page.locator("#inbound-list").count() else False)
    shots.take(page, "10-inbound")
    page.goto(f"{base(portal)}/portal/polls/new")
    now = time.time()
    page.get_by_label("Name").fill("Ice cream")
    page.get_by_label("Replies come from").fill("Acme")
    page.get_by_label("Prefix (the first word of a vote)").fill("VOTE")
    page.get_by_label("Starts (UTC)").fill(time.strftime("%Y-%m-%dT%H:%M", time.gmtime(now - 120)))
    page.get_by_label("Ends (UTC)").fill(time.strftime("%Y-%m-%dT%H:%M", time.gmtime(now + 3600)))
    page.get_by_label("Options, one a line: KEYWORD or KEYWORD | reply").fill(
        "vanilla | Thanks for vanilla!\nchocolate\nmint")
    page.locator("#reply_default").fill("Thanks for your vote ({keyword})")
    page.get_by_role("button", name="Save the poll").click()
    sync_api.expect(page.get_by_role("status")).to_contain_text("saved")
    for sender, vote, ucs2 in (("48600100201", "VOTE chocolate", False),
                               ("48600100202", "vote CHOCOLATE please", False),
                               ("48600100203", "Vote Chocolate", False),
                               ("48600100204", "VOTE vanilla ąę", True),
                               ("48600100205", "VOTE strawberry", False)):
        call(portal.smsc.inject_mo, sender, POLL_NUMBER[1:], vote,
             encoding=Encoding.UCS2 if ucs2 else None)
    reload_until(page, lambda: "4 votes counted of 5" in page.locator("main").inner_text())
    results = page.locator("#poll-results tbody tr")
    assert [results.nth(i).inner_text().split("\t") for i in range(3)] == [
        ["vanilla", "1", "25.0%"], ["chocolate", "3", "75.0%"], ["mint", "0", "0.0%"]]
    assert "chocolate: 3 votes, 75%" in page.locator("svg.chart desc").text_content()
    sync_api.expect(page.locator("main")).to_contain_text("no such option: 1")
    shots.take(page, "11-poll-stats")
    with page.expect_download() as download:
        page.get_by_role("link", name="Results as CSV").click()
    assert "chocolate,3,75.0" in Path(download.value.path()).read_text()


def test_a_viewer_sees_no_buttons_and_a_forged_post_is_refused(portal: Any, page: Any,
                                                               shots: Shots) -> None:
    owner = PageClient(portal.daemon.http_port)
    owner.login("sam")
    answer = owner.form("/portal/jobs/new", "/portal/jobs",
                        {"name": "Quiet", "from": "Acme", "text": "Hi {name}",
                         "throughput": "1"}, files={"file": ("r.csv", CSV.encode())})
    assert answer.status == 303, answer.text[:500]
    job_path = answer.location.split("?")[0]
    sign_in(page, portal, "vic")
    nav = page.get_by_role("navigation", name="Main")
    sync_api.expect(nav.get_by_role("link", name="Send")).to_have_count(0)
    page.goto(base(portal) + job_path)
    for name in ("Pause", "Resume", "Stop…"):
        sync_api.expect(page.get_by_role("button", name=name)).to_have_count(0)
        sync_api.expect(page.get_by_role("link", name=name)).to_have_count(0)
    shots.take(page, "12-viewer-job")
    # The viewer's own session and token, a POST the page never offered: refused.
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    forged = page.request.post(base(portal) + job_path + "/pause", form={"csrf": token})
    assert forged.status == 403
    assert "role does not allow" in forged.text()
    forged = page.request.post(base(portal) + "/portal/send",
                               form={"csrf": token, "to": "+48500100200", "from": "Acme",
                                     "text": "x"})
    assert forged.status == 403
    # The owner's session without a token: refused too, and nothing changed.
    refused = owner.post(job_path + "/pause", {})
    assert refused.status == 403 and "did not come from this site" in refused.text
    assert "running" in owner.get(job_path).text
    page.get_by_role("button", name="Sign out").click()
    sync_api.expect(page.get_by_role("status")).to_contain_text("signed out")
    page.goto(base(portal) + job_path)
    assert "/portal/login" in page.url  # the old session is gone
    shots.take(page, "13-signed-out")


def test_the_operators_console(portal: Any, page: Any, shots: Shots) -> None:
    sign_in(page, portal, "root", area="ops")
    binds = page.locator("#binds")
    sync_api.expect(binds).to_contain_text("carrier-a")
    sync_api.expect(binds).to_contain_text("bound")
    shots.take(page, "14-ops-binds")
    page.get_by_role("button", name="Suspend").click()
    sync_api.expect(binds).to_contain_text("suspended")
    assert page.dialogs == ["Suspend carrier-a? Nothing is sent through it until you resume it."]
    wait_for(lambda: not portal.daemon.connectors["carrier-a"].bound, what="unbound")
    page.get_by_role("button", name="Resume").click()
    wait_for(lambda: portal.daemon.connectors["carrier-a"].bound, what="bound again")
    page.get_by_role("link", name="Accounts", exact=True).click()
    page.get_by_role("link", name="acme").click()
    before = int(page.locator("#balance").inner_text().replace(",", "").replace("\u202f", ""))
    page.get_by_label("Points").fill("500")
    page.get_by_label("Why (kept in the ledger)").fill("invoice 42")
    page.get_by_role("button", name="Add the points").click()
    sync_api.expect(page.get_by_role("status")).to_contain_text("ledger")
    after = int(page.locator("#balance").inner_text().replace(",", "").replace("\u202f", ""))
    assert after == before + 500
    sync_api.expect(page.locator("table").first).to_contain_text("ops:root")
    page.get_by_label("Login", exact=True).fill("newbie")
    page.get_by_role("button", name="Create the user").click()
    password = page.locator("#one-time-password").inner_text()
    shots.take(page, "15-ops-account")
    # The new user signs in with it and must choose a password first.
    fresh = page.context.browser.new_context()
    theirs = fresh.new_page()
    theirs.goto(f"{base(portal)}/portal/login")
    theirs.get_by_label("Login").fill("newbie")
    theirs.get_by_label("Password").fill(password)
    theirs.get_by_role("button", name="Sign in").click()
    assert theirs.url.endswith("/portal/password")
    shots.take(theirs, "16-first-login-password")
    fresh.close()


def test_polish_is_chosen_per_user(portal: Any, page: Any, shots: Shots) -> None:
    add_user(portal.daemon, "acme", "zofia", "sender", locale="pl")
    sign_in(page, portal, "zofia")
    sync_api.expect(page.locator("h1")).to_have_text("Pulpit")
    assert page.locator("html").get_attribute("lang") == "pl"
    page.goto(f"{base(portal)}/portal/history")
    sync_api.expect(page.locator("#information h2")).to_have_text("Informacje")
    shots.take(page, "17-history-polish")


def test_a_pdf_report_is_generated_and_downloaded(portal: Any, page: Any) -> None:
    assert portal.daemon.portal.backend.reports.available
    sign_in(page, portal, "ann")
    page.goto(f"{base(portal)}/portal/reports")
    page.get_by_label("Format").first.select_option("pdf")
    page.get_by_role("button", name="Generate").click()
    reload_until(page, lambda: page.get_by_role("link", name="Download").count() > 0)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").first.click()
    assert Path(download.value.path()).read_bytes().startswith(b"%PDF")
