"""PostgreSQL side of the status table: per-symbol summaries, watched flags, totals, pages.

:class:`PostgresStatus` is a mixin of :class:`~marketdata.storage.postgres.PostgresStore`. As
on SQLite, every watched symbol has a ``symbol_status`` row flagged ``watched`` (an empty one
until its first bar), so the status page reads that one table through its indexes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from marketdata.storage.base import StatusSnapshot, StatusTotals, SymbolStatus
from marketdata.storage.jobs import RunRecord
from marketdata.storage.postgres_jobs import RUN_COLUMNS, PostgresJobs, run_values

_COLUMNS = (
    "symbol, first_date, last_date, bar_count, validated_count, gap_count, last_fetch,"
    " last_error, updated_at, source, watched"
)

_FLAG = """
INSERT INTO symbol_status AS st (symbol, updated_at, watched)
SELECT s, %(at)s, true FROM unnest(%(symbols)s::text[]) AS s
ON CONFLICT (symbol) DO UPDATE SET watched = true WHERE NOT st.watched
"""
_UNFLAG = "UPDATE symbol_status SET watched = false WHERE watched AND symbol = ANY(%(symbols)s)"
_UNFLAG_OTHERS = (
    "UPDATE symbol_status SET watched = false WHERE watched AND NOT symbol = ANY(%(symbols)s)"
)
_DROP_EMPTY = "DELETE FROM symbol_status WHERE NOT watched AND last_date IS NULL AND bar_count = 0"
_TOTALS = """
SELECT count(*), coalesce(sum(bar_count), 0), coalesce(sum(validated_count), 0),
       coalesce(sum(gap_count), 0),
       (SELECT count(*) FROM symbol_status WHERE watched = true AND last_date IS NULL)
       + (SELECT count(*) FROM symbol_status WHERE watched = true AND last_date < %(before)s)
FROM symbol_status
"""


_STALE_NAMES = """
(SELECT symbol, 0 AS part, NULL::date AS last_date FROM symbol_status
 WHERE watched = true AND last_date IS NULL ORDER BY symbol LIMIT %(stale_limit)s)
UNION ALL
(SELECT symbol, 1, last_date FROM symbol_status
 WHERE watched = true AND last_date < %(before)s ORDER BY last_date, symbol
 LIMIT %(stale_limit)s)
ORDER BY part, last_date, symbol LIMIT %(stale_limit)s
"""
_HAS_SOURCE = "SELECT 1 FROM symbol_status WHERE last_date IS NOT NULL"
_CALLS = "SELECT coalesce(sum(calls), 0) FROM backfill_runs WHERE started_at >= %(since)s"
_LAST_RUN = f"SELECT {', '.join(RUN_COLUMNS)} FROM backfill_runs ORDER BY id DESC LIMIT 1"


def _page(*, stale_only: bool) -> str:
    """A page of status rows by symbol (only stale ones with ``stale_only``)."""
    stale = "AND watched = true AND (last_date IS NULL OR last_date < %(before)s)"
    return (
        f"SELECT {_COLUMNS} FROM symbol_status WHERE symbol > %(after)s"
        f" {stale if stale_only else ''} ORDER BY symbol LIMIT %(limit)s"
    )


def _totals(row: tuple[Any, ...]) -> StatusTotals:
    symbols, bars, validated, gaps, stale = row
    return StatusTotals(
        symbols=int(symbols),
        bars=int(bars),
        validated=int(validated),
        missing_sessions=int(gaps),
        stale=int(stale),
    )


def _status(r: tuple[Any, ...]) -> SymbolStatus:
    return SymbolStatus(
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
        watched=bool(r[10]),
    )


class PostgresStatus(PostgresJobs):
    """The status table on PostgreSQL (mixed into the store, over :class:`PostgresJobs`'s
    transactions)."""

    async def symbol_statuses(self, symbols: Sequence[str] | None = None) -> list[SymbolStatus]:
        """Per-symbol summaries of stored symbols, ordered by symbol."""
        sql = f"SELECT {_COLUMNS} FROM symbol_status WHERE last_date IS NOT NULL"
        params: dict[str, Any] = {}
        if symbols is not None:
            sql += " AND symbol = ANY(%(symbols)s)"
            params["symbols"] = list(symbols)
        rows = await self._fetch(sql + " ORDER BY symbol", params)
        return [_status(r) for r in rows]

    async def has_source(self, source: str | None = None) -> bool:
        """Whether any symbol's latest write came from ``source`` (None: from anywhere)."""
        sql = _HAS_SOURCE
        if source is None:
            rows = await self._fetch(sql + " LIMIT 1", {})
        else:  # through the source index
            rows = await self._fetch(sql + " AND source = %(source)s LIMIT 1", {"source": source})
        return bool(rows)

    async def watched_symbols(self) -> list[str]:
        """Symbols flagged watched, ordered."""
        rows = await self._fetch(
            "SELECT symbol FROM symbol_status WHERE watched ORDER BY symbol", {}
        )
        return [r[0] for r in rows]

    async def set_watched(
        self, symbols: Sequence[str], *, watched: bool = True, only: bool = False, at: dt.datetime
    ) -> None:
        """Flag ``symbols`` watched or not; see :class:`~marketdata.storage.base.Store`."""
        params = {"symbols": list(symbols), "at": at}
        async with self._transaction() as conn:
            if watched:
                if only:
                    await conn.execute(_UNFLAG_OTHERS, params)
                await conn.execute(_FLAG, params)
            else:
                await conn.execute(_UNFLAG, params)
            await conn.execute(_DROP_EMPTY)

    async def status_rows(
        self,
        *,
        after: str | None = None,
        limit: int | None = None,
        behind_before: dt.date | None = None,
    ) -> list[SymbolStatus]:
        """A page of the status table, by symbol; see :class:`~marketdata.storage.base.Store`."""
        params = {"after": after or "", "limit": limit, "before": behind_before}
        rows = await self._fetch(_page(stale_only=behind_before is not None), params)
        return [_status(r) for r in rows]

    async def status_snapshot(
        self,
        *,
        behind_before: dt.date,
        stale_limit: int,
        after: str | None,
        limit: int,
        stale_only: bool,
        calls_since: dt.datetime,
        source: str,
    ) -> StatusSnapshot:
        """One status page's reads, pipelined on one connection."""
        params = {
            "before": behind_before,
            "stale_limit": stale_limit,
            "after": after or "",
            "limit": limit,
            "since": calls_since,
            "source": source,
        }
        statements = (
            _TOTALS,
            _STALE_NAMES,
            _page(stale_only=stale_only),
            _LAST_RUN,
            _CALLS,
            _HAS_SOURCE + " AND source = %(source)s LIMIT 1",
        )
        async with self._transaction(lock=False) as conn:
            async with conn.pipeline():
                cursors = [await conn.execute(sql, params) for sql in statements]
            totals, stale, rows, runs, calls, found = [await c.fetchall() for c in cursors]
        return StatusSnapshot(
            totals=_totals(totals[0]),
            stale=[r[0] for r in stale],
            rows=[_status(r) for r in rows],
            last_run=RunRecord(**run_values(runs[0])) if runs else None,
            calls=int(calls[0][0]),
            has_source=bool(found),
        )

    async def calls_since(self, at: dt.datetime) -> int:
        """Upstream calls of backfill runs started at or after ``at``."""
        rows = await self._fetch(_CALLS, {"since": at})
        return int(rows[0][0])
