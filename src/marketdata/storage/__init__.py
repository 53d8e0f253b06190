"""Storage: one interface (:class:`Store`), two backends chosen by the database URL.

Names are loaded on first use (PEP 562), so importing ``marketdata.storage.urls`` for a URL
check does not pull in polars, SQLAlchemy's ORM layer or Alembic.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from marketdata.storage.base import READ_SCHEMA, Store, SymbolStatus, UpsertCounts
    from marketdata.storage.migrate import ensure_current, head_revision, upgrade
    from marketdata.storage.urls import DatabaseUrl

_LAZY = {
    "READ_SCHEMA": "marketdata.storage.base",
    "Store": "marketdata.storage.base",
    "SymbolStatus": "marketdata.storage.base",
    "UpsertCounts": "marketdata.storage.base",
    "ensure_current": "marketdata.storage.migrate",
    "head_revision": "marketdata.storage.migrate",
    "upgrade": "marketdata.storage.migrate",
    "DatabaseUrl": "marketdata.storage.urls",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'marketdata.storage' has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(module), name)


async def open_store(url: str, *, create_schema: bool = True) -> Store:
    """Open the database at ``url`` after checking its schema is current.

    A database with no schema yet is created when ``create_schema`` is true; one that is
    behind raises :class:`~marketdata.errors.SchemaOutOfDate`.
    """
    from marketdata.storage.migrate import ensure_current
    from marketdata.storage.urls import DatabaseUrl

    db = DatabaseUrl.parse(url)
    await asyncio.to_thread(ensure_current, db, create=create_schema)
    if db.backend == "sqlite":
        from marketdata.storage.sqlite import SQLiteStore

        return await SQLiteStore.open(db.sqlite_path)
    from marketdata.storage.postgres import PostgresStore

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
