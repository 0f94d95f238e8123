"""A migrated database per test: a real SQLite file, and PostgreSQL when
SMPPD_TEST_POSTGRES_URL names one (.ci/run sets it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from smppd.store import database, queries
from smppd.store.batch import BatchApplier

POSTGRES_URL = os.environ.get("SMPPD_TEST_POSTGRES_URL")


def _reset_postgres(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: Any, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = database.make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    else:
        if not POSTGRES_URL:
            pytest.skip("PostgreSQL store tests need SMPPD_TEST_POSTGRES_URL "
                        "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
        engine = database.make_engine(POSTGRES_URL)
        _reset_postgres(engine)
    database.upgrade(engine)
    yield engine
    engine.dispose()


class Store:
    """Applies batches directly (no writer thread) and reads back."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.applier = BatchApplier({"smsc": "all", "first-only": "first"})
        with engine.begin() as conn:
            self.accounts = queries.seed_accounts(
                conn, [("acme", 1000), ("other", 10), ("bulk", 10**7)])

    def apply(self, *ops: Any) -> list[Any]:
        with self.engine.begin() as conn:
            return self.applier.apply(conn, list(ops))

    def message(self, message_id: str, account: str = "acme") -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            return queries.get_message(conn, self.accounts[account], message_id)

    def balance(self, account: str = "acme") -> int:
        with self.engine.connect() as conn:
            return queries.balance(conn, self.accounts[account])

    def scalar(self, sql: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql)).scalar()


@pytest.fixture
def store(engine: Engine) -> Store:
    return Store(engine)
