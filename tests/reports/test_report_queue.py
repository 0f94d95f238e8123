"""Queued reports across a restart, the async threshold, e-mail through a real SMTP
server (aiosmtpd on 127.0.0.1 with STARTTLS and a login), and periodic reports on a
simulated clock (exactly one report per run, across a DST change)."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError
from twisted.internet import task

from smppd.ids import new_id
from smppd.reports import periods
from smppd.store import database
from smppd.store import schema as t
from tests.conftest import call, self_signed
from tests.reports.reports_world import (
    POSTGRES_URL,
    database_url,
    download,
    make_smsc,
    start,
    stop_smsc,
    until,
)
from tests.support.running import Client


@pytest.fixture
def smsc(reactor_running: Any) -> Iterator[Any]:
    fake = make_smsc()
    yield fake
    stop_smsc(fake)


@pytest.fixture
def daemons() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for daemon in started:
        if daemon.started:
            call(daemon.stop, drain_timeout=2.0)


def _send(client: Client, count: int) -> None:
    for i in range(count):
        code, body = client.send(to=f"+48500100{i:03d}")
        assert code == 201, body


def _report(client: Client, report_id: str) -> dict[str, Any]:
    code, body = client.request("GET", f"/v1/reports/{report_id}")
    assert code == 200, body
    return body


def _ready(client: Client, report_id: str, timeout: float = 30) -> dict[str, Any]:
    return until(lambda: (lambda r: r if r["state"] in ("ready", "failed") else None)(
        _report(client, report_id)), f"report {report_id}", timeout)


# Queued reports -------------------------------------------------------------------------

def test_async_and_large_reports_are_queued_then_ready(smsc: Any, daemons: list[Any],
                                                       tmp_path: Path) -> None:
    daemon = start(database_url("sqlite", tmp_path), smsc.port, async_rows=5)
    daemons.append(daemon)
    client = Client(daemon.http_port)
    _send(client, 8)
    code, small = client.request("POST", "/v1/reports", {"type": "daily", "format": "csv",
                                                         "period": "today", "async": True})
    assert code == 201 and small["state"] == "queued" and small["progress"] == 0
    assert set(small) >= {"id", "state", "progress", "rows"}
    # Over the threshold (8 messages estimated from the rollups > 5): queued.
    code, big = client.request("POST", "/v1/reports", {"type": "detailed", "format": "csv",
                                                       "period": "today"})
    assert code == 201 and big["state"] == "queued", big
    done = _ready(client, big["id"])
    assert (done["state"], done["rows"], done["progress"]) == ("ready", 8, 1.0)
    assert _ready(client, small["id"])["state"] == "ready"
    _, _, metrics = download(client, "/metrics")
    assert 'smppd_reports_total{format="csv",result="ready",type="detailed"} 1.0' in \
        metrics.decode()
    code, listing = client.request("GET", "/v1/reports")
    assert [r["id"] for r in listing["reports"]][:2] == [big["id"], small["id"]]  # newest first
    client.close()


def _insert(engine: Any, account_id: int, state: str, owner: str | None,
            lease: dt.datetime | None, attempts: int = 1) -> str:
    report_id = new_id()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    # Today in Warsaw (one day: an hour either side of now spans two near midnight).
    today = periods.named("today", periods.zone("Europe/Warsaw"), time.time())
    request = {"type": "daily", "format": "csv", "period": "today", "name": None,
               "include_jobs": True, "async": True, "email": [], "delimiter": ","}
    with engine.begin() as conn:
        conn.execute(t.reports.insert().values(
            id=report_id, account_id=account_id, type="daily", format="csv",
            request=json.dumps(request), period_start=today.start_utc,
            period_end=today.end_utc, timezone="Europe/Warsaw", state=state,
            owner=owner, lease_until=lease, attempts=attempts, created_at=now,
            started_at=now if state == "running" else None))
    return report_id


def test_reports_running_at_a_restart_are_run_again(smsc: Any, daemons: list[Any],
                                                    tmp_path: Path) -> None:
    url = database_url("sqlite", tmp_path)
    first = start(url, smsc.port)
    daemons.append(first)
    client = Client(first.http_port)
    _send(client, 3)
    owner = first.reports.owner
    account = first.accounts["acme"].id
    call(first.stop, drain_timeout=2.0)
    client.close()
    engine = database.make_engine(url)
    soon = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(minutes=5)
    past = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=5)
    # As a kill -9 would leave them: ours running (lease still valid), one queued, one
    # of a dead daemon elsewhere (lease run out), one of a live daemon elsewhere.
    ours = _insert(engine, account, "running", owner, soon)
    queued = _insert(engine, account, "queued", None, None, attempts=0)
    dead = _insert(engine, account, "running", "elsewhere:/etc/smppd.yaml", past)
    alive = _insert(engine, account, "running", "elsewhere:/etc/smppd.yaml", soon)
    second = start(url, smsc.port)
    daemons.append(second)
    client = Client(second.http_port)
    for report_id in (ours, queued, dead):
        done = _ready(client, report_id)
        assert done["state"] == "ready" and done["rows"] == 1, done
        code, _, data = download(client, f"/v1/reports/{report_id}/file")
        assert code == 200 and data.decode().count("\n") == 2  # header + today
    with engine.connect() as conn:
        attempts = dict(conn.execute(select(t.reports.c.id, t.reports.c.attempts)).all())
    assert (attempts[ours], attempts[queued], attempts[dead]) == (2, 1, 2)
    assert _report(client, alive)["state"] == "running"  # another live daemon's: left alone
    # A lease that runs out later (its daemon died since) is taken when it does, not at
    # the next 300 s poll of a lone daemon (issue 13).
    with engine.begin() as conn:
        conn.execute(update(t.reports).where(t.reports.c.id == alive).values(
            lease_until=dt.datetime.now(dt.UTC).replace(tzinfo=None)
            + dt.timedelta(seconds=2)))
    call(second.reports.sweep)  # as the store changed behind its back: it learns the time
    done = _ready(client, alive, timeout=15)
    assert done["state"] == "ready", done
    client.close()
    engine.dispose()


# E-mail ----------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the test's own CA)."""
    cert, key = self_signed("127.0.0.1", ip=True)
    cert_path, key_path = folder / "smtp.pem", folder / "smtp.key"
    cert_path.write_bytes(cert)
    key_path.write_bytes(key)
    return cert_path, key_path


class Inbox:
    """aiosmtpd handler: keeps what it is sent."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Any]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(
                envelope.content, policy=email.policy.default)))
        return "250 OK"


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                  data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        b"reports", b"s3cret-pass")
    return AuthResult(success=ok)


def _smtp_server(port: int, folder: Path, inbox: Inbox) -> Controller:
    import ssl

    cert, key = _certificate(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=context,
                            require_starttls=True, authenticator=_authenticate,
                            auth_required=True)
    controller.start()
    return controller


def test_reports_are_emailed_attached_or_linked_and_failures_retried(
        smsc: Any, daemons: list[Any], tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("SMTP_USER", "reports")
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret-pass")
    port = _free_port()
    cert_dir = tmp_path / "tls"
    cert_dir.mkdir()
    smtp = {"host": "127.0.0.1", "port": port, "starttls": True, "username": "${SMTP_USER}",
            "password": "${SMTP_PASSWORD}", "from": "reports@smppd.test", "timeout": 5,
            "ca_file": str(cert_dir / "smtp.pem")}
    _certificate(cert_dir)  # the file must exist for the configuration to be valid
    daemon = start(database_url("sqlite", tmp_path), smsc.port, smtp=smtp,
                   attach_max_bytes=300, email_retry=0.3,
                   link_base_url="https://sms.example.test")
    daemons.append(daemon)
    client = Client(daemon.http_port)
    _send(client, 3)
    # No server yet: the send fails, the error shows on the report, it is retried.
    code, first = client.request("POST", "/v1/reports", {
        "type": "daily", "format": "csv", "period": "today", "name": "Daily numbers",
        "email": ["ops@example.test", "boss@example.test"]})
    assert code == 201, first
    failed = until(lambda: (lambda r: r if r["email_error"] else None)(
        _report(client, first["id"])), "a failed e-mail attempt")
    assert failed["email_state"] == "pending" and failed["email_attempts"] >= 1
    assert str(port) in failed["email_error"]
    inbox = Inbox()
    controller = _smtp_server(port, cert_dir, inbox)
    try:
        sent = until(lambda: (lambda r: r if r["email_state"] == "sent" else None)(
            _report(client, first["id"])), "the e-mail sent after a retry")
        assert sent["email_error"] is None
        recipients, message = inbox.messages[0]
        assert sorted(recipients) == ["boss@example.test", "ops@example.test"]
        assert "Daily numbers" in message["Subject"]
        assert message["Message-ID"] == f"<report-{first['id']}@smppd>"
        attachments = [part for part in message.walk() if part.get_filename()]
        assert [a.get_filename() for a in attachments] == [sent["file_name"]]
        _, _, data = download(client, f"/v1/reports/{first['id']}/file")
        assert attachments[0].get_payload(decode=True) == data
        # Over attach_max_bytes: a link instead of the file.
        code, big = client.request("POST", "/v1/reports", {
            "type": "detailed", "format": "csv", "period": "today", "include_content": True,
            "email": ["ops@example.test"]})
        assert code == 201
        until(lambda: _report(client, big["id"])["email_state"] == "sent", "link e-mail")
        _, linked = inbox.messages[-1]
        body = linked.get_body(("plain",)).get_content()
        assert f"https://sms.example.test/v1/reports/{big['id']}/file" in body
        assert not [part for part in linked.walk() if part.get_filename()]
    finally:
        controller.stop()
        client.close()


def test_email_retries_left_by_a_stopped_daemon_are_sent_when_due(
        smsc: Any, daemons: list[Any], tmp_path: Path) -> None:
    """Issue 13: alone, the e-mail outbox is polled every 300 s only, so what falls due
    later is read from the store and timed: here retries left by a daemon that
    stopped (its retry timers died with it), more of them than one look takes (20)."""
    port = _free_port()
    cert_dir = tmp_path / "tls"
    cert_dir.mkdir()
    _certificate(cert_dir)
    smtp = {"host": "127.0.0.1", "port": port, "starttls": True, "username": "reports",
            "password": "s3cret-pass", "from": "reports@smppd.test", "timeout": 5,
            "ca_file": str(cert_dir / "smtp.pem")}
    url = database_url("sqlite", tmp_path)
    first = start(url, smsc.port, smtp=smtp, email_retry=4.0)
    daemons.append(first)
    client = Client(first.http_port)
    ids = []
    for _ in range(22):
        code, report = client.request("POST", "/v1/reports", {
            "type": "daily", "format": "csv", "period": "today",
            "email": ["ops@example.test"]})
        assert code == 201, report
        ids.append(report["id"])
    until(lambda: all(_report(client, i)["email_error"] for i in ids), "22 failed attempts")
    client.close()
    call(first.stop, drain_timeout=2.0)
    inbox = Inbox()
    controller = _smtp_server(port, cert_dir, inbox)
    try:
        second = start(url, smsc.port, smtp=smtp, email_retry=4.0)
        daemons.append(second)
        client = Client(second.http_port)
        until(lambda: all(_report(client, i)["email_state"] == "sent" for i in ids),
              "every retry sent by the next daemon", timeout=30)
        assert len(inbox.messages) == 22
        client.close()
    finally:
        controller.stop()


# Periodic reports --------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_periodic_reports_run_once_per_period_on_a_simulated_clock(
        smsc: Any, daemons: list[Any], tmp_path: Path, backend: str) -> None:
    if backend == "postgresql" and not POSTGRES_URL:
        pytest.skip("PostgreSQL report tests need SMPPD_TEST_POSTGRES_URL "
                    "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    clock = task.Clock()
    # Saturday 28 March 2026, 10:00 in Warsaw; the clocks go forward that night.
    clock.advance(dt.datetime(2026, 3, 28, 9, 0, tzinfo=dt.UTC).timestamp())
    url = database_url(backend, tmp_path)
    daemon = start(url, smsc.port, clock=clock, schedule_check=60)
    daemon.reports.isolate = False  # on threads: six worker starts would only add time
    daemons.append(daemon)
    client = Client(daemon.http_port)
    code, daily = client.request("POST", "/v1/report-schedules", {
        "every": "day", "type": "daily", "format": "csv", "name": "Every day"})
    assert code == 201 and daily["next_run"] == "2026-03-28T23:00:00Z", daily  # midnight
    code, monthly = client.request("POST", "/v1/report-schedules", {
        "every": "month", "type": "customer", "format": "xlsx"})
    assert monthly["next_run"] == "2026-03-31T22:00:00Z"  # 1 April, summer time
    assert [s["id"] for s in client.request("GET", "/v1/report-schedules")[1]["schedules"]] \
        == [monthly["id"], daily["id"]]

    def reports() -> list[dict[str, Any]]:
        return client.request("GET", "/v1/reports")[1]["reports"]

    def advance(seconds: float) -> None:
        """Move the clock, then look for due runs and wait for the look to end (the
        schedule loop may look at the same time: the unique run key settles it)."""
        call(clock.advance, seconds)
        call(daemon.reports.run_schedules)

    advance(14 * 3600)  # past midnight: Saturday's report
    until(lambda: len(reports()) == 1 and reports()[0]["state"] == "ready", "first run")
    first = reports()[0]
    assert first["period"] == {"since": "2026-03-27T23:00:00Z", "until": "2026-03-28T23:00:00Z"}
    assert first["schedule"] == daily["id"] and first["name"] == "Every day"
    code, _, data = download(client, f"/v1/reports/{first['id']}/file")
    assert data.decode().splitlines()[1].startswith("2026-03-28,0,")  # an empty day is a row
    # A second daemon (or this one after a restart) trying the same run makes nothing:
    # the run key is unique. Put next_run back as if the advance was never committed.
    engine = database.make_engine(url)
    with engine.begin() as conn:
        conn.execute(update(t.report_schedules).where(t.report_schedules.c.id == daily["id"])
                     .values(next_run=dt.datetime(2026, 3, 28, 23, 0)))
    made = call(lambda: daemon.reports.read_thread(
        lambda: daemon.reports._make_runs(clock.seconds())))
    assert made == 0 and len(reports()) == 1
    # Two daemons at the very same moment: one report, whoever wins.
    with engine.begin() as conn:
        conn.execute(update(t.report_schedules).where(t.report_schedules.c.id == daily["id"])
                     .values(next_run=dt.datetime(2026, 3, 28, 23, 0)))
    outcomes: list[int] = []
    racers = [threading.Thread(target=lambda: outcomes.append(
        daemon.reports._make_runs(clock.seconds()))) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(30)
    assert sorted(outcomes) == [0, 0] and len(reports()) == 1
    # Sunday has 23 hours in Warsaw; the next run covers exactly it.
    advance(86400)
    until(lambda: len(reports()) == 2 and reports()[0]["state"] == "ready", "second run")
    assert reports()[0]["period"] == {"since": "2026-03-28T23:00:00Z",
                                      "until": "2026-03-29T22:00:00Z"}
    code, listed = client.request("GET", "/v1/report-schedules")
    by_id = {s["id"]: s for s in listed["schedules"]}
    assert by_id[daily["id"]]["next_run"] == "2026-03-30T22:00:00Z"
    # Days missed while smppd was down are caught up, one report each.
    advance(3 * 86400)
    until(lambda: len(reports()) == 6, "three daily runs and the monthly one")
    with engine.connect() as conn:
        keys = conn.execute(text("SELECT COUNT(*), COUNT(DISTINCT run_key) FROM reports"))\
            .one()
    assert keys[0] == keys[1] == 6
    monthly_run = next(r for r in reports() if r["schedule"] == monthly["id"])
    assert monthly_run["period"]["since"] == "2026-02-28T23:00:00Z"
    client.close()
    engine.dispose()


def _alone(smsc: Any, daemons: list[Any], tmp_path: Path,
           hour: int) -> tuple[Any, task.Clock, list[float]]:
    """A lone daemon on a simulated clock at `hour` UTC on 28 March 2026, its start's
    look at the schedules ended, and the moments of its looks from now on."""
    clock = task.Clock()
    clock.advance(dt.datetime(2026, 3, 28, hour, 0, tzinfo=dt.UTC).timestamp())
    daemon = start(database_url("sqlite", tmp_path), smsc.port, clock=clock,
                   schedule_check=60)
    daemons.append(daemon)
    reports = daemon.reports
    reports.isolate = False
    until(lambda: reports._looking is None and reports._next_run == float("inf"),
          "the start's look")
    looks: list[float] = []
    original = reports._make_runs
    reports._make_runs = lambda now, **kw: (looks.append(now), original(now, **kw))[1]
    return daemon, clock, looks


def test_alone_the_schedules_are_read_when_a_run_is_due_not_every_check(
        smsc: Any, daemons: list[Any], tmp_path: Path) -> None:
    """Issue 13: an idle daemon idles. Alone, the daemon makes every schedule itself, so
    it knows when the next run is due; a schedule made meanwhile is seen at once."""
    daemon, clock, looks = _alone(smsc, daemons, tmp_path, 9)  # 10:00 in Warsaw
    reports = daemon.reports

    def check(minutes: int) -> None:
        """`minutes` of schedule checks, each waited for."""
        for _ in range(minutes):
            call(clock.advance, 60)
            call(reports.run_schedules)

    check(5)
    assert looks == []  # no schedule (the start's look found none): no look
    client = Client(daemon.http_port)
    code, daily = client.request("POST", "/v1/report-schedules", {
        "every": "day", "type": "daily", "format": "csv"})
    assert code == 201 and daily["next_run"] == "2026-03-28T23:00:00Z", daily
    check(5)
    assert len(looks) == 1  # the new schedule is read once, and its next run learnt
    check(13 * 60 + 40)  # 09:10 to 22:50 UTC: nothing due, nothing read
    assert len(looks) == 1
    check(15)  # midnight in Warsaw passes: the run is made
    assert len(looks) == 2
    until(lambda: [r["state"] for r in client.request("GET", "/v1/reports")[1]["reports"]]
          == ["ready"], "the run's report")


def test_alone_a_timer_at_the_next_run_makes_it_and_nothing_wakes_in_between(
        smsc: Any, daemons: list[Any], tmp_path: Path) -> None:
    """Issue 13: alone, no schedule means no timer at all; a schedule made sets one at
    once, its look sets one at the next run (at most an hour away), and that timer
    makes the run: no look every schedule_check, and no one calls run_schedules."""
    daemon, clock, looks = _alone(smsc, daemons, tmp_path, 21)  # 22:00 in Warsaw
    reports = daemon.reports
    assert call(clock.getDelayedCalls) == []  # no schedule: nothing to wake for
    client = Client(daemon.http_port)
    code, daily = client.request("POST", "/v1/report-schedules", {
        "every": "day", "type": "daily", "format": "csv"})
    assert code == 201 and daily["next_run"] == "2026-03-28T23:00:00Z", daily
    assert [c.getTime() for c in call(clock.getDelayedCalls)] == [clock.seconds()]
    call(clock.advance, 0)  # the look the new schedule asked for
    until(lambda: reports._looking is None and reports._next_run != float("inf") and
          reports._next_run is not None, "the look after the schedule")
    assert len(looks) == 1
    due = dt.datetime(2026, 3, 28, 23, 0, tzinfo=dt.UTC).timestamp()
    assert [c.getTime() for c in call(clock.getDelayedCalls)] == [
        clock.seconds() + 3600]  # an hour at most, then again up to the run
    call(clock.advance, 3600)
    until(lambda: reports._looking is None, "the hourly look")
    assert len(looks) == 1  # it was not due: the timer is set again, nothing read
    assert [c.getTime() for c in call(clock.getDelayedCalls)] == [due]
    call(clock.advance, due - clock.seconds())
    until(lambda: [r["state"] for r in client.request("GET", "/v1/reports")[1]["reports"]]
          == ["ready"], "the run's report, made by the timer")
    assert len(looks) == 2
    client.close()


def test_alone_a_look_that_fails_is_tried_again_after_schedule_check(
        smsc: Any, daemons: list[Any], tmp_path: Path) -> None:
    """A look at the due run that fails (a locked or full database) is tried again a
    schedule_check later, not at once and over and over."""
    daemon, clock, looks = _alone(smsc, daemons, tmp_path, 22)  # 23:00 in Warsaw
    reports = daemon.reports
    client = Client(daemon.http_port)
    assert client.request("POST", "/v1/report-schedules", {
        "every": "day", "type": "daily", "format": "csv"})[0] == 201
    call(clock.advance, 0)
    until(lambda: reports._looking is None and isinstance(reports._next_run, float)
          and reports._next_run != float("inf"), "the look after the schedule")
    working = reports._make_runs

    def locked(now: float, **kw: Any) -> int:
        looks.append(now)
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    reports._make_runs = locked
    call(clock.advance, 3600)  # midnight in Warsaw: the run is due, and its look fails
    until(lambda: reports._looking is None and len(looks) == 2, "the failed look")
    assert [c.getTime() for c in call(clock.getDelayedCalls)] == [clock.seconds() + 60]
    reports._make_runs = working
    call(clock.advance, 60)
    until(lambda: [r["state"] for r in client.request("GET", "/v1/reports")[1]["reports"]]
          == ["ready"], "the run, made a schedule_check later")
    assert len(looks) == 3
    client.close()


def test_expired_reports_and_their_files_are_removed(smsc: Any, daemons: list[Any],
                                                    tmp_path: Path) -> None:
    url = database_url("sqlite", tmp_path)
    daemon = start(url, smsc.port, expire_days=3)
    daemons.append(daemon)
    client = Client(daemon.http_port)
    code, old = client.request("POST", "/v1/reports", {"type": "daily", "format": "csv",
                                                       "period": "today"})
    assert code == 201, old
    code, fresh = client.request("POST", "/v1/reports", {"type": "daily", "format": "json",
                                                         "period": "today"})
    assert code == 201, fresh
    expires = dt.datetime.fromisoformat(fresh["expires_at"].rstrip("Z"))
    created = dt.datetime.fromisoformat(fresh["created_at"].rstrip("Z"))
    assert round((expires - created).total_seconds() / 86400) == 3
    engine = database.make_engine(url)
    with engine.begin() as conn:
        path = conn.execute(select(t.reports.c.file_path).where(
            t.reports.c.id == old["id"])).scalar()
        conn.execute(update(t.reports).where(t.reports.c.id == old["id"]).values(
            expires_at=dt.datetime(2020, 1, 1)))
    assert Path(path).exists()
    call(daemon.reports.expire)
    assert not Path(path).exists()
    assert client.request("GET", f"/v1/reports/{old['id']}")[0] == 404
    assert client.request("GET", f"/v1/reports/{fresh['id']}")[1]["state"] == "ready"
    client.close()
    engine.dispose()
