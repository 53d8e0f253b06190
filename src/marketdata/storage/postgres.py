"""PostgreSQL backend: psycopg 3 (async) with a small connection pool.

Writes stream the chunk as binary COPY (Arrow → PostgreSQL wire format via pgpq). A chunk that
cannot touch stored bars (its dates lie outside each symbol's stored span) is copied straight
into ``bars``; any other chunk is copied into a temporary staging table and merged by one
``INSERT … ON CONFLICT`` statement that writes only changed rows and keeps their old values in
``bar_revisions``.

This module holds the pool, the bar writes and the helpers that run a statement and translate
driver errors. The rest of :class:`PostgresStore` comes from one mixin per concern: reads
(:mod:`~marketdata.storage.postgres_reads`), scores and the validation log
(:mod:`~marketdata.storage.postgres_scores`), corporate actions
(:mod:`~marketdata.storage.postgres_actions`), the status table
(:mod:`~marketdata.storage.postgres_status`), the backfill engine's tables
(:mod:`~marketdata.storage.postgres_jobs`) and advisory locks
(:mod:`~marketdata.storage.postgres_locks`).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pgpq
import polars as pl
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from marketdata.bars import VALUE_COLUMNS
from marketdata.errors import DatabaseUnreachable, StorageError
from marketdata.storage.jobs import Checkpoint, written_by_symbol
from marketdata.storage.postgres_actions import PostgresActions
from marketdata.storage.postgres_locks import WRITE_LOCK as _WRITE_LOCK
from marketdata.storage.postgres_locks import first_line
from marketdata.storage.postgres_reads import PostgresReads
from marketdata.storage.postgres_scores import APPLY_SCORES, PostgresScores
from marketdata.storage.postgres_status import PostgresStatus
from marketdata.storage.prepare import (
    disjoint_from_stored,
    has_scores,
    prepare_log,
    prepare_write,
    status_deltas,
)
from marketdata.storage.records import UpsertCounts
from marketdata.storage.urls import DatabaseUrl

log = logging.getLogger(__name__)

_BAR_COLUMNS = (
    "symbol, date, open, high, low, close, volume, vwap, transactions, "
    "source, quality, flags, validated, ingested_at"
)
_DIFFERS = (
    f"({', '.join(f's.{c}' for c in VALUE_COLUMNS)}) IS DISTINCT FROM "
    f"({', '.join(f'o.{c}' for c in VALUE_COLUMNS)})"
)
_UPDATE_SET = ", ".join(
    f"{c} = EXCLUDED.{c}"
    for c in (*VALUE_COLUMNS, "source", "quality", "flags", "validated", "ingested_at")
)

_STATUS_UPSERT = """
INSERT INTO symbol_status AS st (symbol, first_date, last_date, bar_count, validated_count,
                                 gap_count, updated_at, source)
SELECT d.symbol, d.first_date, d.last_date, d.inserted, d.validated, 0, %(at)s, %(source)s
FROM {rows}
ON CONFLICT (symbol) DO UPDATE SET
  first_date = LEAST(st.first_date, EXCLUDED.first_date),
  last_date = GREATEST(st.last_date, EXCLUDED.last_date),
  bar_count = st.bar_count + EXCLUDED.bar_count,
  validated_count = st.validated_count + EXCLUDED.validated_count,
  updated_at = EXCLUDED.updated_at,
  source = EXCLUDED.source
"""

_MERGE = f"""
WITH s AS (SELECT * FROM _stage),
o AS (
  SELECT b.* FROM bars b JOIN s USING (symbol, date)
  WHERE b.symbol = ANY(%(symbols)s) AND b.date BETWEEN %(lo)s AND %(hi)s
),
chg AS (
  SELECT s.*, o.validated AS old_validated, o.symbol IS NULL AS is_new
  FROM s LEFT JOIN o USING (symbol, date)
  WHERE o.symbol IS NULL OR {_DIFFERS}
),
rev AS (
  INSERT INTO bar_revisions ({_BAR_COLUMNS}, revised_at, revised_by)
  SELECT o.symbol, o.date, o.open, o.high, o.low, o.close, o.volume, o.vwap, o.transactions,
         o.source, o.quality, o.flags, o.validated, o.ingested_at, %(at)s, %(source)s
  FROM o JOIN chg c USING (symbol, date) WHERE NOT c.is_new
),
up AS (
  INSERT INTO bars ({_BAR_COLUMNS}) SELECT {_BAR_COLUMNS} FROM chg
  ON CONFLICT (symbol, date) DO UPDATE SET {_UPDATE_SET}
),
d AS (
  SELECT symbol,
         MIN(date) FILTER (WHERE is_new) AS first_date,
         MAX(date) FILTER (WHERE is_new) AS last_date,
         COUNT(*) FILTER (WHERE is_new) AS inserted,
         COUNT(*) FILTER (WHERE NOT is_new) AS updated,
         SUM(CASE WHEN is_new THEN validated::int
                  ELSE validated::int - old_validated::int END) AS validated
  FROM chg GROUP BY symbol
),
st AS ({_STATUS_UPSERT.format(rows="d AS d")})
SELECT symbol, inserted, updated FROM d
"""  # constants only; values are bound parameters


class PostgresStore(PostgresReads, PostgresScores, PostgresActions, PostgresStatus):
    """A :class:`~marketdata.storage.base.Store` in a PostgreSQL database."""

    backend = "postgresql"

    def __init__(self, db: DatabaseUrl, pool: AsyncConnectionPool) -> None:
        super().__init__()
        self._db = db
        self._pool = pool

    @property
    def description(self) -> str:
        """Where the data lives (no password)."""
        return self._db.display

    @classmethod
    async def open(cls, db: DatabaseUrl, *, max_size: int = 8) -> PostgresStore:
        """Connect; an unreachable server raises :class:`DatabaseUnreachable`."""
        pool = AsyncConnectionPool(
            db.conninfo, min_size=1, max_size=max_size, open=False, timeout=10
        )
        try:
            await pool.open(wait=True, timeout=10)
        except psycopg.OperationalError as exc:
            await pool.close()
            msg = f"cannot connect to {db.display}: {first_line(exc)}"
            raise DatabaseUnreachable(msg) from None
        except Exception as exc:  # the pool reports a failed first connection as a timeout
            await pool.close()
            msg = f"cannot connect to {db.display}: {first_line(exc)}"
            raise DatabaseUnreachable(msg) from None
        log.debug("opened %s", db.display, extra={"event": "store_opened"})
        return cls(db, pool)

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
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                stored = await self._spans(conn, prepared["symbol"].unique().to_list())
                if disjoint_from_stored(prepared, stored):
                    await self._copy(conn, "bars", prepared)
                    await self._apply_status(conn, status_deltas(prepared), at, source)
                    if log is not None:
                        await self._copy_log(conn, log, at)
                    if checkpoint is not None:
                        counts = written_by_symbol(prepared)
                        await self._apply_checkpoint(conn, checkpoint, at, counts)
                    return UpsertCounts(inserted=prepared.height)
                await conn.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS _stage "
                    "(LIKE bars INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
                await self._copy(conn, "_stage", prepared)
                # Give the planner the chunk's size, and room to hash and sort it in memory.
                await conn.execute("ANALYZE _stage")
                await conn.execute("SET LOCAL work_mem = '64MB'")
                cur = await conn.execute(
                    _MERGE,
                    {
                        "at": at,
                        "source": source,
                        "symbols": list(stored),
                        "lo": prepared["date"].min(),
                        "hi": prepared["date"].max(),
                    },
                )
                changed = {r[0]: (int(r[1]), int(r[2])) for r in await cur.fetchall()}
                if scored:
                    await conn.execute(APPLY_SCORES.format(table="_stage"), {"at": at})
                if log is not None:
                    await self._replace_log(conn, "_stage", log, at)
                if checkpoint is not None:
                    counts = written_by_symbol(prepared, changed)
                    await self._apply_checkpoint(conn, checkpoint, at, counts)
        except psycopg.Error as exc:
            raise StorageError(f"{self.description}: {first_line(exc)}") from exc
        inserted = sum(i for i, _ in changed.values())
        updated = sum(u for _, u in changed.values())
        return UpsertCounts(
            inserted=inserted, updated=updated, unchanged=prepared.height - inserted - updated
        )

    @staticmethod
    async def _spans(
        conn: psycopg.AsyncConnection[Any], symbols: list[str]
    ) -> dict[str, tuple[dt.date | None, dt.date | None]]:
        cur = await conn.execute(
            "SELECT symbol, first_date, last_date FROM symbol_status WHERE symbol = ANY(%s)",
            (symbols,),
        )
        return {r[0]: (r[1], r[2]) for r in await cur.fetchall()}

    @staticmethod
    async def _copy(
        conn: psycopg.AsyncConnection[Any],
        table: str,
        frame: pl.DataFrame,
        columns: str = _BAR_COLUMNS,
    ) -> None:
        arrow = frame.to_arrow()
        encoder = pgpq.ArrowToPostgresBinaryEncoder(arrow.schema)
        async with conn.cursor().copy(
            f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)"  # constants
        ) as copy:
            await copy.write(encoder.write_header())
            for batch in arrow.to_batches(max_chunksize=65_536):
                await copy.write(encoder.write_batch(batch))
            await copy.write(encoder.finish())

    @staticmethod
    async def _apply_status(
        conn: psycopg.AsyncConnection[Any], deltas: pl.DataFrame, at: dt.datetime, source: str
    ) -> None:
        await conn.execute(
            _STATUS_UPSERT.format(
                rows="unnest(%(symbol)s::text[], %(first_date)s::date[], "
                "%(last_date)s::date[], %(inserted)s::bigint[], %(validated)s::bigint[]) "
                "AS d(symbol, first_date, last_date, inserted, validated)"
            ),
            {**{c: deltas[c].to_list() for c in deltas.columns}, "at": at, "source": source},
        )

    async def _execute(self, sql: str, params: dict[str, Any]) -> int:
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                cur = await conn.execute(sql, params)
                return int(cur.rowcount)
        except (psycopg.OperationalError, PoolClosed, PoolTimeout) as exc:
            raise DatabaseUnreachable(f"{self.description}: {first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise StorageError(f"{self.description}: {first_line(exc)}") from exc

    async def _fetch(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(sql, params)
                return await cur.fetchall()
        except (psycopg.OperationalError, PoolClosed, PoolTimeout) as exc:
            raise DatabaseUnreachable(f"{self.description}: {first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise StorageError(f"{self.description}: {first_line(exc)}") from exc

    async def purge_symbol(self, symbol: str) -> int:
        """Delete everything stored for ``symbol`` in one transaction."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                cur = await conn.execute("DELETE FROM bars WHERE symbol = %s", (symbol,))
                removed = cur.rowcount
                cur = await conn.execute(
                    "SELECT updated_at FROM symbol_status WHERE symbol = %s AND watched",
                    (symbol,),
                )
                was = await cur.fetchone()
                for table in (
                    "bar_revisions",
                    "validation_log",
                    "symbol_status",
                    "splits",
                    "dividends",
                ):
                    await conn.execute(
                        f"DELETE FROM {table} WHERE symbol = %s",  # constant names
                        (symbol,),
                    )
                if was is not None:  # still watched: keep its empty row (see set_watched)
                    await conn.execute(
                        "INSERT INTO symbol_status (symbol, updated_at, watched)"
                        " VALUES (%s, %s, true)",
                        (symbol, was[0]),
                    )
        except psycopg.Error as exc:
            raise StorageError(f"{self.description}: {first_line(exc)}") from exc
        return int(removed)

    async def ping(self) -> None:
        """Run a trivial query."""
        await self._fetch("SELECT 1", {})

    async def aclose(self) -> None:
        """Release held locks, then close the pool."""
        try:
            await self._release_locks()
        finally:
            await self._pool.close()
