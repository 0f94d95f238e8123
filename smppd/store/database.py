"""Opening the database: engine settings per backend and the schema via Alembic.

The daemon's engine is made with StoreLimits (config `store:`), which bound every
wait on the database; an engine made without them (migrations, `smppd db`, tests
of the SQL) waits as long as the database takes, as a migration of a big table may
need to.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from .limits import StoreLimits
from .sql import driver_execute

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger("smppd.store")
SQLITE_LOCK_WAIT = 10.0  # seconds, without limits: another process may hold the lock
MIGRATIONS = Path(__file__).with_name("migrations")
# The last migration's revision, written down so that a daemon starting on a current
# schema needs no Alembic: importing it and reading the scripts cost about half a CPU
# second a start, a large share of a throttled run's CPU. tests/store/test_store.py
# checks it against Alembic's own head, so it cannot fall behind a new migration.
SCHEMA_HEAD = "0012"


class DatabaseError(RuntimeError):
    """The database cannot be opened or migrated; the message says which and why."""


def _sqlite_pragmas(lock_wait: float, temp_in_memory: bool) -> Any:
    def apply(dbapi_connection: Any, _record: Any) -> None:
        # WAL: readers (the API) never block the writer. synchronous=FULL: a commit
        # is on disk before the API answers 201, power loss included; the writer
        # batches, so the fsync is paid once per batch, not once per message.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={round(lock_wait * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        if temp_in_memory:
            # A multi-row UPDATE or INSERT inside a transaction keeps a statement
            # journal, and an UPDATE ... FROM (VALUES ...) materializes its list: by
            # default each is a temporary file, created and unlinked in /var/tmp per
            # statement (access, open, unlink, writes, close: at full speed about 35
            # files a second and their pwrites, on the writer). They are small; the
            # writing engine keeps them in memory. The report engine does not: a
            # large GROUP BY may spill, and should spill to disk, not to RSS.
            cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()
    return apply


def make_engine(url: str, pool_size: int = 5, immediate: bool = True,
                limits: StoreLimits | None = None) -> Engine:
    """An engine for `url`; with `limits`, no wait on the database is unbounded.
    `immediate=False` (issue 10, reports): SQLite transactions start deferred and
    stay reads, so a long report holds a WAL snapshot, never the write lock."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"database: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).parent
            if not folder.is_dir():
                raise DatabaseError(f"database: the folder {folder} does not exist")
        engine = create_engine(url, pool_size=pool_size, max_overflow=2, **_pool(limits),
                               connect_args={"check_same_thread": False})
        lock_wait = limits.statement_timeout if limits else SQLITE_LOCK_WAIT
        event.listen(engine, "connect", _sqlite_pragmas(lock_wait, temp_in_memory=immediate))
        # pysqlite's own transaction handling defers BEGIN oddly; take it over so a
        # batch is exactly one transaction.
        event.listen(engine, "connect", lambda conn, _r: setattr(conn, "isolation_level", None))
        # Straight to the driver: the writer begins a transaction per batch, and
        # exec_driver_sql cost ten times the BEGIN itself (smppd.store.sql).
        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        event.listen(engine, "begin", lambda conn: driver_execute(conn, begin))
        return engine
    try:
        connect_args = limits.postgres_connect_args(dict(parsed.query)) if limits else {}
        engine = create_engine(url, pool_size=pool_size, max_overflow=2, pool_pre_ping=True,
                               connect_args=connect_args, **_pool(limits))
    except (ImportError, NoSuchModuleError) as exc:
        raise DatabaseError(f"database: no driver for {parsed.drivername} ({exc}); for "
                            "PostgreSQL: pip install 'smppd[postgres]'") from None
    if limits is not None and parsed.get_backend_name() == "postgresql":
        from .postgres import bound_waits

        bound_waits(engine, limits)
    return engine


def _pool(limits: StoreLimits | None) -> dict[str, Any]:
    """The pool's checkout wait (SQLAlchemy's default is 30 s)."""
    return {"pool_timeout": limits.pool_timeout} if limits else {}


def _alembic_config(engine: Engine | None) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade_url(url: str, revision: str = "head") -> None:
    """Migrate with an engine of its own, made without limits: the daemon's bounded
    engine would cut a migration that rewrites a big table."""
    engine = make_engine(url, pool_size=1)
    try:
        if revision == "head" and current_revision(engine) == SCHEMA_HEAD:
            return
        upgrade(engine, revision)
    finally:
        engine.dispose()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (Alembic); creates it in an empty database."""
    from alembic import command

    try:
        command.upgrade(_alembic_config(engine), revision)
    except SQLAlchemyError as exc:
        raise DatabaseError(f"database: migration failed: {exc.__class__.__name__}: "
                            f"{str(exc).splitlines()[0]}") from None


def head_revision() -> str:
    """The revision this version of smppd migrates to."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config(None)).get_current_head()
    assert head is not None, "no migrations shipped"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
