"""PostgreSQL backend: psycopg 3 (async) with a small connection pool.

Writes stream the chunk as binary COPY (Arrow → PostgreSQL wire format via pgpq). A chunk that
cannot touch stored bars (its dates lie outside each symbol's stored span) is copied straight
into ``bars``; any other chunk is copied into a temporary staging table and merged by one
``INSERT … ON CONFLICT`` statement that writes only changed rows and keeps their old values in
``bar_revisions``. Reads come back as binary COPY decoded by numpy: no per-row Python objects.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pgpq
import polars as pl
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from marketdata.bars import VALUE_COLUMNS
from marketdata.errors import DatabaseUnreachable, StorageError
from marketdata.storage.base import (
    READ_SCHEMA,
    REVISION_SCHEMA,
    SymbolStatus,
    UpsertCounts,
    disjoint_from_stored,
    prepare_write,
    status_deltas,
)
from marketdata.storage.urls import DatabaseUrl

log = logging.getLogger(__name__)

#: Every writer takes this transaction-level advisory lock: one writer at a time keeps the
#: stored-span check, revisions and status counters exact.
_WRITE_LOCK = 0x6D6B7464  # "mktd"

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
SELECT COALESCE(SUM(inserted), 0), COALESCE(SUM(updated), 0) FROM d
"""  # constants only; values are bound parameters

# Reads: every column fixed-width (null flags travel as booleans) so the binary COPY stream
# is one numpy structured array.
_READ_COLUMNS = (
    "date, open, high, low, close, volume, vwap IS NULL, COALESCE(vwap, 0), "
    "transactions IS NULL, COALESCE(transactions, 0), quality IS NULL, COALESCE(quality, 0), "
    "flags, validated, ingested_at"
)
_READ_DTYPE = np.dtype(
    [
        ("ncols", ">i2"),
        *[
            item
            for name, kind in [
                ("date", ">i4"),
                ("open", ">f8"),
                ("high", ">f8"),
                ("low", ">f8"),
                ("close", ">f8"),
                ("volume", ">f8"),
                ("vwap_null", "?"),
                ("vwap", ">f8"),
                ("tx_null", "?"),
                ("transactions", ">i8"),
                ("q_null", "?"),
                ("quality", ">f8"),
                ("flags", ">i8"),
                ("validated", "?"),
                ("ingested_at", ">i8"),
            ]
            for item in ((f"{name}_len", ">i4"), (name, kind))
        ],
    ]
)
_PG_EPOCH_DAYS = 10_957  # 2000-01-01 minus 1970-01-01
_PG_EPOCH_US = _PG_EPOCH_DAYS * 86_400 * 1_000_000
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def _decode_copy(data: bytes) -> np.ndarray:
    """Rows of a binary COPY stream whose columns are all fixed-width."""
    if not data.startswith(_COPY_SIGNATURE):
        msg = "unexpected COPY stream from PostgreSQL"
        raise StorageError(msg)
    ext = int.from_bytes(data[15:19], "big")
    body = data[19 + ext : -2]  # header, then rows, then the int16 -1 trailer
    return np.frombuffer(body, dtype=_READ_DTYPE)


class PostgresStore:
    """A :class:`~marketdata.storage.base.Store` in a PostgreSQL database."""

    backend = "postgresql"

    def __init__(self, db: DatabaseUrl, pool: AsyncConnectionPool) -> None:
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
            msg = f"cannot connect to {db.display}: {_first_line(exc)}"
            raise DatabaseUnreachable(msg) from None
        except Exception as exc:  # the pool reports a failed first connection as a timeout
            await pool.close()
            msg = f"cannot connect to {db.display}: {_first_line(exc)}"
            raise DatabaseUnreachable(msg) from None
        log.debug("opened %s", db.display, extra={"event": "store_opened"})
        return cls(db, pool)

    # -- writes ---------------------------------------------------------------------------

    async def upsert_bars(
        self, frame: pl.DataFrame, *, source: str, at: dt.datetime
    ) -> UpsertCounts:
        """Write ``frame`` in one transaction; see :class:`~marketdata.storage.base.Store`."""
        if frame.is_empty():
            return UpsertCounts()
        prepared = prepare_write(frame, source=source, at=at)
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                stored = await self._spans(conn, prepared["symbol"].unique().to_list())
                if disjoint_from_stored(prepared, stored):
                    await self._copy(conn, "bars", prepared)
                    await self._apply_status(conn, status_deltas(prepared), at, source)
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
                row = await cur.fetchone()
        except psycopg.Error as exc:
            raise StorageError(f"{self.description}: {_first_line(exc)}") from exc
        inserted, updated = (int(row[0]), int(row[1])) if row else (0, 0)
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
    async def _copy(conn: psycopg.AsyncConnection[Any], table: str, frame: pl.DataFrame) -> None:
        arrow = frame.to_arrow()
        encoder = pgpq.ArrowToPostgresBinaryEncoder(arrow.schema)
        async with conn.cursor().copy(
            f"COPY {table} ({_BAR_COLUMNS}) FROM STDIN (FORMAT BINARY)"  # table is a constant
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

    # -- reads ----------------------------------------------------------------------------

    async def read_bars(
        self,
        symbol: str,
        *,
        start: dt.date | None = None,
        end: dt.date | None = None,
        validated_only: bool = False,
        min_quality: float | None = None,
    ) -> pl.DataFrame:
        """Bars of ``symbol`` in [start, end], oldest first, via binary COPY."""
        where = ["symbol = %(symbol)s"]
        params: dict[str, Any] = {"symbol": symbol}
        if start is not None:
            where.append("date >= %(start)s")
            params["start"] = start
        if end is not None:
            where.append("date <= %(end)s")
            params["end"] = end
        if validated_only:
            where.append("validated")
        if min_quality is not None:
            where.append("quality >= %(min_quality)s")
            params["min_quality"] = min_quality
        sql = (
            f"COPY (SELECT {_READ_COLUMNS} FROM bars WHERE {' AND '.join(where)} "
            "ORDER BY date) TO STDOUT (FORMAT BINARY)"
        )
        chunks: list[bytes] = []
        try:
            async with self._pool.connection() as conn, conn.cursor().copy(sql, params) as copy:
                async for data in copy:
                    chunks.append(bytes(data))
        except psycopg.Error as exc:
            raise StorageError(f"{self.description}: {_first_line(exc)}") from exc
        rows = _decode_copy(b"".join(chunks))
        return _read_frame(rows)

    async def read_revisions(self, symbol: str) -> pl.DataFrame:
        """Earlier versions of ``symbol``'s bars, oldest revision first."""
        rows = await self._fetch(
            "SELECT date, open, high, low, close, volume, vwap, transactions, source, quality,"
            " flags, validated, ingested_at, revised_at, revised_by FROM bar_revisions"
            " WHERE symbol = %(symbol)s ORDER BY revised_at, date",
            {"symbol": symbol},
        )
        return pl.DataFrame(rows, schema=REVISION_SCHEMA, orient="row")

    async def symbol_statuses(self, symbols: Sequence[str] | None = None) -> list[SymbolStatus]:
        """Per-symbol summaries, ordered by symbol."""
        sql = (
            "SELECT symbol, first_date, last_date, bar_count, validated_count, gap_count,"
            " last_fetch, last_error, updated_at, source FROM symbol_status"
        )
        params: dict[str, Any] = {}
        if symbols is not None:
            sql += " WHERE symbol = ANY(%(symbols)s)"
            params["symbols"] = list(symbols)
        rows = await self._fetch(sql + " ORDER BY symbol", params)
        return [
            SymbolStatus(
                symbol=r[0],
                first_date=r[1],
                last_date=r[2],
                bar_count=int(r[3]),
                validated_count=int(r[4]),
                gap_count=int(r[5]),
                last_fetch=r[6],
                last_error=r[7],
                updated_at=r[8],
                source=r[9],
            )
            for r in rows
        ]

    async def _fetch(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(sql, params)
                return await cur.fetchall()
        except (psycopg.OperationalError, PoolClosed, PoolTimeout) as exc:
            raise DatabaseUnreachable(f"{self.description}: {_first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise StorageError(f"{self.description}: {_first_line(exc)}") from exc

    async def purge_symbol(self, symbol: str) -> int:
        """Delete everything stored for ``symbol`` in one transaction."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                cur = await conn.execute("DELETE FROM bars WHERE symbol = %s", (symbol,))
                removed = cur.rowcount
                for table in ("bar_revisions", "validation_log", "symbol_status"):
                    await conn.execute(
                        f"DELETE FROM {table} WHERE symbol = %s",  # constant names
                        (symbol,),
                    )
        except psycopg.Error as exc:
            raise StorageError(f"{self.description}: {_first_line(exc)}") from exc
        return int(removed)

    async def has_source(self, source: str) -> bool:
        """Whether any symbol's latest write came from ``source``."""
        rows = await self._fetch(
            "SELECT 1 FROM symbol_status WHERE source = %(source)s LIMIT 1", {"source": source}
        )
        return bool(rows)

    async def ping(self) -> None:
        """Run a trivial query."""
        await self._fetch("SELECT 1", {})

    async def aclose(self) -> None:
        """Close the pool."""
        await self._pool.close()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _read_frame(rows: np.ndarray) -> pl.DataFrame:
    def nullable(values: np.ndarray, null: np.ndarray, dtype: pl.DataType) -> pl.Series:
        series = pl.Series(values.astype(values.dtype.newbyteorder("=")), dtype=dtype)
        return series.scatter(np.flatnonzero(null), None) if null.any() else series

    native = {
        name: rows[name].astype(rows[name].dtype.newbyteorder("="))
        for name in ("date", "open", "high", "low", "close", "volume", "flags", "ingested_at")
    }
    return pl.DataFrame(
        {
            "date": pl.Series(native["date"] + _PG_EPOCH_DAYS, dtype=pl.Int32).cast(pl.Date),
            "open": native["open"],
            "high": native["high"],
            "low": native["low"],
            "close": native["close"],
            "volume": native["volume"],
            "vwap": nullable(rows["vwap"], rows["vwap_null"], pl.Float64()),
            "transactions": nullable(rows["transactions"], rows["tx_null"], pl.Int64()),
            "quality": nullable(rows["quality"], rows["q_null"], pl.Float64()),
            "flags": native["flags"],
            "validated": rows["validated"].astype(bool),
            "ingested_at": pl.Series(native["ingested_at"] + _PG_EPOCH_US).cast(
                pl.Datetime("us", "UTC")
            ),
        },
        schema=READ_SCHEMA,
    )
