"""Faults of the store under a running daemon: a PostgreSQL that goes silent or
drops every connection (through a TCP proxy of the test's own), SQLite on a small
filesystem that fills up, and a store outage while the SMSC keeps answering.

Bounds on time are generous on purpose (the suite runs on busy machines): they say
"answers within N s", with N well above what is measured; the figures are printed.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from smppd.fake_smsc import Behaviour
from sqlalchemy import text

from smppd.protocol import constants as c
from tests.conftest import call, wait_for
from tests.support.faults import (
    Ballast,
    InFlight,
    PostgresCut,
    RedeliveringSmsc,
    SqliteWriteLock,
    postgres_behind_proxy,
    small_filesystem,
)
from tests.support.polling import holds
from tests.support.running import Client

ANSWER_BOUND = 15.0  # seconds; the defaults answer in about 3 (stall_timeout)


@pytest.fixture
def smsc(reactor_running: Any) -> Iterator[RedeliveringSmsc]:
    """The fake SMSC, redelivering a deliver_sm refused with ESME_RX_T_APPN."""
    fake = RedeliveringSmsc(Behaviour(), redeliver_after=0.3)
    port = call(fake.listen)
    fake.port = port.getHost().port
    yield fake
    call(port.stopListening)
    call(fake.drop_all)


def timed(action: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = action()
    return result, time.monotonic() - started


def patient(running: Any) -> Client:
    """A client that waits longer than any bound under test, so that a hang shows
    as a measured time, not as the client's own timeout."""
    client = Client(running.daemon.http_port)
    client.conn.timeout = 60
    return client


def answer_to_mo(smsc: RedeliveringSmsc, text: str) -> tuple[int, float]:
    """Inject an MO; (the status of the SMSC's first deliver_sm_resp, seconds)."""
    started = time.monotonic()
    (sequence,) = call(smsc.inject_mo, "48500100200", "1234", text)
    status = wait_for(lambda: smsc.deliver_responses.get(sequence, -1) + 1, timeout=60,
                      what="the deliver_sm answered") - 1
    return status, time.monotonic() - started


def ready(running: Any) -> bool:
    return call(running.daemon.readiness)[0]


def test_a_silent_postgresql_is_answered_within_seconds_and_recovers(
        start_daemon: Any) -> None:
    """Packets dropped, not refused: the proxy keeps every socket open and forwards
    nothing. An idle daemon stays ready; work gets 503 / ESME_RX_T_APPN within a few
    seconds and /readyz turns 503; after the network returns everything carries on."""
    with postgres_behind_proxy() as (proxy, url):
        running = start_daemon(database=url)
        client = patient(running)
        _, before = client.send(text="before the silence")
        client.wait_status(before["id"], "delivered")
        stall = running.daemon.settings.store.stall_timeout
        proxy.silent()
        assert holds(lambda: ready(running), stall + 1.0), \
            "an idle daemon must stay ready: nothing waits for the database"

        # The first work after the silence began: a POST and a deliver_sm at once.
        posted: dict[str, Any] = {}
        poster = threading.Thread(target=lambda: posted.update(
            zip(("answer", "seconds"), timed(lambda: client.send(text="while silent")),
                strict=True)))
        poster.start()
        mo_status, mo_seconds = answer_to_mo(running.smsc, "MO while silent")
        poster.join(60)
        (status, body), api_seconds = posted["answer"], posted["seconds"]
        assert status == 503, body
        assert mo_status == c.ESME_RX_T_APPN
        # Once the store is known to be stalled, new work is refused at once.
        (status, _), stalled_seconds = timed(lambda: client.send(text="while stalled"))
        assert status == 503
        # Reads wait for a pooled connection, its ping and a new connection at most.
        (status, _), read_seconds = timed(
            lambda: client.request("GET", f"/v1/messages/{before['id']}"))
        assert status == 503
        assert not ready(running)
        _, detail = client.request("GET", "/readyz")
        assert detail["store"] == "unavailable"
        _, metrics = client.request("GET", "/metrics")
        assert "smppd_store_available 0.0" in metrics
        print(f"\nsilent PostgreSQL: POST 503 after {api_seconds:.2f} s, deliver_sm "
              f"ESME_RX_T_APPN after {mo_seconds:.2f} s (stall_timeout {stall:g} s); "
              f"then POST 503 after {stalled_seconds:.2f} s, GET 503 after "
              f"{read_seconds:.2f} s")
        assert max(api_seconds, mo_seconds, read_seconds) < ANSWER_BOUND

        proxy.resume()
        _, ready_seconds = timed(lambda: wait_for(lambda: running.daemon.readiness()[0],
                                                  timeout=30,
                                                  what="ready after the network returns"))
        print(f"ready {ready_seconds:.2f} s after the network returned")
        status, after = client.send(text="after the silence")
        assert status == 201
        client.wait_status(after["id"], "delivered")
        wait_for(lambda: rows(running, "SELECT text FROM inbound_messages") == [
            ("MO while silent",)], timeout=15, what="the redelivered MO stored once")
        assert [m.text for m in running.smsc.messages] == ["before the silence",
                                                           "after the silence"]


def rows(running: Any, sql: str) -> list[Any]:
    """Read the daemon's store with its own engine (from the test thread)."""
    with running.daemon.engine.connect() as conn:
        return list(conn.execute(text(sql)))


def test_a_postgresql_that_drops_every_connection_is_refused_fast_and_ready_soon_after(
        start_daemon: Any) -> None:
    """Connections closed and new ones closed at once (a restart, a failover): 503
    and ESME_RX_T_APPN at once, ready again moments after the server is back."""
    with postgres_behind_proxy() as (proxy, url):
        running = start_daemon(database=url)
        client = patient(running)
        proxy.down()
        (status, _), api_seconds = timed(lambda: client.send(text="while down"))
        assert status == 503
        mo_status, mo_seconds = answer_to_mo(running.smsc, "MO while down")
        assert mo_status == c.ESME_RX_T_APPN
        wait_for(lambda: not running.daemon.readiness()[0], timeout=ANSWER_BOUND,
                 what="/readyz 503 while the database is down")
        proxy.resume()
        _, ready_seconds = timed(lambda: wait_for(lambda: running.daemon.readiness()[0],
                                                  timeout=30, what="ready again"))
        print(f"\nPostgreSQL down: POST 503 after {api_seconds:.2f} s, deliver_sm "
              f"ESME_RX_T_APPN after {mo_seconds:.2f} s; ready {ready_seconds:.2f} s "
              "after it came back, with nothing else to write")
        assert max(api_seconds, mo_seconds) < ANSWER_BOUND
        status, after = client.send(text="after the outage")
        assert status == 201
        client.wait_status(after["id"], "delivered")
        wait_for(lambda: rows(running, "SELECT text FROM inbound_messages") == [
            ("MO while down",)], timeout=15, what="the redelivered MO stored once")


@pytest.fixture(params=["postgresql", "sqlite"])
def outage(request: Any, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """(database URL, a store outage to begin and end) for each backend."""
    if request.param == "postgresql":
        with postgres_behind_proxy() as (proxy, url):
            yield url, PostgresCut(proxy)
    else:
        path = tmp_path / "smppd.db"
        yield f"sqlite:///{path}", SqliteWriteLock(path)


def test_a_store_outage_while_the_smsc_answers_holds_the_window_and_loses_nothing(
        start_daemon: Any, outage: tuple[str, Any]) -> None:
    """The SMSC goes on answering submits and sending receipts while the store is
    down. The facts it sends (message ids) are held by the writer and retried; the
    window stays held, so no more than `window` submits go out meanwhile; nothing is
    sent twice; POST /v1/messages answers 503; receipts are refused with
    ESME_RX_T_APPN and the SMSC's redeliveries are stored after recovery."""
    url, fault = outage
    window, count = 5, 30
    running = start_daemon(database=url, smsc={"window": window, "throughput": 20})
    smsc = running.smsc
    smsc.behaviour.receipt_delay = 0.3
    client = patient(running)
    ids = []
    for i in range(count):
        status, body = client.send(to=f"+485001011{i:02d}", text=f"outage {i:02d}")
        assert status == 201, body
        ids.append(body["id"])
    wait_for(lambda: len(smsc.submits) >= 8, what="sending under way")
    in_flight = InFlight(running.daemon.dispatcher)
    fault.begin()
    try:
        submits_at_outage = len(smsc.submits)
        held = wait_for(lambda: running.daemon.writer.backlog, timeout=ANSWER_BOUND,
                        what="the writer holding the SMSC's answers")
        status, _ = client.send(text="during the outage")
        assert status == 503
        wait_for(lambda: smsc.refused, timeout=ANSWER_BOUND,
                 what="a receipt refused with ESME_RX_T_APPN")
        time.sleep(1.5)  # responses and receipts keep coming while the store is down
        during = len(smsc.submits) - submits_at_outage
    finally:
        fault.end()
    for message_id in ids:
        client.wait_status(message_id, "delivered", timeout=60)
    maximum = in_flight.stop()
    sent = Counter(record.pdu.fields["short_message"].decode() for record in smsc.submits)
    resent = sum(n - 1 for n in sent.values())
    print(f"\nstore outage ({url.split(':')[0]}): {held} operations held by the writer, "
          f"{during} submits during the outage, at most {maximum} in flight (window "
          f"{window}), {resent} resent, {smsc.refused} deliver_sm refused and "
          f"{smsc.redelivered} redelivered")
    assert during <= window and maximum <= window
    assert resent == 0 and sorted(sent) == [f"outage {i:02d}" for i in range(count)]
    parts = rows(running, "SELECT smsc_id, status FROM parts")
    assert len(parts) == count and all(smsc_id and status == "delivered"
                                       for smsc_id, status in parts)
    balance = rows(running, "SELECT balance FROM accounts WHERE name = 'acme'")[0][0]
    assert balance == 100_000 - count  # charged once each, nothing refunded


class _Sender:
    """POSTs messages one after another on a thread, recording every answer."""

    def __init__(self, port: int) -> None:
        self.client = Client(port)
        self.client.conn.timeout = 60
        self.answers: list[tuple[float, int, Any]] = []  # (when, status, body)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sender", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        number = 0
        while not self._stop.is_set():
            number += 1
            status, body = self.client.send(to=f"+4850020{number % 10000:04d}",
                                            text=f"disk test {number} " + "x" * 80)
            self.answers.append((time.monotonic(), status, body))
            time.sleep(0.01)

    def accepted(self) -> list[str]:
        return [body["id"] for _, status, body in list(self.answers) if status == 201]

    def first_201_after(self, moment: float) -> float | None:
        for when, status, _ in list(self.answers):
            if when > moment and status == 201:
                return when - moment
        return None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        self.client.close()


def test_sqlite_on_a_full_disk_refuses_then_recovers_once_space_is_freed(
        start_daemon: Any, tmp_path: Path) -> None:
    """A 3 MB filesystem filled by a ballast file while the daemon is sending: POSTs
    get 503 and deliver_sm ESME_RX_T_APPN, nothing crashes; once the ballast goes,
    the WAL is checkpointed and truncated, new POSTs get 201 and every message
    accepted before settles."""
    with small_filesystem(tmp_path / "small", "3m") as folder:
        running = start_daemon(database=f"sqlite:///{folder / 'smppd.db'}")
        writer = running.daemon.writer
        sender = _Sender(running.daemon.http_port)
        try:
            wait_for(lambda: len(sender.accepted()) >= 20, timeout=30, what="sending")
            ballast = Ballast(folder / "ballast")
            ballast.fill()
            full_since = time.monotonic()
            refused = wait_for(lambda: [a for a in list(sender.answers)[-5:] if a[1] == 503],
                               timeout=ANSWER_BOUND, what="POSTs refused on the full disk")
            # While the disk stays full, a checkpoint may win some room back now and
            # then, and a few writes pass: look for the refusal, not at one moment.
            mos = []
            while c.ESME_RX_T_APPN not in [status for status, _ in mos]:
                assert len(mos) < 50, f"no deliver_sm refused on a full disk: {mos}"
                mos.append(answer_to_mo(running.smsc, f"MO on a full disk {len(mos)}"))
            wait_for(lambda: not running.daemon.readiness()[0], timeout=ANSWER_BOUND,
                     what="/readyz 503 on the full disk")
            status, health = running.client.request("GET", "/healthz")
            assert status == 200 and health == {"status": "ok"}  # alive, not crashed
            wal_while_full = _size(folder / "smppd.db-wal")
            first_503 = refused[0][0] - full_since
            ballast.free()
            freed_at = time.monotonic()
            recovery = wait_for(lambda: sender.first_201_after(freed_at), timeout=ANSWER_BOUND,
                                what="a POST accepted after the space was freed")
        finally:
            sender.stop()
        for message_id in sender.accepted():
            running.client.wait_status(message_id, "delivered", timeout=60)
        wait_for(lambda: sorted(rows(running, "SELECT text FROM inbound_messages")) == [
            (f"MO on a full disk {n}",) for n in range(len(mos))], timeout=15,
            what="every MO stored once, the refused ones after their redelivery")
        wal_after = _size(folder / "smppd.db-wal")
        print(f"\nfull disk: first 503 {first_503:.2f} s after the disk filled; first 201 "
              f"{recovery * 1000:.0f} ms after the space was freed; "
              f"{len(sender.accepted())} accepted, all delivered; WAL {wal_while_full} "
              f"bytes while full, {wal_after} after; {writer.recovery.recoveries} "
              "checkpoint recoveries")
        assert writer.recovery.recoveries >= 1
        assert writer.running


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def test_sqlite_on_a_nearly_full_disk_keeps_its_wal_within_the_room_left(
        start_daemon: Any, tmp_path: Path) -> None:
    """1 MB left on a 3 MB filesystem: the WAL, which SQLite checkpoints by itself
    only at 4 MB, would fill it within a few hundred messages. Checkpointed once it
    outgrows the room beside it, it stops growing and no write fails."""
    with small_filesystem(tmp_path / "small", "3m") as folder:
        running = start_daemon(database=f"sqlite:///{folder / 'smppd.db'}")
        ballast = Ballast(folder / "ballast")
        ballast.fill()
        with (folder / "ballast").open("r+b") as file:  # give 1 MB back
            file.truncate(max(0, (folder / "ballast").stat().st_size - (1 << 20)))
        client = patient(running)
        ids, largest_wal = [], 0
        for i in range(300):
            status, body = client.send(to=f"+485001012{i % 100:02d}", text=f"tight {i}")
            assert status == 201, (i, body)
            ids.append(body["id"])
            largest_wal = max(largest_wal, _size(folder / "smppd.db-wal"))
        for message_id in ids:
            client.wait_status(message_id, "delivered", timeout=30)
        print(f"\nnearly full disk: 300 messages with 1 MB free, the WAL at most "
              f"{largest_wal} bytes, no write refused")
        assert largest_wal < 2 << 20
