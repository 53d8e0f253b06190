"""SQLite backend: the stdlib driver in WAL mode, one connection on one worker thread.

All statements run on a single dedicated thread, so the async interface never blocks the event
loop and the connection is never shared between threads. Writes use ``executemany`` inside one
``BEGIN IMMEDIATE`` transaction per chunk.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from marketdata.bars import LOG_SCHEMA, VALUE_COLUMNS
from marketdata.errors import DatabaseUnreachable, StorageError
from marketdata.storage.base import (
    MARK_SCHEMA,
    NEIGHBOUR_SCHEMA,
    READ_SCHEMA,
    REVISION_SCHEMA,
    RULE_COUNT_SCHEMA,
    STORED_DIVIDEND_SCHEMA,
    STORED_SPLIT_SCHEMA,
    UpsertCounts,
    disjoint_from_stored,
    has_scores,
    prepare_dividends,
    prepare_log,
    prepare_scores,
    prepare_splits,
    prepare_write,
    status_deltas,
)
from marketdata.storage.jobs import Checkpoint, written_by_symbol
from marketdata.storage.sqlite_jobs import SQLiteJobs
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

_SCORES_DIFFER = (
    "(s.quality IS NOT b.quality OR s.flags IS NOT b.flags OR s.validated IS NOT b.validated)"
)
_READ_COLUMNS = (
    "date, open, high, low, close, volume, vwap, transactions, quality, flags, validated,"
    " ingested_at"
)

# The bars as known at a moment: current rows written by then, and the versions of rows
# changed later that were current then (a revision row was current from ingested_at until
# revised_at).
_AS_OF_COLUMNS = (
    "symbol, date, open, high, low, close, volume, vwap, transactions, quality, flags, "
    "validated, ingested_at"
)
_AS_OF_SOURCE = (
    f"(SELECT {_AS_OF_COLUMNS} FROM bars WHERE symbol = ? AND ingested_at <= ? UNION ALL "
    f"SELECT {_AS_OF_COLUMNS} FROM bar_revisions WHERE symbol = ? AND ingested_at <= ? "
    "AND revised_at > ?) AS known"
)

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


def _iso_ts(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _rows(frame: pl.DataFrame) -> Iterator[tuple[Any, ...]]:
    """Rows in ``bars`` column order with SQLite-friendly types (ISO text dates).

    A generator, so ``executemany`` holds one row at a time rather than the whole chunk.
    """
    return frame.with_columns(
        pl.col("date").dt.to_string("%Y-%m-%d"),
        pl.col("validated").cast(pl.Int8),
        pl.col("ingested_at").dt.to_string("%Y-%m-%dT%H:%M:%S.%6f+00:00"),
    ).iter_rows(buffer_size=4096)


class SQLiteStore(SQLiteStatus, SQLiteJobs):
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
                (_iso_ts(at), source),
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
        stamp = _iso_ts(at)
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

    # -- scores and validation log --------------------------------------------------------

    @staticmethod
    def _stage_scores(db: sqlite3.Connection, frame: pl.DataFrame) -> None:
        db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _scores"
            " (symbol TEXT, date TEXT, quality REAL, flags INTEGER, validated INTEGER,"
            " PRIMARY KEY (symbol, date))"
        )
        db.execute("DELETE FROM _scores")
        db.executemany(
            "INSERT INTO _scores VALUES (?, ?, ?, ?, ?)",
            frame.select(
                "symbol",
                pl.col("date").dt.to_string("%Y-%m-%d"),
                "quality",
                "flags",
                pl.col("validated").cast(pl.Int8),
            ).iter_rows(buffer_size=4096),
        )

    @staticmethod
    def _apply_scores(db: sqlite3.Connection, at: dt.datetime) -> int:
        """Copy staged scores onto stored bars that differ; keep validated counts exact."""
        deltas = db.execute(
            f"""
            SELECT s.symbol, SUM(s.validated - b.validated), COUNT(*)
            FROM _scores s JOIN bars b ON b.symbol = s.symbol AND b.date = s.date
            WHERE {_SCORES_DIFFER} GROUP BY s.symbol
            """  # constants
        ).fetchall()
        if not deltas:
            return 0
        db.execute(
            """
            UPDATE bars SET quality = s.quality, flags = s.flags, validated = s.validated
            FROM _scores s WHERE bars.symbol = s.symbol AND bars.date = s.date
              AND (s.quality IS NOT bars.quality OR s.flags IS NOT bars.flags
                   OR s.validated IS NOT bars.validated)
            """
        )
        db.executemany(
            "UPDATE symbol_status SET validated_count = validated_count + ?, updated_at = ?"
            " WHERE symbol = ?",
            [(int(d[1] or 0), _iso_ts(at), d[0]) for d in deltas],
        )
        return sum(int(d[2]) for d in deltas)

    @staticmethod
    def _insert_log(db: sqlite3.Connection, log: pl.DataFrame, at: dt.datetime) -> None:
        db.executemany(
            "INSERT INTO validation_log (symbol, date, rule, severity, value, threshold,"
            " logged_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            log.select(
                "symbol",
                pl.col("date").dt.to_string("%Y-%m-%d"),
                "rule",
                "severity",
                "value",
                "threshold",
                pl.lit(_iso_ts(at)),
            ).iter_rows(buffer_size=4096),
        )

    def _replace_log(self, db: sqlite3.Connection, log: pl.DataFrame, at: dt.datetime) -> None:
        db.execute(
            "DELETE FROM validation_log WHERE (symbol, date) IN (SELECT symbol, date FROM _scores)"
        )
        self._insert_log(db, log, at)

    async def write_scores(
        self, scores: pl.DataFrame, *, log: pl.DataFrame, at: dt.datetime
    ) -> int:
        """Re-score stored bars and replace their log rows, in one transaction."""
        if scores.is_empty() and log.is_empty():
            return 0
        return await self._run(self._write_scores, prepare_scores(scores), prepare_log(log), at)

    def _write_scores(self, scores: pl.DataFrame, log: pl.DataFrame, at: dt.datetime) -> int:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            self._stage_scores(db, scores)
            changed = self._apply_scores(db, at)
            self._replace_log(
                db, log.join(scores.select("symbol", "date"), on=["symbol", "date"]), at
            )
            db.execute("DELETE FROM _scores")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return changed

    async def set_gap_counts(self, counts: pl.DataFrame) -> None:
        """Store per-symbol missing-session counts."""
        rows = list(counts.select("symbol", "gap_count").iter_rows())
        if rows:
            await self._run(
                self._write_many,
                "UPDATE symbol_status SET gap_count = ? WHERE symbol = ?",
                [(int(g), s) for s, g in rows],
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

    async def read_validation_log(
        self, symbol: str, *, start: dt.date | None = None, end: dt.date | None = None
    ) -> pl.DataFrame:
        """Logged rule hits of ``symbol`` in [start, end]."""
        sql = (
            "SELECT symbol, date, rule, severity, value, threshold FROM validation_log"
            " WHERE symbol = ? AND date >= ? AND date <= ? ORDER BY date, rule"
        )
        rows = await self._run(
            self._fetch,
            sql,
            [symbol, (start or dt.date.min).isoformat(), (end or dt.date.max).isoformat()],
        )
        return _frame(rows, LOG_SCHEMA)

    async def rule_counts(self, symbols: Sequence[str] | None = None) -> pl.DataFrame:
        """How often each rule fired per symbol."""
        sql = "SELECT symbol, rule, severity, COUNT(*) FROM validation_log"
        params: list[Any] = []
        if symbols is not None:
            if not symbols:
                return pl.DataFrame(schema=RULE_COUNT_SCHEMA)
            sql += f" WHERE symbol IN ({', '.join('?' * len(symbols))})"
            params = list(symbols)
        rows = await self._run(
            self._fetch, sql + " GROUP BY symbol, rule, severity ORDER BY symbol, rule", params
        )
        return pl.DataFrame(rows, schema=RULE_COUNT_SCHEMA, orient="row")

    # -- corporate actions -----------------------------------------------------------------

    async def upsert_splits(self, frame: pl.DataFrame, *, source: str, at: dt.datetime) -> int:
        """Store splits; rows new or changed."""
        prepared = prepare_splits(frame, source=source)
        if prepared.is_empty():
            return 0
        sql = (
            "INSERT INTO splits (symbol, execution_date, split_from, split_to, source,"
            " ingested_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (symbol, execution_date)"
            " DO UPDATE SET split_from = excluded.split_from, split_to = excluded.split_to,"
            " source = excluded.source, ingested_at = excluded.ingested_at"
            " WHERE splits.split_from IS NOT excluded.split_from"
            " OR splits.split_to IS NOT excluded.split_to"
        )
        rows = [
            (s, d.isoformat(), f, t, src, _iso_ts(at))
            for s, d, f, t, src in prepared.select(
                "symbol", "execution_date", "split_from", "split_to", "source"
            ).iter_rows()
        ]
        return await self._run(self._write_many, sql, rows)

    async def upsert_dividends(self, frame: pl.DataFrame, *, source: str, at: dt.datetime) -> int:
        """Store dividends; rows new or changed."""
        prepared = prepare_dividends(frame, source=source)
        if prepared.is_empty():
            return 0
        columns = list(STORED_DIVIDEND_SCHEMA)
        changed = " OR ".join(
            f"dividends.{c} IS NOT excluded.{c}"
            for c in ("cash_amount", "declaration_date", "record_date", "pay_date", "frequency")
        )
        sql = (
            f"INSERT INTO dividends ({', '.join(columns)}, ingested_at)"
            f" VALUES ({', '.join('?' * (len(columns) + 1))})"
            " ON CONFLICT (symbol, ex_dividend_date, dividend_type) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in (*columns[2:], "ingested_at"))
            + f" WHERE {changed}"
        )
        dates = ("ex_dividend_date", "declaration_date", "record_date", "pay_date")
        rows = [
            (*row, _iso_ts(at))
            for row in prepared.select(
                *(pl.col(c).dt.to_string("%Y-%m-%d") if c in dates else pl.col(c) for c in columns)
            ).iter_rows()
        ]
        return await self._run(self._write_many, sql, rows)

    async def read_splits(self, symbols: Sequence[str] | None = None) -> pl.DataFrame:
        """Stored splits, by symbol and date."""
        return await self._read_actions("splits", STORED_SPLIT_SCHEMA, "execution_date", symbols)

    async def read_dividends(self, symbols: Sequence[str] | None = None) -> pl.DataFrame:
        """Stored dividends, by symbol and date."""
        return await self._read_actions(
            "dividends", STORED_DIVIDEND_SCHEMA, "ex_dividend_date", symbols
        )

    async def _read_actions(
        self,
        table: str,
        schema: dict[str, pl.DataType],
        date_column: str,
        symbols: Sequence[str] | None,
    ) -> pl.DataFrame:
        sql = f"SELECT {', '.join(schema)} FROM {table}"  # constants
        params: list[Any] = []
        if symbols is not None:
            if not symbols:
                return pl.DataFrame(schema=schema)
            sql += f" WHERE symbol IN ({', '.join('?' * len(symbols))})"
            params = list(symbols)
        rows = await self._run(self._fetch, f"{sql} ORDER BY symbol, {date_column}", params)
        return _frame(rows, schema)

    # -- reads ----------------------------------------------------------------------------

    async def read_marks(
        self, symbols: Sequence[str], *, start: dt.date, end: dt.date
    ) -> pl.DataFrame:
        """Stored dates and validation marks of ``symbols`` in [start, end]."""
        rows = await self._run(
            self._fetch,
            "SELECT symbol, date, validated FROM bars"
            " WHERE symbol IN (SELECT value FROM json_each(?)) AND date BETWEEN ? AND ?"
            " ORDER BY symbol, date",
            [json.dumps(list(symbols)), start.isoformat(), end.isoformat()],
        )
        return _frame(rows, MARK_SCHEMA)

    async def read_neighbourhood(self, spans: pl.DataFrame, *, rows: int) -> pl.DataFrame:
        """Stored bars in and around each span."""
        if spans.is_empty():
            return pl.DataFrame(schema=NEIGHBOUR_SCHEMA)
        found = await self._run(self._neighbourhood, spans, rows)
        return _frame(found, NEIGHBOUR_SCHEMA)

    def _neighbourhood(self, spans: pl.DataFrame, rows: int) -> list[tuple[Any, ...]]:
        db = self._db
        sql = (
            f"SELECT * FROM (SELECT symbol, {_READ_COLUMNS} FROM bars WHERE symbol = ?"
            " AND date < ? ORDER BY date DESC LIMIT ?)"
            f" UNION ALL SELECT symbol, {_READ_COLUMNS} FROM bars WHERE symbol = ?"
            " AND date BETWEEN ? AND ?"
            f" UNION ALL SELECT * FROM (SELECT symbol, {_READ_COLUMNS} FROM bars"
            " WHERE symbol = ? AND date > ? ORDER BY date LIMIT ?)"
        )  # constants
        found: list[tuple[Any, ...]] = []
        db.execute("BEGIN")  # one snapshot for every symbol
        try:
            for symbol, lo, hi in spans.select("symbol", "lo", "hi").iter_rows():
                a, b = lo.isoformat(), hi.isoformat()
                found.extend(
                    db.execute(sql, (symbol, a, rows, symbol, a, b, symbol, b, rows)).fetchall()
                )
        finally:
            db.execute("COMMIT")
        found.sort(key=lambda r: (r[0], r[1]))
        return found

    async def read_bars(
        self,
        symbol: str,
        *,
        start: dt.date | None = None,
        end: dt.date | None = None,
        validated_only: bool = False,
        min_quality: float | None = None,
        as_of: dt.datetime | None = None,
    ) -> pl.DataFrame:
        """Bars of ``symbol`` in [start, end], oldest first (as known at ``as_of``)."""
        source, params = "bars", list[Any]()
        if as_of is not None:
            stamp = _iso_ts(as_of)
            source = _AS_OF_SOURCE
            params = [symbol, stamp, symbol, stamp, stamp]
        sql = [f"SELECT {_READ_COLUMNS} FROM {source} WHERE symbol = ?"]
        params.append(symbol)
        if start is not None:
            sql.append("AND date >= ?")
            params.append(start.isoformat())
        if end is not None:
            sql.append("AND date <= ?")
            params.append(end.isoformat())
        if validated_only:
            sql.append("AND validated")
        if min_quality is not None:
            sql.append("AND quality >= ?")
            params.append(min_quality)
        sql.append("ORDER BY date")
        rows = await self._run(self._fetch, " ".join(sql), params)
        return _frame(rows, READ_SCHEMA)

    async def read_revisions(self, symbol: str) -> pl.DataFrame:
        """Earlier versions of ``symbol``'s bars, oldest revision first."""
        rows = await self._run(
            self._fetch,
            "SELECT date, open, high, low, close, volume, vwap, transactions, source, quality,"
            " flags, validated, ingested_at, revised_at, revised_by FROM bar_revisions"
            " WHERE symbol = ? ORDER BY revised_at, date",
            [symbol],
        )
        return _frame(rows, REVISION_SCHEMA)

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


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _ts(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


#: How :func:`~marketdata.storage.sqlite_leases.iso_ts` writes timestamps, for polars.
_STORED_TS = "%Y-%m-%dT%H:%M:%S%.f%:z"


def _frame(rows: list[tuple[Any, ...]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Driver rows → a typed frame, built column by column (dates and timestamps arrive as
    ISO text, booleans as integers)."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    return pl.DataFrame(
        [
            _column(name, dtype, values)
            for (name, dtype), values in zip(schema.items(), columns, strict=True)
        ]
    )


def _column(name: str, dtype: pl.DataType, values: Sequence[Any]) -> pl.Series:
    if isinstance(dtype, pl.Date):
        return pl.Series(name, values, pl.String()).str.to_date("%Y-%m-%d")
    if isinstance(dtype, pl.Datetime):
        text = pl.Series(name, values, pl.String())
        try:  # the layout this store writes (iso_ts), parsed without guessing
            return text.str.to_datetime(_STORED_TS, time_unit="us", time_zone="UTC")
        except pl.exceptions.PolarsError:  # written some other way: let polars infer it
            return text.str.to_datetime(time_unit="us", time_zone="UTC")
    if isinstance(dtype, pl.Boolean):
        return pl.Series(name, values, pl.Int8()).cast(pl.Boolean())
    return pl.Series(name, values, dtype)
