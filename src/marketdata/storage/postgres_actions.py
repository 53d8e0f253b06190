"""PostgreSQL side of corporate actions: splits and dividends, stored and read back.

:class:`PostgresActions` is a mixin of :class:`~marketdata.storage.postgres.PostgresStore`.
Each write is one ``INSERT … SELECT FROM unnest(…) ON CONFLICT`` statement (under the write
lock) that touches only new or changed rows; which symbols' actions were fetched, and up to
when, is recorded on the watchlist
(:meth:`~marketdata.storage.postgres_jobs.PostgresJobs.mark_actions_checked`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from marketdata.storage.prepare import prepare_dividends, prepare_splits
from marketdata.storage.records import STORED_DIVIDEND_SCHEMA, STORED_SPLIT_SCHEMA


class PostgresActions:
    """Splits and dividends; a mixin of :class:`~marketdata.storage.postgres.PostgresStore`."""

    if TYPE_CHECKING:  # provided by PostgresStore

        async def _fetch(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]: ...

        async def _execute(self, sql: str, params: dict[str, Any]) -> int: ...

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
