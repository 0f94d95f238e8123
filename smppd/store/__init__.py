"""Persistence: SQLAlchemy Core tables, Alembic migrations, the batching writer and
the read queries. SQLite (WAL) by default, PostgreSQL by URL."""
