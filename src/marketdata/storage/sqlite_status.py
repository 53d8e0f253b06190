"""SQLite side of the status table: per-symbol summaries, watched flags, totals, pages.

:class:`SQLiteStatus` is a mixin of :class:`~marketdata.storage.sqlite.SQLiteStore` (its
statements run on the store's worker thread). The status page reads only ``symbol_status``:
every watched symbol has a row there (an empty one until its first bar), flagged ``watched``,
so totals, the stale count and a page of symbols are one-table reads through its indexes.
Lists of symbols travel as one JSON parameter (``json_each``), whatever their length.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from marketdata.storage.base import StatusSnapshot, StatusTotals, SymbolStatus
from marketdata.storage.jobs import RunRecord
from marketdata.storage.sqlite_jobs import RUN_COLUMNS, run_values
from marketdata.storage.sqlite_leases import immediate, iso_ts

T = TypeVar("T")

_COLUMNS = (
    "symbol, first_date, last_date, bar_count, validated_count, gap_count, last_fetch,"
    " last_error, updated_at, source, watched"
)
_LISTED = "(SELECT value FROM json_each(?))"

_FLAG = """
INSERT INTO symbol_status (symbol, updated_at, watched) SELECT value, ?, 1 FROM json_each(?)
WHERE true
ON CONFLICT (symbol) DO UPDATE SET watched = 1 WHERE NOT symbol_status.watched
"""
_UNFLAG = f"UPDATE symbol_status SET watched = 0 WHERE watched AND symbol IN {_LISTED}"
_UNFLAG_OTHERS = f"UPDATE symbol_status SET watched = 0 WHERE watched AND symbol NOT IN {_LISTED}"
_DROP_EMPTY = "DELETE FROM symbol_status WHERE NOT watched AND last_date IS NULL AND bar_count = 0"

_TOTALS = (
    "SELECT count(*), coalesce(sum(bar_count), 0), coalesce(sum(validated_count), 0),"
    " coalesce(sum(gap_count), 0) FROM symbol_status"
)
# Two range scans of the (watched, last_date) index; NULL dates sort first.
_STALE = (
    "SELECT (SELECT count(*) FROM symbol_status WHERE watched = 1 AND last_date IS NULL)"
    " + (SELECT count(*) FROM symbol_status WHERE watched = 1 AND last_date < ?)"
)


_HAS_SOURCE = "SELECT 1 FROM symbol_status WHERE last_date IS NOT NULL"


def _page(after: str | None, limit: int | None, before: str | None) -> tuple[str, list[Any]]:
    """A page of status rows by symbol (only stale ones when ``before`` is given)."""
    sql = [f"SELECT {_COLUMNS} FROM symbol_status WHERE symbol > ?"]
    params: list[Any] = [after or ""]
    if before is not None:
        sql.append("AND watched = 1 AND (last_date IS NULL OR last_date < ?)")
        params.append(before)
    sql.append("ORDER BY symbol")
    if limit is not None:
        sql.append("LIMIT ?")
        params.append(limit)
    return " ".join(sql), params


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _ts(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _status(r: tuple[Any, ...]) -> SymbolStatus:
    return SymbolStatus(
        symbol=r[0],
        first_date=_date(r[1]),
        last_date=_date(r[2]),
        bar_count=int(r[3]),
        validated_count=int(r[4]),
        gap_count=int(r[5]),
        last_fetch=_ts(r[6]),
        last_error=r[7],
        updated_at=_ts(r[8]) or dt.datetime.min.replace(tzinfo=dt.UTC),
        source=r[9],
        watched=bool(r[10]),
    )


class SQLiteStatus:
    """The status table on SQLite (mixed into the store)."""

    if TYPE_CHECKING:  # provided by SQLiteStore

        @property
        def _db(self) -> sqlite3.Connection: ...

        async def _run(self, fn: Callable[..., T], *args: Any) -> T: ...

        def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...

    async def symbol_statuses(self, symbols: Sequence[str] | None = None) -> list[SymbolStatus]:
        """Per-symbol summaries of stored symbols, ordered by symbol."""
        sql = f"SELECT {_COLUMNS} FROM symbol_status WHERE last_date IS NOT NULL"
        params: list[Any] = []
        if symbols is not None:
            if not symbols:
                return []
            sql += f" AND symbol IN {_LISTED}"
            params = [json.dumps(list(symbols))]
        rows = await self._run(self._fetch, sql + " ORDER BY symbol", params)
        return [_status(r) for r in rows]

    async def has_source(self, source: str | None = None) -> bool:
        """Whether any symbol's latest write came from ``source`` (None: from anywhere)."""
        sql = _HAS_SOURCE
        if source is None:
            rows = await self._run(self._fetch, sql + " LIMIT 1", [])
        else:  # through the source index
            rows = await self._run(self._fetch, sql + " AND source = ? LIMIT 1", [source])
        return bool(rows)

    async def watched_symbols(self) -> list[str]:
        """Symbols flagged watched, ordered."""
        rows = await self._run(
            self._fetch, "SELECT symbol FROM symbol_status WHERE watched = 1 ORDER BY symbol", []
        )
        return [r[0] for r in rows]

    async def set_watched(
        self, symbols: Sequence[str], *, watched: bool = True, only: bool = False, at: dt.datetime
    ) -> None:
        """Flag ``symbols`` watched or not; see :class:`~marketdata.storage.base.Store`."""
        await self._run(self._set_watched, json.dumps(list(symbols)), watched, only, iso_ts(at))

    def _set_watched(self, listed: str, watched: bool, only: bool, at: str) -> None:
        with immediate(self._db) as db:
            if watched:
                if only:
                    db.execute(_UNFLAG_OTHERS, (listed,))
                db.execute(_FLAG, (at, listed))
            else:
                db.execute(_UNFLAG, (listed,))
            db.execute(_DROP_EMPTY)

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
        """One status page's reads in one hop to the worker thread."""
        before = behind_before.isoformat()

        def read() -> StatusSnapshot:
            runs = self._fetch(
                f"SELECT {', '.join(RUN_COLUMNS)} FROM backfill_runs ORDER BY id DESC LIMIT 1", []
            )
            sql, params = _page(after, limit, before if stale_only else None)
            return StatusSnapshot(
                totals=self._status_totals(before),
                stale=self._stale_symbols(before, stale_limit),
                rows=[_status(r) for r in self._fetch(sql, params)],
                last_run=RunRecord(**run_values(runs[0])) if runs else None,
                calls=self._calls_since(iso_ts(calls_since)),
                has_source=bool(self._fetch(_HAS_SOURCE + " AND source = ? LIMIT 1", [source])),
            )

        return await self._run(read)

    def _status_totals(self, before: str) -> StatusTotals:
        db = self._db
        symbols, bars, validated, gaps = db.execute(_TOTALS).fetchone()
        (stale,) = db.execute(_STALE, (before,)).fetchone()
        return StatusTotals(
            symbols=int(symbols),
            bars=int(bars),
            validated=int(validated),
            missing_sessions=int(gaps),
            stale=int(stale),
        )

    async def status_rows(
        self,
        *,
        after: str | None = None,
        limit: int | None = None,
        behind_before: dt.date | None = None,
    ) -> list[SymbolStatus]:
        """A page of the status table, by symbol; see :class:`~marketdata.storage.base.Store`."""
        sql, params = _page(after, limit, behind_before.isoformat() if behind_before else None)
        return [_status(r) for r in await self._run(self._fetch, sql, params)]

    def _stale_symbols(self, before: str, limit: int) -> list[str]:
        db = self._db
        names = [
            r[0]
            for r in db.execute(
                "SELECT symbol FROM symbol_status WHERE watched = 1 AND last_date IS NULL"
                " ORDER BY symbol LIMIT ?",
                (limit,),
            )
        ]
        if len(names) < limit:
            names += [
                r[0]
                for r in db.execute(
                    "SELECT symbol FROM symbol_status WHERE watched = 1 AND last_date < ?"
                    " ORDER BY last_date, symbol LIMIT ?",
                    (before, limit - len(names)),
                )
            ]
        return names

    async def calls_since(self, at: dt.datetime) -> int:
        """Upstream calls of backfill runs started at or after ``at``."""
        return await self._run(self._calls_since, iso_ts(at))

    def _calls_since(self, at: str) -> int:
        rows = self._fetch(
            "SELECT coalesce(sum(calls), 0) FROM backfill_runs WHERE started_at >= ?", [at]
        )
        return int(rows[0][0])
