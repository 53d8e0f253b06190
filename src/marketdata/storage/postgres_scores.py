"""PostgreSQL side of validation results: scores on stored bars, the validation log, gap counts.

:class:`PostgresScores` is a mixin of :class:`~marketdata.storage.postgres.PostgresStore`.
Scores are copied (binary COPY) into a temporary table and applied by one statement,
:data:`APPLY_SCORES`, which the bar write also runs on its own staging table when a chunk
carries scores; log rows are replaced the same way, in the writer's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl
import psycopg
from psycopg_pool import AsyncConnectionPool

from marketdata.bars import LOG_SCHEMA, SCORE_SCHEMA
from marketdata.errors import StorageError
from marketdata.storage.postgres_jobs import WRITE_LOCK as _WRITE_LOCK
from marketdata.storage.postgres_locks import first_line
from marketdata.storage.prepare import prepare_log, prepare_scores
from marketdata.storage.records import RULE_COUNT_SCHEMA

# Copies staged scores (from _stage or _scores) onto stored bars whose scores differ, and
# keeps validated counts exact; returns the number of bars changed.
APPLY_SCORES = """
WITH old AS (
  SELECT b.symbol, b.date, b.validated AS was
  FROM bars b JOIN {table} s USING (symbol, date)
  WHERE (b.quality, b.flags, b.validated) IS DISTINCT FROM (s.quality, s.flags, s.validated)
),
u AS (
  UPDATE bars b SET quality = s.quality, flags = s.flags, validated = s.validated
  FROM {table} s JOIN old o USING (symbol, date)
  WHERE b.symbol = s.symbol AND b.date = s.date
  RETURNING b.symbol, s.validated::int - o.was::int AS dv
),
d AS (SELECT symbol, SUM(dv) AS dv, COUNT(*) AS n FROM u GROUP BY symbol),
st AS (
  UPDATE symbol_status st SET validated_count = st.validated_count + d.dv, updated_at = %(at)s
  FROM d WHERE st.symbol = d.symbol
)
SELECT COALESCE(SUM(n), 0) FROM d
"""

_LOG_COLUMNS = "symbol, date, rule, severity, value, threshold, logged_at"


class PostgresScores:
    """Scores, the validation log and gap counts; a mixin of
    :class:`~marketdata.storage.postgres.PostgresStore`."""

    if TYPE_CHECKING:  # provided by PostgresStore
        _pool: AsyncConnectionPool

        @property
        def description(self) -> str: ...

        async def _fetch(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]: ...

        async def _execute(self, sql: str, params: dict[str, Any]) -> int: ...

        @staticmethod
        async def _copy(
            conn: psycopg.AsyncConnection[Any],
            table: str,
            frame: pl.DataFrame,
            columns: str = ...,
        ) -> None: ...

    # -- scores and validation log --------------------------------------------------------

    async def _copy_log(
        self, conn: psycopg.AsyncConnection[Any], log: pl.DataFrame, at: dt.datetime
    ) -> None:
        if log.is_empty():
            return
        stamped = log.with_columns(
            pl.lit(at.astimezone(dt.UTC)).cast(pl.Datetime("us", "UTC")).alias("logged_at")
        )
        await self._copy(conn, "validation_log", stamped, _LOG_COLUMNS)

    async def _replace_log(
        self,
        conn: psycopg.AsyncConnection[Any],
        keys: str,
        log: pl.DataFrame,
        at: dt.datetime,
    ) -> None:
        await conn.execute(
            f"DELETE FROM validation_log v USING {keys} k"  # constant table name
            " WHERE v.symbol = k.symbol AND v.date = k.date"
        )
        await self._copy_log(conn, log, at)

    async def write_scores(
        self, scores: pl.DataFrame, *, log: pl.DataFrame, at: dt.datetime
    ) -> int:
        """Re-score stored bars and replace their log rows, in one transaction."""
        if scores.is_empty() and log.is_empty():
            return 0
        scores = prepare_scores(scores)
        log = prepare_log(log).join(scores.select("symbol", "date"), on=["symbol", "date"])
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                await conn.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS _scores (symbol text, date date,"
                    " quality float8, flags int8, validated bool) ON COMMIT DELETE ROWS"
                )
                await self._copy(conn, "_scores", scores, ", ".join(SCORE_SCHEMA))
                await conn.execute("ANALYZE _scores")
                cur = await conn.execute(APPLY_SCORES.format(table="_scores"), {"at": at})
                row = await cur.fetchone()
                await self._replace_log(conn, "_scores", log, at)
        except psycopg.Error as exc:
            raise StorageError(f"{self.description}: {first_line(exc)}") from exc
        return int(row[0]) if row else 0

    async def set_gap_counts(self, counts: pl.DataFrame) -> None:
        """Store per-symbol missing-session counts."""
        if counts.is_empty():
            return
        await self._execute(
            "UPDATE symbol_status st SET gap_count = c.gap_count"
            " FROM unnest(%(symbol)s::text[], %(gap)s::bigint[]) AS c(symbol, gap_count)"
            " WHERE st.symbol = c.symbol",
            {"symbol": counts["symbol"].to_list(), "gap": counts["gap_count"].to_list()},
        )

    async def read_validation_log(
        self, symbol: str, *, start: dt.date | None = None, end: dt.date | None = None
    ) -> pl.DataFrame:
        """Logged rule hits of ``symbol`` in [start, end]."""
        rows = await self._fetch(
            "SELECT symbol, date, rule, severity, value, threshold FROM validation_log"
            " WHERE symbol = %(symbol)s AND date BETWEEN %(start)s AND %(end)s"
            " ORDER BY date, rule",
            {"symbol": symbol, "start": start or dt.date.min, "end": end or dt.date.max},
        )
        return pl.DataFrame(rows, schema=LOG_SCHEMA, orient="row")

    async def rule_counts(self, symbols: Sequence[str] | None = None) -> pl.DataFrame:
        """How often each rule fired per symbol."""
        sql = "SELECT symbol, rule, severity, COUNT(*) FROM validation_log"
        params: dict[str, Any] = {}
        if symbols is not None:
            sql += " WHERE symbol = ANY(%(symbols)s)"
            params["symbols"] = list(symbols)
        rows = await self._fetch(
            sql + " GROUP BY symbol, rule, severity ORDER BY symbol, rule", params
        )
        return pl.DataFrame(rows, schema=RULE_COUNT_SCHEMA, orient="row")
