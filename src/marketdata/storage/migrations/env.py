"""Alembic environment: migrates the connection handed over by :mod:`marketdata.storage.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from marketdata.storage.schema import metadata

config = context.config


def run_migrations() -> None:
    """Run migrations on the given connection, or on ``sqlalchemy.url`` (alembic CLI)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
