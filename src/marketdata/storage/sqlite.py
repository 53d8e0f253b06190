"""SQLite backend: the stdlib driver in WAL mode, one connection on one worker thread.

All statements run on a single dedicated thread, so the async interface never blocks the event
loop and the connection is never shared between threads. Writes use ``executemany`` inside one
``BEGIN IMMEDIATE`` transaction per chunk.

This module holds the connection and the bar writes. The rest of :class:`SQLiteStore` comes
from one mixin per concern: reads (:mod:`~marketdata.storage.sqlite_reads`), scores and the
validation log (:mod:`~marketdata.storage.sqlite_scores`), corporate actions
(:mod:`~marketdata.storage.sqlite_actions`), the status table
(:mod:`~marketdata.storage.sqlite_status`) and the backfill engine's tables
(:mod:`~marketdata.storage.sqlite_jobs`, with leases in :mod:`~marketdata.storage.sqlite_leases`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from marketdata.bars import VALUE_COLUMNS
from marketdata.errors import DatabaseUnreachable, StorageError
from marketdata.storage.jobs import Checkpoint, written_by_symbol
from marketdata.storage.prepare import (
    disjoint_from_stored,
    has_scores,
    prepare_log,
    prepare_write,
    status_deltas,
)
from marketdata.storage.records import UpsertCounts
from marketdata.storage.sqlite_actions import SQLiteActions
from marketdata.storage.sqlite_jobs import SQLiteJobs
from marketdata.storage.sqlite_leases import iso_ts
from marketdata.storage.sqlite_reads import SQLiteReads
from marketdata.storage.sqlite_scores import SQLiteScores
from marketdata.storage.sqlite_status import SQLiteStatus

T = TypeVar("T")

_BAR_COLUMNS = (
    "symbol, date, open, high, low, close, volume, vwap, transactions, "
    "source, quality, flags, validated, ingested_at"
)
_PLACEHOLDERS = ", ".join("?" * 14)
_DIFFERS = " OR ".join(f"s.{c} IS NOT b.{c}" for c in VALUE_COLUMNS)
_UPDATE_SET = ", ".join(
    f"{c} = excluded.{c}"
    for c in (*VALUE_COLUMNS, "source", "quality", "flags", "validated", "ingested_at")
)
_DIFFERS_EXCLUDED = " OR ".join(f"bars.{c} IS NOT excluded.{c}" for c in VALUE_COLUMNS)

_STATUS_UPSERT = """
INSERT INTO symbol_status (symbol, first_date, last_date, bar_count, validated_count,
                           gap_count, updated_at, source)
VALUES (?, ?, ?, ?, ?, 0, ?, ?)
ON CONFLICT (symbol) DO UPDATE SET
  first_date = CASE WHEN symbol_status.first_date IS NULL
                      OR excluded.first_date < symbol_status.first_date
                    THEN excluded.first_date ELSE symbol_status.first_date END,
  last_date = CASE WHEN symbol_status.last_date IS NULL
                     OR excluded.last_date > symbol_status.last_date
                   THEN excluded.last_date ELSE symbol_status.last_date END,
  bar_count = symbol_status.bar_count + excluded.bar_count,
  validated_count = symbol_status.validated_count + excluded.validated_count,
  updated_at = excluded.updated_at,
  source = excluded.source
"""


def _rows(frame: pl.DataFrame) -> Iterator[tuple[Any, ...]]:
    """Rows in ``bars`` column order with SQLite-friendly types (ISO text dates).

    A generator, so ``executemany`` holds one row at a time rather than the whole chunk.
    """
    return frame.with_columns(
        pl.col("date").dt.to_string("%Y-%m-%d"),
        pl.col("validated").cast(pl.Int8),
        pl.col("ingested_at").dt.to_string("%Y-%m-%dT%H:%M:%S.%6f+00:00"),
    ).iter_rows(buffer_size=4096)


class SQLiteStore(SQLiteReads, SQLiteScores, SQLiteActions, SQLiteStatus, SQLiteJobs):
    """A :class:`~marketdata.storage.base.Store` in one SQLite file."""

    backend = "sqlite"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="marketdata-sqlite")
        self._conn: sqlite3.Connection | None = None

    @property
    def description(self) -> str:
        """Where the data lives."""
        return f"SQLite file {self._path}"

    @classmethod
    async def open(cls, path: Path) -> SQLiteStore:
        """Open (creating the file if needed) and configure the connection."""
        store = cls(path)
        await store._run(store._connect)
        return store

    def _connect(self) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            msg = f"cannot open {self.description}: {exc}"
            raise DatabaseUnreachable(msg) from None
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cache_size = -65536")
        self._conn = conn

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._conn is None and fn != self._connect:
            msg = f"{self.description}: the store is closed"
            raise StorageError(msg)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as exc:
            msg = f"{self.description}: {exc}"
            raise StorageError(msg) from exc

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            msg = "the store is closed"
            raise StorageError(msg)
        return self._conn

    # -- writes ---------------------------------------------------------------------------

    async def upsert_bars(
        self,
        frame: pl.DataFrame,
        *,
        source: str,
        at: dt.datetime,
        log: pl.DataFrame | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> UpsertCounts:
        """Write ``frame`` in one transaction; see :class:`~marketdata.storage.base.Store`."""
        if frame.is_empty():
            if checkpoint is not None:
                await self.save_progress(checkpoint, at=at)
            return UpsertCounts()
        scored = has_scores(frame)
        prepared = prepare_write(frame, source=source, at=at)
        log = prepare_log(log) if log is not None else None
        return await self._run(self._upsert, prepared, source, at, scored, log, checkpoint)

    def _upsert(
        self,
        frame: pl.DataFrame,
        source: str,
        at: dt.datetime,
        scored: bool,
        log: pl.DataFrame | None,
        checkpoint: Checkpoint | None = None,
    ) -> UpsertCounts:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            stored = self._spans(db, frame["symbol"].unique().to_list())
            changed: dict[str, tuple[int, int]] | None = None  # None: all rows inserted
            if disjoint_from_stored(frame, stored):
                counts = self._insert_only(db, frame, at)
                if log is not None:
                    self._insert_log(db, log, at)
            else:
                counts, changed = self._merge(db, frame, source, at)
                if scored or log is not None:
                    self._stage_scores(db, frame)
                    if scored:
                        self._apply_scores(db, at)
                    if log is not None:
                        self._replace_log(db, log, at)
                db.execute("DELETE FROM _stage")
            if checkpoint is not None:
                self._apply_checkpoint(db, checkpoint, at, written_by_symbol(frame, changed))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return counts

    @staticmethod
    def _spans(
        db: sqlite3.Connection, symbols: list[str]
    ) -> dict[str, tuple[dt.date | None, dt.date | None]]:
        spans: dict[str, tuple[dt.date | None, dt.date | None]] = {}
        for i in range(0, len(symbols), 500):
            part = symbols[i : i + 500]
            marks = ", ".join("?" * len(part))
            for symbol, first, last in db.execute(
                "SELECT symbol, first_date, last_date FROM symbol_status"
                f" WHERE symbol IN ({marks})",
                part,
            ):
                spans[symbol] = (
                    dt.date.fromisoformat(first) if first else None,
                    dt.date.fromisoformat(last) if last else None,
                )
        return spans

    def _insert_only(
        self, db: sqlite3.Connection, frame: pl.DataFrame, at: dt.datetime
    ) -> UpsertCounts:
        db.executemany(
            f"INSERT INTO bars ({_BAR_COLUMNS}) VALUES ({_PLACEHOLDERS})",  # constants
            _rows(frame),
        )
        self._apply_status(db, status_deltas(frame), at, frame["source"][0])
        return UpsertCounts(inserted=frame.height)

    def _merge(
        self, db: sqlite3.Connection, frame: pl.DataFrame, source: str, at: dt.datetime
    ) -> tuple[UpsertCounts, dict[str, tuple[int, int]]]:
        """Merge ``frame`` through ``_stage``; the counts, and (inserted, updated) per symbol."""
        db.execute("CREATE TEMP TABLE IF NOT EXISTS _stage AS SELECT * FROM bars WHERE 0")
        db.execute("DELETE FROM _stage")
        db.executemany(
            f"INSERT INTO _stage ({_BAR_COLUMNS}) VALUES ({_PLACEHOLDERS})",
            _rows(frame),
        )
        deltas = db.execute(
            f"""
            SELECT s.symbol,
                   MIN(CASE WHEN b.symbol IS NULL THEN s.date END),
                   MAX(CASE WHEN b.symbol IS NULL THEN s.date END),
                   SUM(b.symbol IS NULL),
                   SUM(b.symbol IS NOT NULL AND ({_DIFFERS})),
                   SUM(CASE WHEN b.symbol IS NULL THEN s.validated
                            WHEN {_DIFFERS} THEN s.validated - b.validated ELSE 0 END)
            FROM _stage s LEFT JOIN bars b ON b.symbol = s.symbol AND b.date = s.date
            GROUP BY s.symbol
            """  # constants
        ).fetchall()
        inserted = sum(int(d[3]) for d in deltas)
        updated = sum(int(d[4]) for d in deltas)
        if updated:
            db.execute(
                f"""
                INSERT INTO bar_revisions ({_BAR_COLUMNS}, revised_at, revised_by)
                SELECT b.symbol, b.date, b.open, b.high, b.low, b.close, b.volume, b.vwap,
                       b.transactions, b.source, b.quality, b.flags, b.validated,
                       b.ingested_at, ?, ?
                FROM _stage s JOIN bars b ON b.symbol = s.symbol AND b.date = s.date
                WHERE {_DIFFERS}
                """,  # constants
                (iso_ts(at), source),
            )
        if inserted or updated:
            db.execute(
                f"""
                INSERT INTO bars ({_BAR_COLUMNS}) SELECT {_BAR_COLUMNS} FROM _stage WHERE true
                ON CONFLICT (symbol, date) DO UPDATE SET {_UPDATE_SET}
                WHERE {_DIFFERS_EXCLUDED}
                """  # constants
            )
        status = pl.DataFrame(
            [(d[0], d[1], d[2], int(d[3]), int(d[5] or 0)) for d in deltas if d[3] or d[4]],
            schema={
                "symbol": pl.String,
                "first_date": pl.String,
                "last_date": pl.String,
                "inserted": pl.Int64,
                "validated": pl.Int64,
            },
            orient="row",
        ).with_columns(pl.col("first_date", "last_date").str.to_date("%Y-%m-%d"))
        self._apply_status(db, status, at, source)
        counts = UpsertCounts(
            inserted=inserted, updated=updated, unchanged=frame.height - inserted - updated
        )
        return counts, {d[0]: (int(d[3]), int(d[4])) for d in deltas}

    @staticmethod
    def _apply_status(
        db: sqlite3.Connection, deltas: pl.DataFrame, at: dt.datetime, source: str
    ) -> None:
        stamp = iso_ts(at)
        db.executemany(
            _STATUS_UPSERT,
            [
                (
                    symbol,
                    first.isoformat() if first else None,
                    last.isoformat() if last else None,
                    inserted,
                    validated,
                    stamp,
                    source,
                )
                for symbol, first, last, inserted, validated in deltas.select(
                    "symbol", "first_date", "last_date", "inserted", "validated"
                ).iter_rows()
            ],
        )

    def _write_many(self, sql: str, rows: list[tuple[Any, ...]]) -> int:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            cur = db.executemany(sql, rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return int(cur.rowcount)

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, params).fetchall()

    async def purge_symbol(self, symbol: str) -> int:
        """Delete everything stored for ``symbol`` in one transaction."""
        return await self._run(self._purge, symbol)

    def _purge(self, symbol: str) -> int:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            removed = db.execute("DELETE FROM bars WHERE symbol = ?", (symbol,)).rowcount
            was = db.execute(
                "SELECT updated_at FROM symbol_status WHERE symbol = ? AND watched", (symbol,)
            ).fetchone()
            for table in (
                "bar_revisions",
                "validation_log",
                "symbol_status",
                "splits",
                "dividends",
            ):
                db.execute(f"DELETE FROM {table} WHERE symbol = ?", (symbol,))
            if was is not None:  # still watched: keep its empty row (see set_watched)
                db.execute(
                    "INSERT INTO symbol_status (symbol, updated_at, watched) VALUES (?, ?, 1)",
                    (symbol, was[0]),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return int(removed)

    async def ping(self) -> None:
        """Run a trivial query."""
        await self._run(self._fetch, "SELECT 1", [])

    async def aclose(self) -> None:
        """Release held leases, close the connection and stop the worker thread."""
        if self._conn is not None:
            try:
                await self._release_locks()
            finally:
                conn, self._conn = self._conn, None
                await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)
