"""Idempotency keys in the store, on SQLite and PostgreSQL: the key and its answer
are committed in the message's (or the job's last batch's) own transaction."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import text

from smppd.ids import new_id
from smppd.store import idempotency
from smppd.store import operations as ops
from smppd.store.idempotency import Claim, Stored
from tests.conftest import call, wait_for
from tests.store.conftest import Store
from tests.store.test_store import accept


def claim(store: Store, key: str = "key-1", fingerprint: str = "f" * 64,
          account: str = "acme") -> Claim:
    return Claim(store.accounts[account], key, fingerprint, 201, '{"id":"x"}')


def lookup(store: Store, key: str = "key-1", account: str = "acme") -> Stored | None:
    with store.engine.connect() as conn:
        return idempotency.lookup(conn, store.accounts[account], key)


def messages(store: Store) -> int:
    return store.scalar("SELECT count(*) FROM messages")


def test_the_key_is_kept_with_its_message(store: Store) -> None:
    first = accept(store, idempotency=claim(store))
    assert store.apply(first) == [first.message_id]
    assert lookup(store) == Stored("f" * 64, 201, '{"id":"x"}')
    assert lookup(store, account="other") is None  # keys are per account
    retry = accept(store, idempotency=claim(store))
    assert store.apply(retry) == [Stored("f" * 64, 201, '{"id":"x"}')]
    assert messages(store) == 1 and store.balance() == 1000 - 1  # charged once


def test_the_same_key_twice_in_one_batch_makes_one_message(store: Store) -> None:
    first, second = accept(store, idempotency=claim(store)), accept(
        store, idempotency=claim(store, fingerprint="e" * 64))
    plain = accept(store)
    results = store.apply(first, second, plain)
    assert results[0] == first.message_id and results[2] == plain.message_id
    assert results[1] == Stored("f" * 64, 201, '{"id":"x"}')  # the caller sees the mismatch
    assert messages(store) == 2


def test_a_failure_writing_the_key_leaves_no_message(store: Store,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The key row is written in the message's transaction: if it cannot be written,
    the message, its parts and its charge are not there either (and the reverse)."""

    def broken(conn: Any, claims: Any) -> None:
        if claims:
            raise RuntimeError("disk full")

    monkeypatch.setattr(idempotency, "record", broken)
    message = accept(store, idempotency=claim(store))
    with pytest.raises(RuntimeError):
        store.apply(message)
    assert messages(store) == 0 and store.balance() == 1000
    monkeypatch.undo()
    with pytest.raises(RuntimeError), store.engine.begin() as conn:
        store.applier.apply(conn, [accept(store, idempotency=claim(store))])
        raise RuntimeError("the commit never happens (kill -9)")
    assert lookup(store) is None and messages(store) == 0


def test_a_refused_message_keeps_no_key(store: Store) -> None:
    too_dear = accept(store, points=10_000, idempotency=claim(store))
    assert isinstance(store.apply(too_dear)[0], ops.InsufficientBalance)
    assert lookup(store) is None


def test_keys_expire_after_a_day_and_are_purged(store: Store) -> None:
    store.apply(accept(store, idempotency=claim(store)))
    store.apply(accept(store, idempotency=claim(store, key="key-2")))
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE idempotency_keys SET created_at = :old WHERE "
                          "idempotency_key = 'key-1'"),
                     {"old": idempotency._utc(time.time() - 24 * 3600 - 5)})
    assert lookup(store) is None and lookup(store, "key-2") is not None
    again = accept(store, idempotency=claim(store, fingerprint="a" * 64))
    assert store.apply(again) == [again.message_id]  # an expired key is a new key
    assert lookup(store).fingerprint == "a" * 64
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE idempotency_keys SET created_at = :old"),
                     {"old": idempotency._utc(time.time() - 24 * 3600 - 5)})
    assert store.apply(idempotency.PurgeKeys()) == [2]
    assert store.scalar("SELECT count(*) FROM idempotency_keys") == 0


def _job(store: Store, job_id: str) -> list[Any]:
    account = store.accounts["acme"]
    return [ops.CreateJob(account, job_id, "j", "Acme", "t", None, None,
                          [accept(store, job_id=job_id)], time.time())]


def test_a_job_keeps_its_key_with_its_last_batch(store: Store) -> None:
    first = new_id()
    store.apply(*_job(store, first))
    assert store.apply(ops.FinishJob(first, "running", 0, None, claim(store))) == ["running"]
    assert lookup(store) is not None
    second = new_id()
    store.apply(*_job(store, second))
    kept = store.apply(ops.FinishJob(second, "running", 0, None, claim(store)))[0]
    assert kept == Stored("f" * 64, 201, '{"id":"x"}')
    assert store.scalar(f"SELECT state FROM jobs WHERE id = '{second}'") == "creating"
    assert store.apply(ops.AbortJob(second)) == [1]  # what the caller does next


def test_a_racing_insert_of_the_same_key_becomes_its_answer(
        store: Store, reactor_running: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another instance commits the key between this batch's check and its insert:
    the batch fails on the key, the writer redoes it operation by operation, and
    the retry then finds the key: one message, the other's answer."""
    from smppd.store.writer import Writer

    if store.engine.dialect.name == "sqlite":
        pytest.skip("SQLite: BEGIN IMMEDIATE holds the write lock from the start, so no "
                    "other writer can race (instances share PostgreSQL only)")

    original = idempotency.claimed
    raced: list[bool] = []

    def claimed_then_raced(conn: Any, items: Any, results: Any) -> Any:
        kept = original(conn, items, results)
        if not raced:
            raced.append(True)
            with store.engine.begin() as other:  # "another instance"
                idempotency.record(other, [claim(store, fingerprint="b" * 64)])
        return kept

    monkeypatch.setattr(idempotency, "claimed", claimed_then_raced)
    writer = Writer(store.engine, store.applier, reactor_running)
    writer.start()
    done: list[Any] = []
    message = accept(store, idempotency=claim(store))
    call(lambda: writer.put(message).addBoth(done.append))
    wait_for(lambda: done, what="the accept settled")
    writer.stop()
    assert done == [Stored("b" * 64, 201, '{"id":"x"}')]
    assert messages(store) == 0 and store.balance() == 1000
