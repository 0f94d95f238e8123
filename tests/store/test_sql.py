"""Set-based statements: rendered once per dialect from column names, key first."""

from __future__ import annotations

from smppd.store import schema as t
from smppd.store.outcomes import MESSAGE_STATUS, PART_STATUS
from smppd.store.sql import BulkInsert, Runner


def test_an_update_renders_for_sqlite_and_postgresql_from_the_same_declaration() -> None:
    sqlite = PART_STATUS.render(2, "?", cast=False)
    assert sqlite.startswith("UPDATE parts SET status = v.column3, error_code = "
                             "COALESCE(v.column4, parts.error_code)")
    assert "FROM (VALUES (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)) AS v WHERE" in sqlite
    assert sqlite.endswith("parts.message_id = v.column1 AND parts.part_no = v.column2")
    postgres = MESSAGE_STATUS.render(1, "%s", cast=True)
    assert "CAST(%s AS VARCHAR(32))" in postgres and "CAST(%s AS TIMESTAMP" in postgres
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
