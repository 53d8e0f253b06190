"""Storage: one interface (:class:`Store`), two backends chosen by the database URL.

Names are loaded on first use (PEP 562), so importing ``marketdata.storage.urls`` for a URL
check does not pull in polars, SQLAlchemy's ORM layer or Alembic.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from marketdata.errors import MarketDataError, StorageError

if TYPE_CHECKING:
    from pathlib import Path

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
    behind raises :class:`~marketdata.errors.SchemaOutOfDate`. A database that cannot be
    opened (an unwritable directory, a file that is not SQLite) raises
    :class:`~marketdata.errors.StorageError` naming the place and the reason.
    """
    from marketdata.storage.urls import DatabaseUrl

    db = DatabaseUrl.parse(url)
    await asyncio.to_thread(_check_schema, db, create=create_schema)
    if db.backend == "sqlite":
        from marketdata.storage.sqlite import SQLiteStore

        return await SQLiteStore.open(db.sqlite_path)
    from marketdata.storage.postgres import PostgresStore

    return await PostgresStore.open(db)


def _check_schema(db: DatabaseUrl, *, create: bool) -> None:
    from marketdata.storage.migrate import ensure_current

    with opening(db):
        ensure_current(db, create=create)


@contextlib.contextmanager
def opening(db: DatabaseUrl) -> Iterator[None]:
    """Run the body (migrations, a revision check) on a database that can be opened.

    A SQLite file is opened first, its directory created if needed, so that an unusable
    place fails with one clear :class:`~marketdata.errors.StorageError` (the path, the
    reason, what to do) instead of the driver's; the driver errors the body meets are
    translated the same way. Messages never carry a password.
    """
    if db.backend == "sqlite":
        _check_sqlite(db)
    try:
        yield
    except Exception as exc:
        error = _driver_error(db, exc)
        if error is None:
            raise
        raise error from None


def _check_sqlite(db: DatabaseUrl) -> None:
    """Create the file's directory and read the file's header, or raise StorageError."""
    import sqlite3

    path = db.sqlite_path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = (
            f"cannot create the directory {path.parent} for {db.display}: "
            f"{_os_reason(path.parent, exc)} ({_WRITABLE_HINT})"
        )
        raise StorageError(msg) from None
    try:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA schema_version").fetchone()  # reads the header (and WAL)
    except sqlite3.Error as exc:
        raise _sqlite_error(db, exc) from None


_WRITABLE_HINT = "set MARKETDATA_DATA_DIR or MARKETDATA_DATABASE_URL to a writable place"


def _os_reason(path: Path, exc: OSError) -> str:
    """Why a directory cannot be created: a file in the way is named, else the OS's words."""
    if isinstance(exc, FileExistsError | NotADirectoryError):
        for part in (path, *path.parents):
            if part.exists() and not part.is_dir():
                return f"{part} is a file, not a directory"
    return exc.strerror or str(exc)


def _sqlite_error(db: DatabaseUrl, exc: BaseException) -> StorageError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "not a database" in reason:
        hint = "MARKETDATA_DATABASE_URL must name a SQLite database, or a new file to create"
    elif "locked" in reason:
        hint = "another process holds it: try again when it has finished"
    else:
        name = db.sqlite_path.name
        hint = (
            f"SQLite must be able to write the file and {name}-wal and {name}-shm beside it: "
            f"check the directory's permissions, or {_WRITABLE_HINT}"
        )
    return StorageError(f"cannot open {db.display}: {reason} ({hint})")


def _driver_error(db: DatabaseUrl, exc: Exception) -> StorageError | None:
    """``exc`` as a StorageError when it is a driver's or the file system's, else None."""
    import sqlite3

    import sqlalchemy as sa  # loaded already: the body ran migrations

    if isinstance(exc, MarketDataError):
        return None
    if isinstance(exc, sa.exc.SQLAlchemyError):
        orig = getattr(exc, "orig", None)
        if isinstance(orig, sqlite3.Error):
            return _sqlite_error(db, orig)
        text = str(orig or exc).strip().splitlines()
        return StorageError(f"cannot open {db.display}: {text[0] if text else 'unknown error'}")
    if isinstance(exc, sqlite3.Error):
        return _sqlite_error(db, exc)
    if isinstance(exc, OSError):
        return StorageError(f"cannot open {db.display}: {exc.strerror or exc} ({_WRITABLE_HINT})")
    return None


__all__ = [
    "READ_SCHEMA",
    "DatabaseUrl",
    "Store",
    "SymbolStatus",
    "UpsertCounts",
    "ensure_current",
    "head_revision",
    "open_store",
    "opening",
    "upgrade",
]
