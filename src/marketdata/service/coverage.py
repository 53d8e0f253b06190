"""Coverage by month: of each month's XNYS sessions since a symbol's first stored one, how many
it has stored, and how many of those passed validation. The dashboard's heat map is drawn from
it, so holes (and a stale symbol's missing last sessions) jump out.

The month grid is calendar logic only (:func:`month_counts` is pure: sessions and stored dates
in, counts out); the stored dates and ``validated`` marks of every symbol come from one read of
the bars in the range (:meth:`~marketdata.storage.base.Store.read_marks`: dates and marks
only, no prices). Bars on dates that are not sessions never count.

Nothing after the last completed session is expected: a later ``end`` is clamped to it, so
future months are absent rather than holes. An answer holds at most ``limit`` symbols, by name;
when more remain, it says how many there are and after which symbol the next one continues.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from marketdata import calendar
from marketdata.errors import InputError, NotFound
from marketdata.storage.base import Store

#: Columns of :func:`month_counts` results.
COUNT_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "month": pl.String(),
    "sessions": pl.Int64(),
    "present": pl.Int64(),
    "valid": pl.Int64(),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class MonthCoverage:
    """One symbol in one month (``YYYY-MM``): sessions, bars stored on them, bars validated."""

    month: str
    sessions: int
    present: int
    valid: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolCoverage:
    """A symbol's stored range and its months."""

    symbol: str
    first_date: dt.date | None
    last_date: dt.date | None
    months: tuple[MonthCoverage, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Coverage:
    """The asked symbols (one page of them) over the months of [start, end].

    ``symbols_total`` counts every symbol the question covers, on every page; ``next_after``
    is the symbol the next page continues after (None on the last page).
    """

    start: dt.date
    end: dt.date
    months: tuple[str, ...]
    symbols: tuple[SymbolCoverage, ...]
    symbols_total: int = 0
    next_after: str | None = None

    def __post_init__(self) -> None:
        if self.start > self.end:
            msg = f"start {self.start} is after end {self.end}"
            raise InputError(msg)
        if self.symbols_total < len(self.symbols):
            msg = f"symbols_total {self.symbols_total} is less than the {len(self.symbols)} given"
            raise ValueError(msg)

    @property
    def truncated(self) -> bool:
        """Whether symbols remain after this page."""
        return self.next_after is not None


def month_labels(sessions: calendar.SessionArray) -> tuple[str, ...]:
    """The months (``YYYY-MM``) that hold at least one of ``sessions``, in order."""
    return tuple(str(m) for m in np.unique(sessions.astype("datetime64[M]")))


def month_counts(
    sessions: calendar.SessionArray, bars: pl.DataFrame, firsts: Mapping[str, dt.date | None]
) -> pl.DataFrame:
    """Per symbol and month of ``sessions``: sessions expected, bars present on them, bars
    validated.

    ``bars`` has ``symbol``, ``date`` and ``validated`` (one row per symbol and date);
    ``firsts`` maps each symbol, in the order wanted, to its first stored session: sessions
    before it are not expected (a history that starts in March leaves January and February at
    zero sessions, not missing). Every symbol gets every month of ``sessions``; rows are
    ordered by symbol (as in ``firsts``) and month.
    """
    days = pl.DataFrame({"date": pl.Series(sessions, dtype=pl.Date())}).with_columns(
        pl.col("date").dt.strftime("%Y-%m").alias("month")
    )
    order = pl.DataFrame(
        {"symbol": list(firsts), "_first": list(firsts.values()), "_order": range(len(firsts))},
        schema={"symbol": pl.String(), "_first": pl.Date(), "_order": pl.Int64()},
    )
    grid = order.join(days.select("month").unique(), how="cross")
    expected = (
        order.join(days, how="cross")
        .filter(pl.col("_first").is_null() | (pl.col("date") >= pl.col("_first")))
        .group_by("symbol", "month")
        .agg(pl.len().alias("sessions"))
    )
    counts = (
        bars.select("symbol", "date", pl.col("validated").cast(pl.Int64))
        .join(days, on="date", how="inner")
        .group_by("symbol", "month")
        .agg(pl.len().alias("present"), pl.col("validated").sum().alias("valid"))
    )
    return (
        grid.join(expected, on=["symbol", "month"], how="left")
        .join(counts, on=["symbol", "month"], how="left")
        .with_columns(pl.col("sessions", "present", "valid").fill_null(0))
        .sort("_order", "month")
        .select(pl.col(name).cast(dtype) for name, dtype in COUNT_SCHEMA.items())
    )


async def coverage(
    store: Store,
    symbols: Sequence[str] | None = None,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    today: dt.date,
    limit: int | None = None,
    after: str | None = None,
) -> Coverage:
    """Monthly coverage of ``symbols`` (every stored symbol when None) over [start, end].

    ``today`` is the last completed session: ``end`` defaults to it (so a stale symbol's last
    months show it) and is clamped to it (later sessions are not expected yet); ``start``
    defaults to the first stored session of the symbols. Dates must lie in the calendar's
    window and ``start`` not after ``today``; a named symbol with no bars is
    :class:`NotFound`. Symbols go by name: only those after ``after``, at most ``limit``.
    """
    statuses = await store.symbol_statuses(symbols)
    if symbols is not None:
        stored = {s.symbol for s in statuses if s.bar_count}
        unknown = [s for s in symbols if s not in stored]
        if unknown:
            raise NotFound(f"no bars stored for {', '.join(unknown)}")
    # Sorted here, not by the database's collation, so that ``after`` pages consistently.
    every = sorted((s for s in statuses if s.bar_count), key=lambda s: s.symbol)
    remaining = [s for s in every if after is None or s.symbol > after]
    statuses = remaining[:limit]
    next_after = statuses[-1].symbol if len(statuses) < len(remaining) else None
    today = _clamp(today)
    end = min(end, today) if end is not None else today
    earliest = min((s.first_date for s in statuses if s.first_date is not None), default=end)
    start = start if start is not None else min(_clamp(earliest), end)
    for label, day in (("end", end), ("start", start)):
        if not calendar.FIRST_DATE <= day <= calendar.LAST_DATE:
            msg = f"{label} {day} is outside {calendar.FIRST_DATE} … {calendar.LAST_DATE}"
            raise InputError(msg)
    if start > today:
        raise InputError(f"start {start} is after the last completed session {today}")
    if start > end:
        raise InputError(f"start {start} is after end {end}")
    names = [s.symbol for s in statuses]
    bars = await store.read_marks(names, start=start, end=end)
    firsts = {s.symbol: s.first_date for s in statuses}
    counts = month_counts(calendar.sessions(start, end), bars, firsts)
    cells: dict[str, list[MonthCoverage]] = {name: [] for name in names}
    for symbol, month, sessions, present, valid in counts.iter_rows():
        cells[symbol].append(
            MonthCoverage(month=month, sessions=sessions, present=present, valid=valid)
        )
    return Coverage(
        start=start,
        end=end,
        months=month_labels(calendar.sessions(start, end)),
        symbols=tuple(
            SymbolCoverage(
                symbol=s.symbol,
                first_date=s.first_date,
                last_date=s.last_date,
                months=tuple(cells[s.symbol]),
            )
            for s in statuses
        ),
        symbols_total=len(every),
        next_after=next_after,
    )


def _clamp(day: dt.date) -> dt.date:
    """``day`` moved into the calendar's window (for defaults, never for asked dates)."""
    return min(max(day, calendar.FIRST_DATE), calendar.LAST_DATE)
