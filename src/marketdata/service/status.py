"""The service at a glance: per-symbol coverage and freshness, backfill runs, calls today.

Read only from the maintained summaries (``symbol_status``, the watchlist, ``backfill_runs``),
never from ``bars``, so it stays fast however much history is stored. "Fresh" means a symbol's
last stored session is the last session completed at the vendor (the close plus the vendor's
delay); otherwise it is that many sessions behind.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from marketdata import calendar
from marketdata.service.simulated import SYNTHETIC, DataMode, mode_of
from marketdata.service.watchlist import Watchlist, watched
from marketdata.storage.base import StatusTotals, Store, SymbolStatus
from marketdata.storage.jobs import RunRecord


def sessions_behind(last_dates: Sequence[dt.date | None], session: dt.date) -> list[int | None]:
    """XNYS sessions after each date up to ``session`` (0: up to date; None: nothing stored)."""
    days = calendar.sessions(calendar.FIRST_DATE, calendar.LAST_DATE)
    target = int(np.searchsorted(days, np.datetime64(session, "D"), side="right"))
    known = [d for d in last_dates if d is not None]
    if not known:
        return [None] * len(last_dates)
    positions = np.searchsorted(days, np.array(known, dtype="datetime64[D]"), side="right")
    behind = iter(np.maximum(target - positions, 0).tolist())
    return [None if d is None else int(next(behind)) for d in last_dates]


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolFreshness:
    """One symbol: what is stored, how current it is, whether it is watched."""

    symbol: str
    watched: bool
    first_date: dt.date | None
    last_date: dt.date | None
    bars: int
    validated: int
    missing_sessions: int
    sessions_behind: int | None  # None: nothing stored
    last_fetch: dt.datetime | None
    last_error: str | None
    source: str | None

    @property
    def fresh(self) -> bool:
        """Stored up to the last completed session."""
        return self.sessions_behind == 0

    @property
    def validation_rate(self) -> float | None:
        """Share of stored bars that passed every hard check."""
        return self.validated / self.bars if self.bars else None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceStatus:
    """Everything ``/api/v1/status`` and ``marketdata status`` show."""

    last_completed_session: dt.date
    symbols: tuple[SymbolFreshness, ...]
    last_run: RunRecord | None
    calls_today: int

    @property
    def bars(self) -> int:
        """Bars stored, all symbols."""
        return sum(s.bars for s in self.symbols)

    @property
    def validated(self) -> int:
        """Bars that passed every hard check."""
        return sum(s.validated for s in self.symbols)

    @property
    def missing_sessions(self) -> int:
        """Missing sessions inside the symbols' stored ranges."""
        return sum(s.missing_sessions for s in self.symbols)

    @property
    def stale(self) -> tuple[str, ...]:
        """Watched symbols not stored up to the last completed session."""
        return tuple(s.symbol for s in self.symbols if s.watched and not s.fresh)


def _freshness(status: SymbolStatus, *, behind: int | None) -> SymbolFreshness:
    stored = status.last_date is not None
    return SymbolFreshness(
        symbol=status.symbol,
        watched=status.watched,
        first_date=status.first_date,
        last_date=status.last_date,
        bars=status.bar_count if stored else 0,
        validated=status.validated_count if stored else 0,
        missing_sessions=status.gap_count if stored else 0,
        sessions_behind=behind,
        last_fetch=status.last_fetch,
        last_error=status.last_error,
        source=status.source if stored else None,
    )


def freshness(rows: Sequence[SymbolStatus], session: dt.date) -> tuple[SymbolFreshness, ...]:
    """Each status row with how many sessions it is behind ``session``."""
    behind = sessions_behind([r.last_date for r in rows], session)
    return tuple(_freshness(r, behind=b) for r, b in zip(rows, behind, strict=True))


async def service_status(
    store: Store,
    *,
    config: Watchlist,
    now: dt.datetime,
    delay: dt.timedelta = dt.timedelta(0),
    symbols: Sequence[str] | None = None,
) -> ServiceStatus:
    """Coverage and freshness of every watched and stored symbol (or only ``symbols``).

    Reads the whole watchlist first, which also brings the status table's watched flags in
    step; :func:`status_overview` is the fast path that trusts them.
    """
    session = calendar.last_completed_session(now, delay=delay)
    await watched(store, config, at=now)
    rows = await store.status_rows()
    if symbols is not None:
        wanted = set(symbols)
        rows = [r for r in rows if r.symbol in wanted]
    runs = await store.list_runs(limit=1)
    return ServiceStatus(
        last_completed_session=session,
        symbols=freshness(rows, session),
        last_run=runs[0] if runs else None,
        calls_today=await store.calls_since(_midnight(now)),
    )


def _midnight(now: dt.datetime) -> dt.datetime:
    return dt.datetime.combine(now.astimezone(dt.UTC).date(), dt.time(), dt.UTC)


#: Stale symbols named in an overview (``stale`` counts them all; a page with
#: ``stale_only`` lists every one).
STALE_NAMED: Final = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class Overview:
    """What ``GET /api/v1/status`` shows: totals, a page of symbols, the backfill."""

    data_mode: DataMode
    last_completed_session: dt.date
    totals: StatusTotals
    stale: tuple[str, ...]  # up to STALE_NAMED stale symbols, the most behind first
    page: tuple[SymbolFreshness, ...]
    next_after: str | None  # the symbol the next page starts after; None: this is the last
    last_run: RunRecord | None
    calls_today: int


async def status_overview(
    store: Store,
    *,
    now: dt.datetime,
    delay: dt.timedelta = dt.timedelta(0),
    after: str | None = None,
    limit: int = 100,
    stale_only: bool = False,
) -> Overview:
    """Totals over every stored or watched symbol, the stale ones named, one page of symbols.

    Reads only indexed summaries (the status table and its watched flags, the latest run,
    today's runs), in one :meth:`~marketdata.storage.base.Store.status_snapshot`: the same
    handful of index reads however many symbols and bars are stored.
    """
    session = calendar.last_completed_session(now, delay=delay)
    snap = await store.status_snapshot(
        behind_before=session,
        stale_limit=STALE_NAMED,
        after=after,
        limit=limit + 1,
        stale_only=stale_only,
        calls_since=_midnight(now),
        source=SYNTHETIC,
    )
    rows = snap.rows
    return Overview(
        data_mode=mode_of(synthetic=snap.has_source, stored=snap.totals.bars > 0),
        last_completed_session=session,
        totals=snap.totals,
        stale=tuple(snap.stale),
        page=freshness(rows[:limit], session),
        next_after=rows[limit - 1].symbol if len(rows) > limit else None,
        last_run=snap.last_run,
        calls_today=snap.calls,
    )
