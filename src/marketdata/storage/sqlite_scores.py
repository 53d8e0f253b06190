"""SQLite side of validation results: scores on stored bars, the validation log, gap counts.

:class:`SQLiteScores` is a mixin of :class:`~marketdata.storage.sqlite.SQLiteStore` (its
statements run on the store's worker thread). Scores are staged in a temporary ``_scores``
table and copied onto stored bars whose scores differ, keeping ``symbol_status`` validated
counts exact. The staging and log helpers also run inside the bar write's own transaction
(:meth:`~marketdata.storage.sqlite.SQLiteStore.upsert_bars`) when a chunk carries scores or
a log.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import polars as pl

from marketdata.bars import LOG_SCHEMA
from marketdata.storage.prepare import prepare_log, prepare_scores
from marketdata.storage.records import RULE_COUNT_SCHEMA
from marketdata.storage.sqlite_leases import iso_ts
from marketdata.storage.sqlite_reads import typed_frame

T = TypeVar("T")

_SCORES_DIFFER = (
    "(s.quality IS NOT b.quality OR s.flags IS NOT b.flags OR s.validated IS NOT b.validated)"
)


class SQLiteScores:
    """Scores, the validation log and gap counts; a mixin of
    :class:`~marketdata.storage.sqlite.SQLiteStore`."""

    if TYPE_CHECKING:  # provided by SQLiteStore

        @property
        def _db(self) -> sqlite3.Connection: ...

        async def _run(self, fn: Callable[..., T], *args: Any) -> T: ...

        def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...

        def _write_many(self, sql: str, rows: list[tuple[Any, ...]]) -> int: ...

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
            [(int(d[1] or 0), iso_ts(at), d[0]) for d in deltas],
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
                pl.lit(iso_ts(at)),
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
        return typed_frame(rows, LOG_SCHEMA)

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
