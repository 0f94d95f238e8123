"""The writer thread when the database misbehaves, on SQLite and PostgreSQL: a batch
that fails for one row is written one by one; facts from the SMSC are held and
retried through an outage while what a caller can retry is given back; the
database going away in the middle of the one-by-one fallback loses nothing; a
store that commits nothing is refused fast and probed back to ready."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from smppd.store import database, outcomes, recovery
from smppd.store import operations as ops
from smppd.store.child import WriterProcess
from smppd.store.limits import StoreLimits
from smppd.store.writer import StoreUnavailable, Writer
from tests.conftest import call, wait_for
from tests.store.conftest import Store
from tests.store.test_store import accept
from tests.support.faults import PostgresCut, SqliteWriteLock, postgres_behind_proxy

# Short bounds, so an outage is seen in about a second.
LIMITS = StoreLimits(connect_timeout=2, statement_timeout=1, pool_timeout=2, stall_timeout=1)


class Outcomes:
    """What each put() came to: ('ok', value) or ('error', exception)."""

    def __init__(self) -> None:
        self.by_key: dict[str, tuple[str, Any]] = {}

    def put(self, writer: Writer, key: str, op: Any) -> None:
        def record(result: Any) -> None:
            if hasattr(result, "value") and isinstance(result.value, BaseException):
                self.by_key[key] = ("error", result.value)
            else:
                self.by_key[key] = ("ok", result)

        call(lambda: writer.put(op).addBoth(record) and None)

    def __getitem__(self, key: str) -> tuple[str, Any]:
        return self.by_key[key]

    def settled(self, *keys: str) -> bool:
        return all(key in self.by_key for key in keys)


@pytest.fixture(params=["sqlite", "postgresql"])
def bench(request: Any, tmp_path: Path, reactor_running: Any) -> Iterator[tuple[Store, Any]]:
    """(a store on an engine with short limits, an outage of that database)."""
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        engine = database.make_engine(f"sqlite:///{path}", limits=LIMITS)
        database.upgrade_url(f"sqlite:///{path}")
        yield Store(engine), SqliteWriteLock(path)
        engine.dispose()
        return
    with postgres_behind_proxy() as (proxy, url):
        database.upgrade_url(url)
        engine = database.make_engine(url, limits=LIMITS)
        yield Store(engine), PostgresCut(proxy)
        engine.dispose()


@pytest.fixture(params=["thread", "process"])
def mode(request: Any) -> str:
    """Where the writer's transactions run: its thread, or its process (smppd.store.child)."""
    return str(request.param)


def make_writer(store: Store, reactor: Any, mode: str, **options: Any) -> Writer:
    process = WriterProcess(store.engine.url.render_as_string(hide_password=False), LIMITS,
                            store.applier.memory) if mode == "process" else None
    return Writer(store.engine, store.applier, reactor, process=process, **options)


def start_writer(store: Store, reactor: Any, mode: str = "thread") -> Writer:
    writer = make_writer(store, reactor, mode, retry_delay=0.1,
                         stall_timeout=LIMITS.stall_timeout,
                         recovery=recovery.for_engine(store.engine))
    writer.start()
    return writer


def test_a_batch_failing_for_one_row_is_written_one_by_one(
        bench: tuple[Store, Any], reactor_running: Any, mode: str) -> None:
    """A duplicate message id (a primary key violation, a real database error) in
    one batch with good operations: the batch fails, each operation is then
    written on its own, and only the bad one fails."""
    store, _ = bench
    sent = accept(store)
    store.apply(sent)
    first, second = accept(store), accept(store)
    duplicate = accept(store, message_id=first.message_id)
    writer = make_writer(store, reactor_running, mode)
    outcomes = Outcomes()
    # Queued before the thread starts: one batch for certain.
    for key, op in (("first", first), ("duplicate", duplicate), ("second", second),
                    ("fact", ops.PartSubmitted(sent.message_id, 1, "smsc", "id-1", "id-1"))):
        outcomes.put(writer, key, op)
    writer.start()
    try:
        wait_for(lambda: outcomes.settled("first", "duplicate", "second", "fact"),
                 what="every operation settled")
    finally:
        writer.stop()
    assert outcomes["first"] == ("ok", first.message_id)
    assert outcomes["second"] == ("ok", second.message_id)
    kind, error = outcomes["duplicate"]
    assert kind == "error" and isinstance(error, IntegrityError)
    assert outcomes["fact"][0] == "ok"
    assert writer.batches == 1  # the fallback counts as the one batch it replaced
    assert store.message(first.message_id)["status"] == "queued"
    assert store.message(sent.message_id)["status"] == "submitted"
    assert store.balance() == 1000 - 3  # sent, first, second: charged once each


def test_facts_are_held_through_an_outage_and_the_rest_is_given_back(
        bench: tuple[Store, Any], reactor_running: Any, mode: str) -> None:
    """While the database cannot be written, a message id from the SMSC waits in
    the writer (its Deferred does not fire: the dispatcher keeps the window slot)
    and is stored once the database is back; an API accept and a receipt fail back
    to their callers (503, ESME_RX_T_APPN) within the bounds."""
    store, outage = bench
    sent = accept(store)
    store.apply(sent)
    writer = start_writer(store, reactor_running, mode)
    outcomes = Outcomes()
    try:
        outage.begin()
        try:
            started = time.monotonic()
            outcomes.put(writer, "fact", ops.PartSubmitted(sent.message_id, 1, "smsc",
                                                           "id-9", "id-9"))
            outcomes.put(writer, "accept", accept(store))
            outcomes.put(writer, "receipt", ops.ReceiptSeen("smsc", "id-9", "delivered",
                                                            None))
            wait_for(lambda: outcomes.settled("accept", "receipt"), timeout=15,
                     what="the accept and the receipt given back")
            refused_after = time.monotonic() - started
            assert outcomes["accept"][0] == outcomes["receipt"][0] == "error"
            assert isinstance(outcomes["accept"][1], OperationalError | StoreUnavailable)
            assert not call(lambda: writer.available)
            time.sleep(3 * writer.retry_delay)
            assert not outcomes.settled("fact"), "a fact must wait, not fail"
            assert call(lambda: writer.backlog) >= 1
        finally:
            outage.end()
        wait_for(lambda: outcomes.settled("fact"), timeout=15, what="the fact stored")
        wait_for(lambda: writer.available, timeout=15, what="available again")
    finally:
        writer.stop()
    print(f"\noutage: accept and receipt refused after {refused_after:.2f} s")
    assert outcomes["fact"][0] == "ok"
    assert store.message(sent.message_id)["status"] == "submitted"
    assert store.balance() == 1000 - 1  # the refused accept charged nothing


def test_the_database_going_away_during_the_one_by_one_fallback_loses_no_fact(
        reactor_running: Any) -> None:
    """PostgreSQL (the connection cut by the proxy): a batch fails for one row, and
    while it is being written one by one the server goes away. What was written
    stays written, the accept not yet written is given back, the facts wait and are
    stored after the server returns."""
    with postgres_behind_proxy() as (proxy, url):
        database.upgrade_url(url)
        engine = database.make_engine(url, limits=LIMITS)
        store = Store(engine)
        sent = accept(store)
        store.apply(sent)
        first, later = accept(store), accept(store)
        duplicate = accept(store, message_id=first.message_id)
        fact = ops.PartSubmitted(sent.message_id, 1, "smsc", "id-5", "id-5")
        applied: list[int] = []
        real_apply = store.applier.apply

        def apply(conn: Any, batch: Any) -> Any:
            applied.append(len(batch))
            if len(applied) == 3:  # the batch, then `first` alone; now the server goes
                proxy.down()
            return real_apply(conn, batch)

        store.applier.apply = apply  # type: ignore[method-assign]
        writer = Writer(engine, store.applier, reactor_running, retry_delay=0.1,
                        stall_timeout=LIMITS.stall_timeout)
        outcomes = Outcomes()
        for key, op in (("first", first), ("duplicate", duplicate), ("later", later),
                        ("fact", fact)):
            outcomes.put(writer, key, op)
        writer.start()
        try:
            wait_for(lambda: outcomes.settled("first", "duplicate", "later"), timeout=15,
                     what="the accepts settled")
            assert not outcomes.settled("fact")
            proxy.resume()
            wait_for(lambda: outcomes.settled("fact"), timeout=15, what="the fact stored")
        finally:
            writer.stop()
            engine.dispose()
        assert applied[:2] == [4, 1]
        assert outcomes["first"] == ("ok", first.message_id)
        assert [outcomes[key][0] for key in ("duplicate", "later")] == ["error", "error"]
        assert outcomes["fact"][0] == "ok"
        assert store.message(first.message_id)["status"] == "queued"
        assert store.message(later.message_id) is None
        assert store.message(sent.message_id)["status"] == "submitted"


def test_an_idle_store_that_failed_is_probed_back_to_available(
        bench: tuple[Store, Any], reactor_running: Any, mode: str) -> None:
    """After a failed write and with nothing more to write, the writer looks at the
    database by itself: readiness comes back without waiting for traffic."""
    store, outage = bench
    writer = start_writer(store, reactor_running, mode)
    outcomes = Outcomes()
    try:
        outage.begin()
        try:
            outcomes.put(writer, "accept", accept(store))
            wait_for(lambda: outcomes.settled("accept"), timeout=15, what="refused")
            wait_for(lambda: not writer.available, timeout=15, what="unavailable")
        finally:
            outage.end()
        wait_for(lambda: writer.available, timeout=15, what="available again, idle")
        assert call(lambda: writer.backlog) == 0
    finally:
        writer.stop()


def test_after_a_quiet_period_a_burst_of_outcomes_is_written_as_one_batch(
        store: Store, reactor_running: Any) -> None:
    """Issue 14: SMSC outcomes arriving over a few milliseconds after the writer was
    idle wait for each other (up to `linger`) and go in one transaction; an API
    accept (a client waiting for its 201) ends the wait at once."""
    sent = [accept(store) for _ in range(4)]
    for op in sent:
        store.apply(op)
    writer = Writer(store.engine, store.applier, reactor_running, linger=0.5, quiet=0.0,
                    linger_kinds=outcomes.KINDS)
    writer.start()
    results = Outcomes()
    try:
        for number, op in enumerate(sent[:3]):  # 50 ms apart: well within the linger
            results.put(writer, f"s{number}", ops.PartSubmitted(op.message_id, 1, "smsc",
                                                                f"id-{number}", f"id-{number}"))
            time.sleep(0.05)
        wait_for(lambda: results.settled("s0", "s1", "s2"), what="the outcomes written")
        assert (writer.batches, writer.lingered) == (1, 1)

        # A long linger, cut short by an accept: both written together, at once.
        writer.linger = 60.0
        time.sleep(0.05)  # quiet again
        results.put(writer, "s3", ops.PartSubmitted(sent[3].message_id, 1, "smsc", "id-3",
                                                    "id-3"))
        fresh = accept(store)
        results.put(writer, "accept", fresh)
        wait_for(lambda: results.settled("s3", "accept"), timeout=10.0,
                 what="the accept ended the linger")
        assert writer.batches == 2
    finally:
        writer.stop()
    assert store.message(sent[2].message_id)["status"] == "submitted"
    assert results["accept"] == ("ok", fresh.message_id)


def test_a_busy_writer_does_not_linger(store: Store, reactor_running: Any) -> None:
    """Work that arrives while the writer was idle for less than `quiet` is written at
    once: under load the writer never waits."""
    sent = accept(store)
    store.apply(sent)
    writer = Writer(store.engine, store.applier, reactor_running, linger=60.0, quiet=30.0,
                    linger_kinds=outcomes.KINDS)
    writer.start()
    results = Outcomes()
    try:
        results.put(writer, "s", ops.PartSubmitted(sent.message_id, 1, "smsc", "i", "i"))
        wait_for(lambda: results.settled("s"), timeout=10.0, what="written without waiting")
    finally:
        writer.stop()
    assert writer.lingered == 0


def test_under_concurrency_the_writer_gathers_a_group_commit(
        store: Store, reactor_running: Any) -> None:
    """Issues 13 and 14: once a batch shows several clients at once (`gather_after`
    operations), the writer waits for more, up to `gather_batch` or `gather` s from the
    oldest, and commits them together; a lone client's work is written at once."""
    ops_ = [accept(store) for _ in range(7)]
    writer = Writer(store.engine, store.applier, reactor_running, gather=60.0,
                    gather_after=2, gather_batch=3)
    results = Outcomes()
    results.put(writer, "a", ops_[0])
    results.put(writer, "b", ops_[1])
    writer.start()  # both queued: the first batch holds two, concurrency seen
    try:
        wait_for(lambda: results.settled("a", "b"), what="the first batch")
        assert writer.batches == 1

        # One arrives; the writer waits for the batch to fill (within 60 s) and the
        # third arrival ends the wait: one commit for the three.
        for key, op in zip("cde", ops_[2:5], strict=True):
            results.put(writer, key, op)
        wait_for(lambda: results.settled("c", "d", "e"), timeout=10.0,
                 what="the batch written when it filled")
        assert writer.batches == 2

        # Alone, after a batch of three: written when `gather` runs out.
        writer.gather = 0.2
        results.put(writer, "f", ops_[5])
        wait_for(lambda: results.settled("f"), timeout=10.0, what="written after gather")
        assert writer.batches == 3 and writer.gathered >= 1

        # After a batch of one (a lone client), no wait at all, however long `gather`.
        writer.gather = 60.0
        gathered = writer.gathered
        results.put(writer, "g", ops_[6])
        wait_for(lambda: results.settled("g"), timeout=10.0, what="written at once")
        assert writer.gathered == gathered and writer.batches == 4
    finally:
        writer.stop()
    assert all(results[key] == ("ok", op.message_id) for key, op in zip("abcdefg", ops_,
                                                                         strict=True))


def test_a_stop_that_outlasts_its_wait_is_not_taken_for_a_dead_writer_process(
        tmp_path: Path, reactor_running: Any) -> None:
    """The drain gives up on a writer still holding a fact through an outage: the
    writer process is left to end with the daemon, and that is no "writer process
    ended" (which would exit the daemon with status 70 before its stop completed)."""
    path = tmp_path / "store.db"
    database.upgrade_url(f"sqlite:///{path}")
    engine = database.make_engine(f"sqlite:///{path}", limits=LIMITS)
    store = Store(engine)
    sent = accept(store)
    store.apply(sent)
    gone: list[str] = []
    process = WriterProcess(f"sqlite:///{path}", LIMITS, store.applier.memory)
    writer = Writer(engine, store.applier, reactor_running, retry_delay=0.1,
                    stall_timeout=LIMITS.stall_timeout, process=process,
                    on_process_gone=gone.append)
    lock = SqliteWriteLock(path)
    writer.start()
    try:
        lock.begin()
        Outcomes().put(writer, "fact", ops.PartSubmitted(sent.message_id, 1, "smsc",
                                                         "id-7", "id-7"))
        wait_for(lambda: not writer.available, timeout=15, what="unavailable")
        writer.stop(timeout=0.5)
        assert writer.running  # still holding the fact
        time.sleep(3 * writer.retry_delay)
        assert gone == []
    finally:
        lock.end()
        wait_for(lambda: not writer.running, timeout=15, what="the writer thread ended")
        process.stop()
        engine.dispose()
    assert gone == []
