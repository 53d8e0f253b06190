"""SQLite side of corporate actions: splits and dividends, stored and read back.

:class:`SQLiteActions` is a mixin of :class:`~marketdata.storage.sqlite.SQLiteStore` (its
statements run on the store's worker thread). Writes are upserts that touch only new or
changed rows; which symbols' actions were fetched, and up to when, is recorded on the
watchlist (:meth:`~marketdata.storage.sqlite_jobs.SQLiteJobs.mark_actions_checked`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import polars as pl

from marketdata.storage.prepare import prepare_dividends, prepare_splits
from marketdata.storage.records import STORED_DIVIDEND_SCHEMA, STORED_SPLIT_SCHEMA
from marketdata.storage.sqlite_leases import iso_ts
from marketdata.storage.sqlite_reads import typed_frame

T = TypeVar("T")


class SQLiteActions:
    """Splits and dividends; a mixin of :class:`~marketdata.storage.sqlite.SQLiteStore`."""

    if TYPE_CHECKING:  # provided by SQLiteStore

        async def _run(self, fn: Callable[..., T], *args: Any) -> T: ...

        def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...

        def _write_many(self, sql: str, rows: list[tuple[Any, ...]]) -> int: ...

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
            (s, d.isoformat(), f, t, src, iso_ts(at))
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
            (*row, iso_ts(at))
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
        return typed_frame(rows, schema)
