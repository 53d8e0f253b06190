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

import numpy as np

from marketdata import calendar
from marketdata.service.watchlist import Watchlist, watched
from marketdata.storage.base import Store, SymbolStatus
from marketdata.storage.jobs import RunRecord

#: Runs looked at to count today's upstream calls (a day has a handful).
_RECENT_RUNS = 200


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


def _freshness(
    status: SymbolStatus | None, symbol: str, *, watched: bool, behind: int | None
) -> SymbolFreshness:
    return SymbolFreshness(
        symbol=symbol,
        watched=watched,
        first_date=status.first_date if status else None,
        last_date=status.last_date if status else None,
        bars=status.bar_count if status else 0,
        validated=status.validated_count if status else 0,
        missing_sessions=status.gap_count if status else 0,
        sessions_behind=behind,
        last_fetch=status.last_fetch if status else None,
        last_error=status.last_error if status else None,
        source=status.source if status else None,
    )


async def service_status(
    store: Store,
    *,
    config: Watchlist,
    now: dt.datetime,
    delay: dt.timedelta = dt.timedelta(0),
    symbols: Sequence[str] | None = None,
) -> ServiceStatus:
    """Coverage and freshness of the watched and stored symbols (or only ``symbols``)."""
    session = calendar.last_completed_session(now, delay=delay)
    watching = {w.symbol for w in await watched(store, config, at=now)}
    statuses = {s.symbol: s for s in await store.symbol_statuses(symbols)}
    names = sorted(set(statuses) | (watching if symbols is None else watching & set(symbols)))
    behind = sessions_behind(
        [statuses[n].last_date if n in statuses else None for n in names], session
    )
    runs = await store.list_runs(limit=_RECENT_RUNS)
    midnight = dt.datetime.combine(now.astimezone(dt.UTC).date(), dt.time(), dt.UTC)
    return ServiceStatus(
        last_completed_session=session,
        symbols=tuple(
            _freshness(statuses.get(n), n, watched=n in watching, behind=b)
            for n, b in zip(names, behind, strict=True)
        ),
        last_run=runs[0] if runs else None,
        calls_today=sum(r.calls for r in runs if r.started_at >= midnight),
    )
