"""Alembic environment: the engine comes from smppd (`smppd db upgrade`, `smppd run`),
never from an alembic.ini, so there is one place that knows the database URL."""

from alembic import context
from sqlalchemy import create_engine

from smppd.store.schema import metadata

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # `alembic` run by hand: -x url=...
    engine = create_engine(context.get_x_argument(as_dictionary=True)["url"])

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=engine.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
