"""PostgreSQL reads: stored bars (now or as known at a moment), revisions, neighbourhoods, marks.

:class:`PostgresReads` is a mixin of :class:`~marketdata.storage.postgres.PostgresStore`.
Reads come back as binary COPY decoded by numpy: no per-row Python objects. Bars, marks and
neighbourhoods travel with every column fixed-width (null flags as booleans), as a COPY stream
or packed into one ``bytea`` value per symbol, so numpy decodes each in one call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from marketdata.errors import DatabaseUnreachable, StorageError
from marketdata.storage.postgres_locks import first_line
from marketdata.storage.records import MARK_SCHEMA, NEIGHBOUR_SCHEMA, READ_SCHEMA, REVISION_SCHEMA

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


class PostgresReads:
    """Reads of stored bars; a mixin of :class:`~marketdata.storage.postgres.PostgresStore`."""

    if TYPE_CHECKING:  # provided by PostgresStore
        _pool: AsyncConnectionPool

        @property
        def description(self) -> str: ...

        async def _fetch(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]: ...

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
            raise DatabaseUnreachable(f"{self.description}: {first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise StorageError(f"{self.description}: {first_line(exc)}") from exc

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
            raise StorageError(f"{self.description}: {first_line(exc)}") from exc
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
