"""Alembic environment: the engine comes from smppd (`smppd db upgrade`, `smppd run`),
never from an alembic.ini, so there is one place that knows the database URL.

On PostgreSQL several instances may start at once (issue 14): the migration runs
under a session-level advisory lock, so one instance migrates while the others wait
on the lock and then find the schema at head (Alembic then has nothing to do)."""

from alembic import context
from sqlalchemy import create_engine

from smppd.store.instances import MIGRATION_LOCK
from smppd.store.schema import metadata

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # `alembic` run by hand: -x url=...
    engine = create_engine(context.get_x_argument(as_dictionary=True)["url"])

with engine.connect() as connection:
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        connection.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
        connection.commit()
    try:
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=engine.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        if postgres:
            connection.rollback()
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
            connection.commit()
