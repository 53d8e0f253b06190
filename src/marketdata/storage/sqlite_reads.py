"""SQLite reads: stored bars (now or as known at a moment), revisions, neighbourhoods, marks.

:class:`SQLiteReads` is a mixin of :class:`~marketdata.storage.sqlite.SQLiteStore` (its
statements run on the store's worker thread). The driver returns dates and timestamps as ISO
text and booleans as integers; :func:`typed_frame` turns its rows into typed frames, column by
column (the other SQLite mixins read through it too).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import polars as pl

from marketdata.storage.records import MARK_SCHEMA, NEIGHBOUR_SCHEMA, READ_SCHEMA, REVISION_SCHEMA
from marketdata.storage.sqlite_leases import iso_ts

T = TypeVar("T")

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


#: How :func:`~marketdata.storage.sqlite_leases.iso_ts` writes timestamps, for polars.
_STORED_TS = "%Y-%m-%dT%H:%M:%S%.f%:z"


def typed_frame(rows: list[tuple[Any, ...]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
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


class SQLiteReads:
    """Reads of stored bars; a mixin of :class:`~marketdata.storage.sqlite.SQLiteStore`."""

    if TYPE_CHECKING:  # provided by SQLiteStore

        @property
        def _db(self) -> sqlite3.Connection: ...

        async def _run(self, fn: Callable[..., T], *args: Any) -> T: ...

        def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...

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
        return typed_frame(rows, MARK_SCHEMA)

    async def read_neighbourhood(self, spans: pl.DataFrame, *, rows: int) -> pl.DataFrame:
        """Stored bars in and around each span."""
        if spans.is_empty():
            return pl.DataFrame(schema=NEIGHBOUR_SCHEMA)
        found = await self._run(self._neighbourhood, spans, rows)
        return typed_frame(found, NEIGHBOUR_SCHEMA)

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
            stamp = iso_ts(as_of)
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
        return typed_frame(rows, READ_SCHEMA)

    async def read_revisions(self, symbol: str) -> pl.DataFrame:
        """Earlier versions of ``symbol``'s bars, oldest revision first."""
        rows = await self._run(
            self._fetch,
            "SELECT date, open, high, low, close, volume, vwap, transactions, source, quality,"
            " flags, validated, ingested_at, revised_at, revised_by FROM bar_revisions"
            " WHERE symbol = ? ORDER BY revised_at, date",
            [symbol],
        )
        return typed_frame(rows, REVISION_SCHEMA)
