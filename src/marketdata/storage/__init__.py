"""Storage: one interface (:class:`Store`), two backends chosen by the database URL."""

from __future__ import annotations

import asyncio

from marketdata.storage.base import READ_SCHEMA, Store, SymbolStatus, UpsertCounts
from marketdata.storage.migrate import ensure_current, head_revision, upgrade
from marketdata.storage.urls import DatabaseUrl


async def open_store(url: str, *, create_schema: bool = True) -> Store:
    """Open the database at ``url`` after checking its schema is current.

    A database with no schema yet is created when ``create_schema`` is true; one that is
    behind raises :class:`~marketdata.errors.SchemaOutOfDate`.
    """
    db = DatabaseUrl.parse(url)
    await asyncio.to_thread(ensure_current, db, create=create_schema)
    if db.backend == "sqlite":
        from marketdata.storage.sqlite import SQLiteStore  # load one driver

        return await SQLiteStore.open(db.sqlite_path)
    from marketdata.storage.postgres import PostgresStore  # load one driver

    return await PostgresStore.open(db)


__all__ = [
    "READ_SCHEMA",
    "DatabaseUrl",
    "Store",
    "SymbolStatus",
    "UpsertCounts",
    "ensure_current",
    "head_revision",
    "open_store",
    "upgrade",
]
