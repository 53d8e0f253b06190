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

from marketdata.bars import LOG_SCHEMA, SCORE_SCHEMA, VALUE_COLUMNS
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
from marketdata.storage.postgres_jobs import WRITE_LOCK as _WRITE_LOCK
from marketdata.storage.postgres_status import PostgresStatus
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

# Copies staged scores (from _stage or _scores) onto stored bars whose scores differ, and
# keeps validated counts exact; returns the number of bars changed.
_APPLY_SCORES = """
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

# Stored bars in and around each span, as binary COPY: the span's ordinal stands in for the
# symbol so every column stays fixed-width (see _READ_COLUMNS below).
_NEIGHBOURHOOD = """
COPY (
SELECT q.i, n.* FROM unnest(%(symbols)s::text[], %(lo)s::date[], %(hi)s::date[])
  WITH ORDINALITY AS q(symbol, lo, hi, i)
CROSS JOIN LATERAL (
  (SELECT {cols} FROM bars b WHERE b.symbol = q.symbol AND b.date < q.lo
   ORDER BY b.date DESC LIMIT %(rows)s)
  UNION ALL
  (SELECT {cols} FROM bars b WHERE b.symbol = q.symbol AND b.date BETWEEN q.lo AND q.hi)
  UNION ALL
  (SELECT {cols} FROM bars b WHERE b.symbol = q.symbol AND b.date > q.hi
   ORDER BY b.date LIMIT %(rows)s)
) AS n
ORDER BY q.i, n.date
) TO STDOUT (FORMAT BINARY)
"""

_LOG_COLUMNS = "symbol, date, rule, severity, value, threshold, logged_at"

# The bars as known at a moment: current rows written by then, and the versions of rows
# changed later that were current then (from ingested_at until revised_at).
_AS_OF_COLUMNS = (
    "symbol, date, open, high, low, close, volume, vwap, transactions, quality, flags, "
    "validated, ingested_at"
)
_AS_OF_SOURCE = (
    f"(SELECT {_AS_OF_COLUMNS} FROM bars WHERE symbol = %(symbol)s "
    "AND ingested_at <= %(as_of)s UNION ALL "
    f"SELECT {_AS_OF_COLUMNS} FROM bar_revisions WHERE symbol = %(symbol)s "
    "AND ingested_at <= %(as_of)s AND revised_at > %(as_of)s) AS known"
)

# Reads: every column fixed-width (null flags travel as booleans) so the binary COPY stream
# is one numpy structured array.
_READ_COLUMNS = (
    "date, open, high, low, close, volume, vwap IS NULL, COALESCE(vwap, 0), "
    "transactions IS NULL, COALESCE(transactions, 0), quality IS NULL, COALESCE(quality, 0), "
    "flags, validated, ingested_at"
)
_READ_FIELDS = [
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


def _copy_dtype(fields: list[tuple[str, str]]) -> np.dtype:
    """A binary COPY row of fixed-width ``fields``: a column count, then (length, value)s."""
    return np.dtype(
        [("ncols", ">i2"), *[i for n, k in fields for i in ((f"{n}_len", ">i4"), (n, k))]]
    )


_READ_DTYPE = _copy_dtype(_READ_FIELDS)

# One symbol's bars as ONE bytea: each row's fixed-width fields packed big-endian by the
# server's own *_send functions, rows in date order. One value instead of a row per message
# (an async COPY hands the client one message per row), decoded by numpy in one call.
_PACKED_ROW = (
    "date_send(date) || float8send(open) || float8send(high) || float8send(low)"
    " || float8send(close) || float8send(volume)"
    " || boolsend(vwap IS NULL) || float8send(COALESCE(vwap, 0))"
    " || boolsend(transactions IS NULL) || int8send(COALESCE(transactions, 0))"
    " || boolsend(quality IS NULL) || float8send(COALESCE(quality, 0))"
    " || int8send(flags) || boolsend(validated) || timestamptz_send(ingested_at)"
)  # the fields of _READ_FIELDS, in order
_PACKED_DTYPE = np.dtype(_READ_FIELDS)
_MARK_DTYPE = np.dtype([("date", ">i4"), ("validated", "?")])
_NEIGHBOUR_DTYPE = _copy_dtype([("i", ">i8"), *_READ_FIELDS])
_PG_EPOCH_DAYS = 10_957  # 2000-01-01 minus 1970-01-01
_PG_EPOCH_US = _PG_EPOCH_DAYS * 86_400 * 1_000_000
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def _decode_copy(data: bytes, dtype: np.dtype = _READ_DTYPE) -> np.ndarray:
    """Rows of a binary COPY stream whose columns are all fixed-width."""
    if not data.startswith(_COPY_SIGNATURE):
        msg = "unexpected COPY stream from PostgreSQL"
        raise StorageError(msg)
    ext = int.from_bytes(data[15:19], "big")
    body = data[19 + ext : -2]  # header, then rows, then the int16 -1 trailer
    return np.frombuffer(body, dtype=dtype)


class PostgresStore(PostgresStatus):
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
                    await conn.execute(_APPLY_SCORES.format(table="_stage"), {"at": at})
                if log is not None:
                    await self._replace_log(conn, "_stage", log, at)
                if checkpoint is not None:
                    counts = written_by_symbol(prepared, changed)
                    await self._apply_checkpoint(conn, checkpoint, at, counts)
        except psycopg.Error as exc:
            raise StorageError(f"{self.description}: {_first_line(exc)}") from exc
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
                cur = await conn.execute(_APPLY_SCORES.format(table="_scores"), {"at": at})
                row = await cur.fetchone()
                await self._replace_log(conn, "_scores", log, at)
        except psycopg.Error as exc:
            raise StorageError(f"{self.description}: {_first_line(exc)}") from exc
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

    async def _execute(self, sql: str, params: dict[str, Any]) -> int:
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                cur = await conn.execute(sql, params)
                return int(cur.rowcount)
        except (psycopg.OperationalError, PoolClosed, PoolTimeout) as exc:
            raise DatabaseUnreachable(f"{self.description}: {_first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise StorageError(f"{self.description}: {_first_line(exc)}") from exc

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

    # -- corporate actions -----------------------------------------------------------------

    async def upsert_splits(self, frame: pl.DataFrame, *, source: str, at: dt.datetime) -> int:
        """Store splits; rows new or changed."""
        prepared = prepare_splits(frame, source=source)
        if prepared.is_empty():
            return 0
        return await self._execute(
            "INSERT INTO splits AS t (symbol, execution_date, split_from, split_to, source,"
            " ingested_at) SELECT *, %(at)s FROM unnest(%(symbol)s::text[], %(execution_date)s"
            "::date[], %(split_from)s::float8[], %(split_to)s::float8[], %(source)s::text[])"
            " ON CONFLICT (symbol, execution_date) DO UPDATE SET"
            " split_from = EXCLUDED.split_from, split_to = EXCLUDED.split_to,"
            " source = EXCLUDED.source, ingested_at = EXCLUDED.ingested_at"
            " WHERE (t.split_from, t.split_to) IS DISTINCT FROM"
            " (EXCLUDED.split_from, EXCLUDED.split_to)",
            {**{c: prepared[c].to_list() for c in prepared.columns}, "at": at},
        )

    async def upsert_dividends(self, frame: pl.DataFrame, *, source: str, at: dt.datetime) -> int:
        """Store dividends; rows new or changed."""
        prepared = prepare_dividends(frame, source=source)
        if prepared.is_empty():
            return 0
        types = {
            "symbol": "text",
            "ex_dividend_date": "date",
            "cash_amount": "float8",
            "declaration_date": "date",
            "record_date": "date",
            "pay_date": "date",
            "frequency": "int8",
            "dividend_type": "text",
            "source": "text",
        }
        columns = list(STORED_DIVIDEND_SCHEMA)
        changed = ("cash_amount", "declaration_date", "record_date", "pay_date", "frequency")
        sql = (
            f"INSERT INTO dividends AS t ({', '.join(columns)}, ingested_at)"
            f" SELECT *, %(at)s FROM unnest("
            + ", ".join(f"%({c})s::{types[c]}[]" for c in columns)
            + ") ON CONFLICT (symbol, ex_dividend_date, dividend_type) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in (*changed, "source", "ingested_at"))
            + f" WHERE ({', '.join(f't.{c}' for c in changed)}) IS DISTINCT FROM"
            f" ({', '.join(f'EXCLUDED.{c}' for c in changed)})"
        )  # constants
        return await self._execute(sql, {**{c: prepared[c].to_list() for c in columns}, "at": at})

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
        params: dict[str, Any] = {}
        if symbols is not None:
            sql += " WHERE symbol = ANY(%(symbols)s)"
            params["symbols"] = list(symbols)
        rows = await self._fetch(f"{sql} ORDER BY symbol, {date_column}", params)
        return pl.DataFrame(rows, schema=schema, orient="row")

    # -- reads ----------------------------------------------------------------------------

    async def read_marks(
        self, symbols: Sequence[str], *, start: dt.date, end: dt.date
    ) -> pl.DataFrame:
        """Stored dates and validation marks of ``symbols`` in [start, end]: one packed value
        per symbol (as :meth:`read_bars`)."""
        rows = await self._fetch_binary(
            "SELECT symbol, string_agg(date_send(date) || boolsend(validated), ''::bytea"
            " ORDER BY date) FROM bars"
            " WHERE symbol = ANY(%(symbols)s) AND date BETWEEN %(start)s AND %(end)s"
            " GROUP BY symbol ORDER BY symbol",
            {"symbols": list(symbols), "start": start, "end": end},
        )
        parts = []
        for symbol, packed in rows:
            marks = np.frombuffer(packed, dtype=_MARK_DTYPE)
            days = marks["date"].astype(np.int32) + _PG_EPOCH_DAYS
            parts.append(
                pl.DataFrame(
                    {
                        "symbol": pl.repeat(symbol, len(marks), dtype=pl.String(), eager=True),
                        "date": pl.Series(days, dtype=pl.Int32()).cast(pl.Date()),
                        "validated": marks["validated"].astype(bool),
                    }
                )
            )
        return pl.concat(parts) if parts else pl.DataFrame(schema=MARK_SCHEMA)

    async def _fetch_binary(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` in binary format (bytea arrives as bytes, without hex decoding)."""
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(sql, params, binary=True)
                return await cur.fetchall()
        except (psycopg.OperationalError, PoolClosed, PoolTimeout) as exc:
            raise DatabaseUnreachable(f"{self.description}: {_first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise StorageError(f"{self.description}: {_first_line(exc)}") from exc

    async def read_neighbourhood(self, spans: pl.DataFrame, *, rows: int) -> pl.DataFrame:
        """Stored bars in and around each span (one binary COPY for all spans)."""
        if spans.is_empty():
            return pl.DataFrame(schema=NEIGHBOUR_SCHEMA)
        symbols = spans["symbol"].to_list()
        sql = _NEIGHBOURHOOD.format(cols=_READ_COLUMNS)
        params = {"symbols": symbols, "lo": spans["lo"].to_list(), "hi": spans["hi"].to_list()}
        found = _decode_copy(await self._copy_out(sql, {**params, "rows": rows}), _NEIGHBOUR_DTYPE)
        index = found["i"].astype(np.int64) - 1
        names = pl.Series("symbol", symbols, pl.String)
        return _read_frame(found).select(
            names.gather(index) if len(index) else pl.lit(None, pl.String).alias("symbol"),
            pl.all(),
        )

    async def _copy_out(self, sql: str, params: dict[str, Any]) -> bytes:
        chunks: list[bytes] = []
        try:
            async with self._pool.connection() as conn, conn.cursor().copy(sql, params) as copy:
                async for data in copy:
                    chunks.append(bytes(data))
        except psycopg.Error as exc:
            raise StorageError(f"{self.description}: {_first_line(exc)}") from exc
        return b"".join(chunks)

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
        """Bars of ``symbol`` in [start, end], oldest first (as known at ``as_of``), via
        binary COPY."""
        where = ["symbol = %(symbol)s"]
        params: dict[str, Any] = {"symbol": symbol}
        source = "bars"
        if as_of is not None:
            source = _AS_OF_SOURCE
            params["as_of"] = as_of
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
            f"SELECT string_agg({_PACKED_ROW}, ''::bytea ORDER BY date) FROM {source} "
            f"WHERE {' AND '.join(where)}"
        )
        ((packed,),) = await self._fetch_binary(sql, params)  # an aggregate: always one row
        packed = packed or b""  # NULL: no bars
        return _read_frame(np.frombuffer(packed, dtype=_PACKED_DTYPE))

    async def read_revisions(self, symbol: str) -> pl.DataFrame:
        """Earlier versions of ``symbol``'s bars, oldest revision first."""
        rows = await self._fetch(
            "SELECT date, open, high, low, close, volume, vwap, transactions, source, quality,"
            " flags, validated, ingested_at, revised_at, revised_by FROM bar_revisions"
            " WHERE symbol = %(symbol)s ORDER BY revised_at, date",
            {"symbol": symbol},
        )
        return pl.DataFrame(rows, schema=REVISION_SCHEMA, orient="row")

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
            raise StorageError(f"{self.description}: {_first_line(exc)}") from exc
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
