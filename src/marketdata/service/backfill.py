"""What to backfill, and the plan for it, from what is stored.

:func:`prepare` reads what is stored (per-symbol summaries, known gaps, how far back the
vendor was already asked, the plan window found earlier) and asks the pure planner
(:mod:`marketdata.service.plan`) for the cheapest mix of requests; :mod:`.execution` runs it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Literal

from marketdata import calendar
from marketdata.errors import InputError
from marketdata.service.plan import Plan, SymbolState, make_plan
from marketdata.service.simulated import SYNTHETIC
from marketdata.service.watchlist import Watchlist, watched
from marketdata.storage.base import Store
from marketdata.symbols import normalize_symbols
from marketdata.validation import GapRange, missing_sessions

log = logging.getLogger(__name__)

Strategy = Literal["auto", "range", "grouped"]

#: Service-state key holding how many days of history the vendor plan serves.
PLAN_DAYS_KEY = "plan_history_days:{provider}"
#: Days of slack kept inside a remembered plan window (it rolls forward every day).
_WINDOW_SLACK = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """How backfills run (from the settings)."""

    overlap: int = 2
    delay: dt.timedelta = dt.timedelta(minutes=60)
    concurrency: int = 4
    strategy: Strategy = "auto"


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """What to backfill: the watchlist (default) or named symbols, over a date range."""

    symbols: tuple[str, ...] = ()  # empty: the watchlist
    start: dt.date | None = None  # explicit first date (ignores what was asked before)
    end: dt.date | None = None  # default: the last completed session
    years: int | None = None  # history depth when ``start`` is not given


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepared:
    """A plan and what it was made from."""

    plan: Plan
    end: dt.date  # the last session wanted
    window_start: dt.date | None  # the plan window's start, when known and binding
    window_days: int | None = None  # the plan window's depth, when known and binding
    clipped: tuple[str, ...]  # symbols whose history the plan window cuts
    explicit_start: bool
    provider: str  # who the run asks (its rate limit applies)
    #: Corporate-actions requests (splits and dividends: two calls and their pages each); set
    #: by :meth:`~marketdata.service.runs.Backfiller.plan`, which knows what was checked.
    action_requests: int = 0

    @property
    def symbols(self) -> tuple[str, ...]:
        """Every symbol considered (with or without work)."""
        return tuple(s.symbol for s in self.plan.symbols)


def check_fetchable(target: Target, last: dt.date) -> None:
    """:class:`InputError` when ``target``'s explicit range can hold no session to fetch: it
    starts after ``last`` (the last completed session), or holds no XNYS session up to it.

    Run by :func:`prepare`, and by the API before it accepts a run, so a mistaken range is a
    clear error rather than a run that succeeds having done nothing.
    """
    if target.start is None:
        return
    if target.start > last:
        msg = f"start {target.start} is after the last completed session {last}: nothing to fetch"
        raise InputError(msg)
    end = min(target.end or last, last)
    if target.start >= calendar.FIRST_DATE and not calendar.sessions(target.start, end).size:
        raise InputError(f"no XNYS session from {target.start} to {end}: nothing to fetch")


def years_before(day: dt.date, years: int) -> dt.date:
    """``day`` minus whole ``years`` (29 February becomes 28 February), at the earliest the
    calendar's first day."""
    if day.year - years < calendar.FIRST_DATE.year:
        return calendar.FIRST_DATE
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


async def prepare(
    store: Store,
    *,
    config: Watchlist,
    target: Target,
    provider: str,
    options: Options,
    now: dt.datetime,
) -> Prepared:
    """Plan the backfill of ``target`` from what ``store`` holds at ``now``."""
    for label, day in (("start", target.start), ("end", target.end)):
        if day is not None and not calendar.FIRST_DATE <= day <= calendar.LAST_DATE:
            msg = (
                f"{label} {day} is outside the exchange calendar "
                f"({calendar.FIRST_DATE} … {calendar.LAST_DATE})"
            )
            raise InputError(msg)
    end = calendar.last_completed_session(now, delay=options.delay)
    check_fetchable(target, end)
    if target.end is not None:
        end = min(end, target.end)
    watch = {w.symbol: w for w in await watched(store, config, at=now)}
    names = normalize_symbols(target.symbols) if target.symbols else sorted(watch)
    window_days = await store.get_state(PLAN_DAYS_KEY.format(provider=provider))
    # The window rolls forward with the calendar: keep the remembered depth, minus some slack.
    window_start = (
        end - dt.timedelta(days=int(window_days) - _WINDOW_SLACK)
        if window_days is not None and target.start is None
        else None
    )
    statuses = {s.symbol: s for s in await store.symbol_statuses(names)}
    states, clipped = [], []
    for symbol in names:
        entry = watch.get(symbol)
        years = target.years or (entry.years if entry else config.years)
        start = target.start or years_before(end, years)
        if window_start is not None and start < window_start:
            start = window_start
            clipped.append(symbol)
        status = statuses.get(symbol)
        real = status is not None and status.bar_count > 0
        if real and status is not None and status.source == SYNTHETIC and provider != SYNTHETIC:
            real = False  # simulated bars are replaced, not topped up
        gaps: tuple[GapRange, ...] = ()
        if real and status is not None and status.gap_count:
            gaps = tuple(missing_sessions((await store.read_bars(symbol))["date"]))
        states.append(
            SymbolState(
                symbol=symbol,
                start=start,
                end=end,
                first_date=status.first_date if real and status else None,
                last_date=status.last_date if real and status else None,
                gaps=gaps,
                checked_from=entry.checked_from if entry and target.start is None else None,
            )
        )
    plan = make_plan(states, overlap=options.overlap, strategy=options.strategy)
    return Prepared(
        plan=plan,
        end=end,
        window_start=window_start if clipped else None,
        window_days=int(window_days) if clipped and window_days is not None else None,
        clipped=tuple(clipped),
        explicit_start=target.start is not None,
        provider=provider,
    )
