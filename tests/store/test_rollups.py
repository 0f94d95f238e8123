"""The reports' rollups (smppd.store.rollups) kept by the writer agree with a recount of
the messages table, on SQLite and PostgreSQL, through every way a message's count,
status, error or refund changes: accepts, responses, receipts, rejections (refunds),
unknown outcomes settled late, job stop (cancel + refund), job abort (deleted),
a rolled-back batch and a cold writer cache."""

from __future__ import annotations

import random
import time
from typing import Any

from sqlalchemy import text

from smppd.ids import new_id
from smppd.store import operations as ops
from smppd.store import rollups
from tests.store.conftest import Store

HOUR = 3600.0
_rng = random.Random(2026)


def id_at(moment: float) -> str:
    """An id made at `moment` (new_id never goes back in time, by design)."""
    return f"{int(moment * 1000):012x}{_rng.getrandbits(80):020x}"


def _accept(store: Store, moment: float, parts: int, account: str = "bulk",
            job: str | None = None) -> ops.Accept:
    return ops.Accept(store.accounts[account], id_at(moment), "Acme", "48500100200", "PL",
                      "text", "gsm", parts, 2 * parts, 7, "smsc", None, None, moment,
                      job_id=job)


def _differences(store: Store) -> list[Any]:
    with store.engine.connect() as conn:
        return rollups.differences(conn)


def test_rollups_reconcile_with_a_recount_through_every_change(store: Store) -> None:
    rng = random.Random(10)
    base = time.time() - 3 * HOUR
    messages = [_accept(store, base + rng.uniform(0, 2 * HOUR), rng.randint(1, 3),
                        account=rng.choice(["bulk", "acme"])) for _ in range(300)]
    store.apply(*messages)
    assert _differences(store) == []
    submitted, keys = [], {}
    for index, message in enumerate(messages):
        if index % 10 == 9:
            continue  # left queued
        for part in range(1, message.parts + 1):
            key = f"{message.message_id}-{part}"
            keys[(message.message_id, part)] = key
            if index % 10 == 8 and part == message.parts:
                submitted.append(ops.PartFailed(message.message_id, part, "smsc", "rejected",
                                                "ESME_RINVDSTADR"))
            elif index % 10 == 7:
                submitted.append(ops.PartUnknown(message.message_id, part, "smsc",
                                                 "no response"))
                submitted.append(ops.LateId(message.message_id, part, "smsc", key, key, 0))
            else:
                submitted.append(ops.PartSubmitted(message.message_id, part, "smsc", key, key))
    store.apply(*submitted)
    assert _differences(store) == []
    store.applier.reset()  # a cold cache: states (errors included) are read back
    receipts = []
    for key in keys.values():
        outcome = rng.choice([("delivered", None), ("undelivered", "001"),
                              ("expired", "002"), ("delivered", None)])
        receipts.append(ops.ReceiptSeen("smsc", key, *outcome))
    for start in range(0, len(receipts), 97):  # several batches
        store.apply(*receipts[start:start + 97])
    assert _differences(store) == []

    # A job stopped half way: its unsent messages are cancelled and refunded.
    job_id = new_id()
    job_messages = [_accept(store, base + HOUR, 1, job=job_id) for _ in range(50)]
    store.apply(ops.CreateJob(store.accounts["bulk"], job_id, "job", "Acme", "t", None, None,
                              job_messages, base + HOUR))
    store.apply(ops.FinishJob(job_id, "running", 0, None))
    store.apply(ops.Warm([(m.message_id, m.account_id, m.points, "smsc", 1)
                          for m in job_messages]))
    store.apply(*[ops.PartSubmitted(m.message_id, 1, "smsc", f"j{n}", f"j{n}")
                  for n, m in enumerate(job_messages[:20])])
    cancelled, _refund = store.apply(ops.StopJob(job_id, store.accounts["bulk"],
                                                 frozenset()))[0]
    assert cancelled == 30
    assert _differences(store) == []

    # A job aborted while being written, its messages in two slots: they leave the
    # rollups with the rows.
    aborted = new_id()
    spread = [_accept(store, base + offset, 1, job=aborted) for offset in (0.0, HOUR)]
    store.apply(ops.CreateJob(store.accounts["bulk"], aborted, "abort", "Acme", "t", None,
                              None, spread, base))
    assert _differences(store) == []
    store.apply(ops.AbortJob(aborted))
    assert _differences(store) == []

    # A batch rolled back changes nothing, in the messages or the rollups.
    with store.engine.connect() as conn:
        before = rollups.stored(conn)
    lost = _accept(store, base, 1)
    conn = store.engine.connect()
    transaction = conn.begin()
    store.applier.apply(conn, [lost])
    transaction.rollback()
    conn.close()
    store.applier.reset()
    with store.engine.connect() as conn:
        assert rollups.stored(conn) == before
    assert _differences(store) == []

    # The sums say what the table says.
    with store.engine.connect() as conn:
        kept = rollups.stored(conn)
        assert len({key[1] for key in kept}) >= 8  # two hours of quarter hours
        messages_total = conn.execute(text("SELECT COUNT(*), SUM(points), SUM(refunded) "
                                           "FROM messages")).one()
    assert sum(v[0] for v in kept.values()) == messages_total[0]
    assert sum(v[2] for v in kept.values()) == messages_total[1]
    assert sum(v[3] for v in kept.values()) == messages_total[2] > 0
    statuses = {key[2] for key, value in kept.items() if value[0]}
    assert {"queued", "delivered", "undelivered", "expired", "rejected", "cancelled",
            "submitted"} <= statuses


def test_rebuild_replaces_damaged_rollups(store: Store) -> None:
    messages = [_accept(store, time.time(), 1) for _ in range(5)]
    store.apply(*messages)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE message_rollups SET messages = messages + 3"))
    assert _differences(store)
    with store.engine.begin() as conn:
        assert rollups.rebuild(conn) == 1
    assert _differences(store) == []


def test_slot_is_the_quarter_hour_of_the_id() -> None:
    moment = 1_700_000_123.456
    assert rollups.slot_of(id_at(moment)) == 1_700_000_100 // 900 * 900
    assert rollups.slot_of_time(moment) == rollups.slot_of(id_at(moment))
    assert rollups.slot_of(id_at(1_700_000_099.999)) == 1_700_000_100 - 900


def test_migration_from_0003_fills_channel_and_rollups(tmp_path: Any) -> None:
    """Messages kept before revision 0007 (reports) get their channel and their rollups."""
    from smppd.store import database

    engine = database.make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    database.upgrade(engine, "0003")
    moment = time.time()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO accounts (name, balance, created_at) "
                          "VALUES ('old', 10, '2026-01-01 00:00:00')"))
        for n, job in enumerate((None, "j" * 32, None)):
            conn.execute(text(
                "INSERT INTO messages (id, account_id, job_id, sender, recipient, text, "
                "encoding, parts, points, refunded, concat_ref, status, error_code, "
                "created_at, updated_at) VALUES (:id, 1, :job, 'A', '48500', 't', 'gsm', 1, "
                "2, :refunded, 0, :status, :error, '2026-01-01', '2026-01-01')"),
                {"id": id_at(moment + n), "job": job, "refunded": 2 if n == 2 else 0,
                 "status": "rejected" if n == 2 else "delivered",
                 "error": "ESME_RINVDSTADR" if n == 2 else None})
    database.upgrade(engine)
    with engine.connect() as conn:
        channels = [row[0] for row in conn.execute(text(
            "SELECT channel FROM messages ORDER BY id"))]
        assert channels == ["api", "job", "api"]
        assert rollups.differences(conn) == []
        assert sum(v[0] for v in rollups.stored(conn).values()) == 3
    engine.dispose()


def test_schema_matches_the_migrations(engine: Any) -> None:
    """The tables in schema.py are what the migrations make (no drift)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import String

    from smppd.store.schema import metadata

    def compare_type(context: Any, inspected: Any, metadata_column: Any,
                     inspected_type: Any, metadata_type: Any) -> bool | None:
        # SQLite ignores VARCHAR lengths, and widening one there would copy the whole
        # table (0007 widens messages.ref_id on PostgreSQL only): not drift.
        if (engine.dialect.name == "sqlite" and isinstance(inspected_type, String)
                and isinstance(metadata_type, String)
                and type(metadata_type) is String):
            return False
        return None  # the default comparison

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": compare_type})
        diff = compare_metadata(context, metadata)
    assert diff == []
