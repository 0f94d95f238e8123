"""Set-based statements: rendered once per dialect from column names, key first."""

from __future__ import annotations

from smppd.store import schema as t
from smppd.store.outcomes import INSERT_EVENT, MESSAGE_STATUS, PART_STATUS
from smppd.store.sql import BulkInsert, Runner


def test_an_update_renders_for_sqlite_and_postgresql_from_the_same_declaration() -> None:
    sqlite = PART_STATUS.render(2, "?")
    assert sqlite.startswith("UPDATE parts SET status = v.column3, error_code = "
                             "COALESCE(v.column4, parts.error_code)")
    assert "FROM (VALUES (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)) AS v WHERE" in sqlite
    assert sqlite.endswith("parts.message_id = v.column1 AND parts.part_no = v.column2")
    postgres = MESSAGE_STATUS.render_arrays("%s")
    assert "CAST(%s AS VARCHAR(32)[])" in postgres and "CAST(%s AS TIMESTAMP" in postgres
    assert "AS v(column1, column2, column3, column4, column5, column6, column7)" in postgres


def test_an_insert_carries_its_constants() -> None:
    statement = BulkInsert(t.parts, ("message_id", "part_no", "updated_at"),
                           {"status": "'queued'"})
    assert statement.render(2, "?") == (
        "INSERT INTO parts (message_id, part_no, updated_at, status) VALUES "
        "(?, ?, ?, 'queued'), (?, ?, ?, 'queued')")


def test_the_runner_keeps_the_latest_row_per_key(engine) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    runner = Runner(engine.dialect.name, engine.dialect.paramstyle)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO accounts (name, balance, created_at) "
                          "VALUES ('x', 10, '2026-01-01 00:00:00')"))
        account = conn.execute(text("SELECT id FROM accounts WHERE name = 'x'")).scalar()
        from smppd.store.ledger import _ADD

        runner.run(conn, _ADD, [(account, 5), (account, 7)])
        assert conn.execute(text(f"SELECT balance FROM accounts WHERE id = {account}")
                            ).scalar() == 17


def test_postgresql_gets_one_text_per_statement_whatever_the_row_count() -> None:
    """A VALUES list's text changes with the batch size, and PostgreSQL parsed and
    planned every one afresh; arrays keep one text, which psycopg prepares once."""
    update = PART_STATUS.render_arrays("%s")
    assert update.count("%s") == PART_STATUS.width
    assert "FROM unnest(CAST(%s AS VARCHAR(32)[]), CAST(%s AS INTEGER[])," in update
    assert update.endswith("WHERE parts.message_id = v.column1 AND parts.part_no = v.column2")
    insert = BulkInsert(t.parts, ("message_id", "part_no", "updated_at"),
                        {"status": "'queued'"}).render_arrays("%s")
    assert insert == (
        "INSERT INTO parts (message_id, part_no, updated_at, status) SELECT v.column1, "
        "v.column2, v.column3, 'queued' FROM unnest(CAST(%s AS VARCHAR[]), "
        "CAST(%s AS INTEGER[]), CAST(%s AS TIMESTAMP WITHOUT TIME ZONE[])) WITH ORDINALITY "
        "AS v(column1, column2, column3, row_number) ORDER BY v.row_number")


def test_the_runner_writes_awkward_values_and_keeps_the_order(engine) -> None:  # type: ignore[no-untyped-def]
    """Quotes, commas, braces, backslashes and NULLs (a column of NULLs only, too)
    survive either form; rows go in in their order (ids follow it); an update with
    a NULL keeps the column where the statement says COALESCE."""
    from sqlalchemy import text

    from smppd.store.sql import utc

    runner = Runner(engine.dialect.name, engine.dialect.paramstyle)
    awkward = ['{"a","b"}', "it's, \\ fine", "NULL", "", "żółw ☃"]
    now = runner.ts(utc(1_800_000_000))
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO accounts (name, balance, created_at) "
                          "VALUES ('x', 10, '2026-01-01 00:00:00')"))
        account = conn.execute(text("SELECT id FROM accounts WHERE name = 'x'")).scalar()
        messages = BulkInsert(t.messages, (
            "id", "account_id", "sender", "recipient", "text", "encoding", "parts", "points",
            "concat_ref", "status", "created_at", "updated_at"))
        runner.run(conn, messages, [
            (f"m{i}", account, "S", "48500", value, "gsm7", 1, 1, 0, "queued", now, now)
            for i, value in enumerate(awkward)])
        parts = BulkInsert(t.parts, ("message_id", "part_no", "updated_at"),
                           {"status": "'queued'"})
        runner.run(conn, parts, [(f"m{i}", 1, now) for i in range(len(awkward))])
        runner.run(conn, PART_STATUS, [(f"m{i}", 1, "submitted", None, None, now)
                                       for i in range(len(awkward))])
        runner.run(conn, PART_STATUS, [("m1", 1, "delivered", "err:1", "smsc-a", now)])
        statuses = ["submitted", "delivered", "expired", "accepted", "queued"] * 40
        runner.run(conn, INSERT_EVENT, [("m0", 1, status, None, now) for status in statuses])
        texts = [row[0] for row in conn.execute(text(
            "SELECT text FROM messages ORDER BY id"))]
        events = [row[0] for row in conn.execute(text(
            "SELECT status FROM message_events ORDER BY id"))]
        parts_now = {row[0]: tuple(row[1:]) for row in conn.execute(text(
            "SELECT message_id, status, error_code, smsc FROM parts"))}
    assert texts == awkward
    assert events == statuses
    assert parts_now["m0"] == ("submitted", None, None)
    assert parts_now["m1"] == ("delivered", "err:1", "smsc-a")


def test_an_over_long_value_is_refused_not_cut(engine) -> None:  # type: ignore[no-untyped-def]
    """An insert's arrays are cast without a length, so PostgreSQL refuses a value
    longer than its column ("value too long") as the VALUES list did, rather than
    cutting it to a key that would never match again. SQLite keeps lengths loose."""
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import DataError

    runner = Runner(engine.dialect.name, engine.dialect.paramstyle)
    aliases = BulkInsert(t.part_aliases, ("smsc", "smsc_key", "message_id", "part_no"))
    key = "k" * 65  # smsc_key is VARCHAR(64)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            with pytest.raises(DataError, match="too long"), conn.begin():
                runner.run(conn, aliases, [("a", key, "m1", 1)])
        else:
            with conn.begin():
                runner.run(conn, aliases, [("a", key, "m1", 1)])
            assert conn.execute(text("SELECT smsc_key FROM part_aliases")).scalar() == key


def test_a_bad_row_is_sqlalchemys_integrity_error_and_nothing_of_it_stays(engine) -> None:  # type: ignore[no-untyped-def]
    """SQLite's statements go straight to the driver; its errors still come out as
    SQLAlchemy's, so the writer tells a bad row (written again one by one) from an
    unavailable database (kept and retried) as it did."""
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from smppd.store.writer import unavailable

    runner = Runner(engine.dialect.name, engine.dialect.paramstyle)
    aliases = BulkInsert(t.part_aliases, ("smsc", "smsc_key", "message_id", "part_no"))
    with engine.connect() as conn:
        with pytest.raises(IntegrityError, match="part_aliases") as caught, conn.begin():
            runner.run(conn, aliases, [("a", "k1", "m1", 1), ("a", None, "m1", 2)])
        assert not unavailable(caught.value)
        assert "INSERT INTO part_aliases" in str(caught.value)
        with conn.begin():
            assert runner.fetch(conn, "SELECT count(*) FROM part_aliases") == [(0,)]
            assert conn.execute(text("SELECT count(*) FROM part_aliases")).scalar() == 0


def test_a_locked_sqlite_database_is_unavailable_not_a_bad_row(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Another process holding the write lock past the wait: the batch's BEGIN (sent
    to the driver directly) fails as SQLAlchemy's OperationalError, which the writer
    treats as the database being unavailable (kept and retried, not refused)."""
    import sqlite3

    import pytest
    from sqlalchemy.exc import OperationalError

    from smppd.store import database
    from smppd.store.limits import StoreLimits
    from smppd.store.writer import unavailable

    path = tmp_path / "locked.db"
    database.upgrade_url(f"sqlite:///{path}")
    engine = database.make_engine(f"sqlite:///{path}",
                                  limits=StoreLimits(statement_timeout=0.05))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError, match="locked") as caught, engine.begin():
            pass
        assert unavailable(caught.value)
    finally:
        other.execute("ROLLBACK")
        other.close()
        engine.dispose()
    with engine.begin() as conn:  # the lock gone, the same engine writes again
        Runner("sqlite", "qmark").execute(conn, "DELETE FROM part_aliases")
