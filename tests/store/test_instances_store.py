"""Several instances on one PostgreSQL database, at the store (issue 14): leases,
duties, the writers' turn, balances under concurrent accepts, migrations under a
lock; and one process per SQLite file. The PostgreSQL tests skip with the reason
printed when SMPPD_TEST_POSTGRES_URL is unset."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from smppd.ids import new_id
from smppd.store import database, epoch, instances, jobs, leases, ledger, queries
from smppd.store import operations as ops
from smppd.store.batch import BatchApplier
from smppd.store.database import DatabaseError
from smppd.store.instances import MIGRATION_LOCK
from smppd.store.single import lock_sqlite
from tests.store.conftest import POSTGRES_URL, _reset_postgres
from tests.support.polling import until


def _accounts(engine: Any, balance: int = 1000) -> int:
    with engine.begin() as conn:
        return queries.seed_accounts(conn, [("acme", balance)])["acme"]


def _accept(account: int, message_id: str | None = None) -> ops.Accept:
    return ops.Accept(account, message_id or new_id(), "Acme", "48500100200", "PL", "text",
                      "gsm", 1, 1, 7, None, None, None, time.time())


class Instance:
    """One instance's writer state (its applier) with a live instances row."""

    def __init__(self, engine: Any, name: str, lease: float = 60.0) -> None:
        self.engine = engine
        self.applier = BatchApplier({"s": "all"})
        self.applier.memory.owner = name
        self.name = name
        with engine.begin() as conn:
            instances.register(conn, name, lease)

    def apply(self, *batch: Any) -> list[Any]:
        with self.engine.begin() as conn:
            return self.applier.apply(conn, list(batch))


def _rows(engine: Any, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]


def test_a_writer_forgets_states_another_instance_changed(pg: Any) -> None:
    """A accepted the message (its cache says queued); B's bind sent it and got the
    receipt. A duplicate receipt reaching A changes nothing: A took a turn after B,
    so it read the message again instead of trusting its memory."""
    account = _accounts(pg)
    a, b = Instance(pg, "a"), Instance(pg, "b")
    accept = _accept(account)
    a.apply(accept)
    b.apply(ops.PartSubmitted(accept.message_id, 1, "s", "100", "100"),
            ops.ReceiptSeen("s", "100", "delivered", None))
    a.apply(ops.ReceiptSeen("s", "100", "delivered", None))
    events = _rows(pg, "SELECT status FROM message_events WHERE part_no IS NULL "
                       "ORDER BY id")
    assert events == [("submitted",), ("delivered",)]
    rollups = dict(_rows(pg, "SELECT status, sum(messages) FROM message_rollups "
                             "GROUP BY status"))
    assert {status: n for status, n in rollups.items() if n} == {"delivered": 1}


def _two_sent_by_a(engine: Any) -> tuple[Instance, Instance, ops.Accept, ops.Accept]:
    """Instances A and B; two messages A accepted and sent (ids "300" and "301"), so
    A's memory knows both: its first turn."""
    account = _accounts(engine)
    a, b = Instance(engine, "a"), Instance(engine, "b")
    first, second = _accept(account), _accept(account)
    a.apply(first, second)
    a.apply(ops.PartSubmitted(first.message_id, 1, "s", "300", "300"),
            ops.PartSubmitted(second.message_id, 1, "s", "301", "301"))
    return a, b, first, second


def test_a_writer_forgets_only_the_messages_other_turns_changed(pg: Any) -> None:
    """B's turn records what it changed; A, taking the next turn, forgets that message
    only and keeps the state of the other (it used to forget them all, and two instances
    taking turns in alternation read everything again at every batch)."""
    a, b, mine, theirs = _two_sent_by_a(pg)
    b.apply(ops.ReceiptSeen("s", "301", "delivered", None))
    records = [(writer, json.loads(changes)) for writer, changes in _rows(
        pg, "SELECT writer, changes FROM writer_touches ORDER BY epoch")]
    assert records == [
        ("a", {"m": sorted([mine.message_id, theirs.message_id]),
               "k": [["s", "300"], ["s", "301"]]}),
        ("b", {"m": [theirs.message_id], "k": []})]
    a.apply(ops.ReceiptSeen("s", "399", "delivered", None))  # a turn; waits, changes nothing
    cache = a.applier.memory.cache
    assert theirs.message_id not in cache
    assert cache.get(mine.message_id).parts == ["submitted"]
    # What A reads again is the truth: a duplicate receipt changes nothing.
    a.apply(ops.ReceiptSeen("s", "301", "delivered", None))
    assert _rows(pg, f"SELECT status FROM message_events WHERE part_no IS NULL AND "
                     f"message_id = '{theirs.message_id}' ORDER BY id") == \
        [("submitted",), ("delivered",)]


def test_turns_that_cannot_be_listed_make_a_writer_forget_everything(pg: Any) -> None:
    """A turn whose record is gone (pruned, or taken by an smppd that does not record)
    or that recorded "too many to list" leaves nothing to trust: all is read again."""
    a, b, first, second = _two_sent_by_a(pg)
    b.apply(ops.ReceiptSeen("s", "499", "delivered", None))  # a turn that changed nothing
    with pg.begin() as conn:
        conn.execute(text("DELETE FROM writer_touches WHERE writer = 'b'"))
    a.apply(ops.ReceiptSeen("s", "498", "delivered", None))
    assert first.message_id not in a.applier.memory.cache
    assert second.message_id not in a.applier.memory.cache
    a.apply(ops.PartSubmitted(first.message_id, 1, "s", "300", "300"))  # known again
    assert first.message_id in a.applier.memory.cache
    with pg.begin() as conn:
        conn.execute(text("UPDATE writer_epoch SET epoch = epoch + 1"))
        conn.execute(text("INSERT INTO writer_touches (epoch, writer, changes) "
                          "SELECT epoch, 'c', NULL FROM writer_epoch"))
    a.apply(ops.ReceiptSeen("s", "497", "delivered", None))
    assert first.message_id not in a.applier.memory.cache


def test_an_smsc_id_another_instance_stored_is_looked_up_again(pg: Any) -> None:
    """The SMSC reused an id while both messages are in progress: A indexes it for
    its message, B stores it for another. A receipt for it on A settles both, as a
    single writer would: B's turn listed the id, so A read its parts again."""
    account = _accounts(pg)
    a, b = Instance(pg, "a"), Instance(pg, "b")
    x, z = _accept(account), _accept(account)
    a.apply(x)
    a.apply(ops.PartSubmitted(x.message_id, 1, "s", "600", "600"))
    b.apply(z)
    b.apply(ops.PartSubmitted(z.message_id, 1, "s", "600", "600"))
    a.apply(ops.ReceiptSeen("s", "600", "delivered", None))
    assert _rows(pg, "SELECT status FROM messages") == [("delivered",), ("delivered",)]


def test_too_many_turns_since_a_writer_s_own_are_not_read(pg: Any) -> None:
    """Reading them would hold the lock every turn waits for: the cache is read again
    instead."""
    a, b, first, _second = _two_sent_by_a(pg)
    for n in range(epoch.MAX_READ + 1):
        b.apply(ops.ReceiptSeen("s", f"7{n:02d}", "delivered", None))
    a.apply(ops.ReceiptSeen("s", "799", "delivered", None))
    assert first.message_id not in a.applier.memory.cache


def test_a_page_leased_while_a_stop_reads_it_is_not_handed_out(pg: Any,
                                                              monkeypatch: Any) -> None:
    """B's stop locks the queued messages it reads: A, leasing the job's next page
    between B's read and B's update, skips them instead of sending a message B then
    cancels and refunds (found by review: A's warmed state said queued, and its
    dispatcher sent it)."""
    account = _accounts(pg, balance=100)
    a, b = Instance(pg, "a"), Instance(pg, "b")
    job = new_id()
    rows = (ops.Accept(account, new_id(), "Acme", "48500100200", "PL", "t", "gsm", 1, 1, 7,
                       None, None, None, time.time(), job_id=job),)
    a.apply(ops.CreateJob(account, job, "j", "Acme", "t", None, None, rows, time.time()),
            ops.FinishJob(job, "running", 0, None))
    leased: list[Any] = []
    real_chunks = jobs.chunks

    def lease_meanwhile(ids: Any) -> Any:  # between B's read and its update
        if not leased:
            with pg.begin() as conn:
                leased.append(leases.lease_job_page(conn, "a", job, 10)[0])
        return real_chunks(ids)

    monkeypatch.setattr(jobs, "chunks", lease_meanwhile)
    assert b.apply(ops.StopJob(job, account, frozenset(), "b"))[0] == (1, 1)
    assert leased == [[]]
    assert _rows(pg, "SELECT status, refunded, lease_owner FROM messages") == \
        [("cancelled", 1, None)]


def test_a_job_stopped_on_one_instance_is_forgotten_by_the_other(pg: Any) -> None:
    account = _accounts(pg, balance=100)
    a, b = Instance(pg, "a"), Instance(pg, "b")
    other = _accept(account)
    a.apply(other)
    a.apply(ops.PartSubmitted(other.message_id, 1, "s", "500", "500"))
    job = new_id()
    rows = tuple(ops.Accept(account, new_id(), "Acme", "48500100200", "PL", "t", "gsm", 1,
                            1, 7, None, None, None, time.time(), job_id=job)
                 for _ in range(2))
    a.apply(ops.CreateJob(account, job, "j", "Acme", "t", None, None, rows, time.time()),
            ops.FinishJob(job, "running", 0, None))
    a.apply(ops.Warm(tuple((r.message_id, account, 1, None, 1) for r in rows)))
    assert all(r.message_id in a.applier.memory.cache for r in rows)
    assert b.apply(ops.StopJob(job, account, frozenset(), "b"))[0] == (2, 2)
    a.apply(ops.ReceiptSeen("s", "599", "delivered", None))
    assert not any(r.message_id in a.applier.memory.cache for r in rows)
    assert other.message_id in a.applier.memory.cache


def test_a_receipt_one_instance_kept_settles_the_part_another_sends_later(pg: Any) -> None:
    account = _accounts(pg)
    a, b = Instance(pg, "a"), Instance(pg, "b")
    accept = _accept(account)
    a.apply(accept)
    b.apply(ops.ReceiptSeen("s", "200", "delivered", None))  # before A stored the id
    assert _rows(pg, "SELECT count(*) FROM pending_receipts") == [(1,)]
    a.apply(ops.PartSubmitted(accept.message_id, 1, "s", "200", "200"))
    assert _rows(pg, "SELECT status FROM messages") == [("delivered",)]
    assert _rows(pg, "SELECT count(*) FROM pending_receipts") == [(0,)]


def test_concurrent_accepts_on_two_instances_keep_the_balance_exact(pg: Any) -> None:
    account = _accounts(pg, balance=500)
    writers = [Instance(pg, "a"), Instance(pg, "b")]
    results: list[Any] = []

    def accept_many(instance: Instance) -> None:
        for _ in range(20):
            batch = [_accept(account) for _ in range(20)]
            try:
                results.extend(instance.apply(*batch))
            except ledger.BalanceRace:  # as the writer does: one at a time
                for op in batch:
                    results.extend(instance.apply(op))

    threads = [threading.Thread(target=accept_many, args=(w,)) for w in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    accepted = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, ops.InsufficientBalance)]
    assert len(accepted) == 500 and len(refused) == 300
    assert _rows(pg, "SELECT balance FROM accounts") == [(0,)]
    assert _rows(pg, "SELECT count(*), sum(points) FROM messages") == [(500, 500)]


def test_leases_never_hand_out_what_a_live_instance_holds(pg: Any) -> None:
    account = _accounts(pg)
    a, b = Instance(pg, "a"), Instance(pg, "b")
    held = [_accept(account) for _ in range(3)]
    a.apply(*held)  # accepted through A: leased to A at once
    with pg.begin() as conn:
        free, _ = leases.lease_singles(conn, "b", 100)
    assert free == []
    # Three more nobody holds (a full queue gave them back), and A dies.
    loose = [_accept(account) for _ in range(3)]
    a.apply(*loose)
    with pg.begin() as conn:
        assert leases.release(conn, "a", [op.message_id for op in loose]) == 3
        first, _ = leases.lease_singles(conn, "b", 2)
    with pg.begin() as conn:
        second, last = leases.lease_singles(conn, "b", 100)
    assert [m.id for m in first + second] == [op.message_id for op in loose]
    assert last is None
    with pg.begin() as conn:
        conn.execute(text("UPDATE instances SET lease_until = now() - interval '1 day' "
                          "WHERE id = 'a'"))
        taken, _ = leases.lease_singles(conn, "b", 100)
        assert not instances.heartbeat(conn, "a", 60, [])  # A comes back: fenced
    assert [m.id for m in taken] == [op.message_id for op in held]
    assert _rows(pg, "SELECT DISTINCT lease_owner FROM messages") == [("b",)]
    del b


def test_two_instances_leasing_at_once_get_different_messages(pg: Any) -> None:
    account = _accounts(pg, balance=10_000)
    a = Instance(pg, "a")
    Instance(pg, "b")
    batch = [_accept(account) for _ in range(2000)]
    a.apply(*batch)
    with pg.begin() as conn:
        leases.release(conn, "a", [op.message_id for op in batch])
    got: dict[str, list[str]] = {"a": [], "b": []}

    def lease(name: str) -> None:
        while True:
            with pg.begin() as conn:
                found, _ = leases.lease_singles(conn, name, 50)
            if not found:
                return
            got[name].extend(m.id for m in found)

    threads = [threading.Thread(target=lease, args=(name,)) for name in got]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not set(got["a"]) & set(got["b"])
    assert sorted(got["a"] + got["b"]) == sorted(op.message_id for op in batch)


def test_a_duty_has_one_holder_until_its_lease_lapses(pg: Any) -> None:
    with pg.begin() as conn:
        assert instances.claim_duty(conn, "purge", "a", 60)
        assert not instances.claim_duty(conn, "purge", "b", 60)
        assert instances.claim_duty(conn, "purge", "a", 60)  # renewed
        conn.execute(text("UPDATE cluster_duties SET lease_until = now() - interval '1 day'"))
        assert instances.claim_duty(conn, "purge", "b", 60)


def _waiting_on_the_migration_lock(engine: Any) -> int:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = :high AND objid = :low"),
            {"high": MIGRATION_LOCK >> 32, "low": MIGRATION_LOCK & 0xFFFFFFFF}).scalar() or 0


def test_migrations_run_once_while_other_instances_wait(pg: Any) -> None:
    """Three processes (Alembic is one per process) migrate an empty database at once.
    The test holds the migration lock first: all three are seen waiting on it with
    the schema still empty; once it is let go, exactly one runs the migrations (its
    log says so) and the other two find the schema at head."""
    _reset_postgres(pg)
    script = ("import logging, sys; logging.basicConfig(level=logging.INFO); "
              "from smppd.store import database; database.upgrade_url(sys.argv[1])")
    with pg.connect() as holder:
        holder.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
        holder.commit()
        processes = [subprocess.Popen([sys.executable, "-c", script, POSTGRES_URL or ""],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                     for _ in range(3)]
        until(lambda: _waiting_on_the_migration_lock(pg) == 3, 60,
              "three migrations waiting on the lock")
        assert database.current_revision(pg) is None  # none went past the lock
        holder.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
        holder.commit()
    outputs = [process.communicate(timeout=120)[0].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    assert database.current_revision(pg) == database.head_revision()
    migrated = [output for output in outputs if "Running upgrade" in output]
    assert len(migrated) == 1, outputs


def test_a_second_process_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'smppd.db'}"
    held = lock_sqlite(url)
    try:
        with pytest.raises(DatabaseError, match="another smppd process is using"):
            lock_sqlite(url)
    finally:
        assert held is not None
        held.close()
    lock_sqlite(url).close()  # free again once the first is gone
    assert lock_sqlite("postgresql+psycopg://localhost/x") is None


def test_a_batch_whose_balance_another_instance_spent_is_refused_whole(pg: Any) -> None:
    """Accepts read the balance without locking it (the account's row is locked for
    the commit only): B read 10 points that A then spent. B's batch is rolled back
    (BalanceRace, which the writer answers by writing its operations one at a time);
    the balance never goes below zero."""
    account = _accounts(pg, balance=10)
    a, b = Instance(pg, "a"), Instance(pg, "b")
    first = pg.connect()
    transaction = first.begin()
    assert all(isinstance(r, str) for r in a.applier.apply(
        first, [_accept(account) for _ in range(10)]))  # A holds the row, uncommitted
    outcome: list[Any] = []

    def spend() -> None:
        try:
            outcome.append(b.apply(*[_accept(account) for _ in range(10)]))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=spend)
    thread.start()
    time.sleep(0.5)  # B has read 10 and waits for the row
    transaction.commit()
    first.close()
    thread.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], ledger.BalanceRace), outcome
    assert _rows(pg, "SELECT balance FROM accounts") == [(0,)]
    assert _rows(pg, "SELECT count(*) FROM messages") == [(10,)]
    # Written again one by one, each lone accept locks the row and is refused plainly.
    assert isinstance(b.apply(_accept(account))[0], ops.InsufficientBalance)


def test_a_stop_leaves_what_another_live_instance_is_sending_to_it(pg: Any) -> None:
    """A job stopped through A cancels and refunds its unsent messages but those B
    holds (B cancels them itself when it sees the stop, smppd.daemon.job_sync), and
    those of a dead instance."""
    account = _accounts(pg, balance=100)
    a, b = Instance(pg, "a"), Instance(pg, "b")
    Instance(pg, "dead")
    job = new_id()
    rows = tuple(ops.Accept(account, new_id(), "Acme", "48500100200", "PL", "t", "gsm", 1,
                            1, 7, None, None, None, time.time(), job_id=job)
                 for _ in range(6))
    a.apply(ops.CreateJob(account, job, "j", "Acme", "t", None, None, rows, time.time()),
            ops.FinishJob(job, "running", 0, None))
    with pg.begin() as conn:
        conn.execute(text("UPDATE instances SET lease_until = now() - interval '1 hour' "
                          "WHERE id = 'dead'"))
        for owner, message in zip(("a", "b", "b", "dead", None, None), rows, strict=True):
            conn.execute(text("UPDATE messages SET lease_owner = :o WHERE id = :m"),
                         {"o": owner, "m": message.message_id})
    cancelled, refunded = a.apply(ops.StopJob(job, account, frozenset(), "a"))[0]
    assert (cancelled, refunded) == (4, 4)
    assert _rows(pg, "SELECT lease_owner FROM messages WHERE status = 'queued'") == \
        [("b",), ("b",)]
    assert b.apply(ops.StopJob(job, account, frozenset(), "b"))[0] == (2, 2)
    assert _rows(pg, "SELECT balance, (SELECT refunded FROM jobs) FROM accounts") == \
        [(100, 6)]
