"""Scoring bars as they are written and on demand, and keeping gap counts current.

Every write of bars goes through :func:`write_bars`: the new bars are validated together with
the stored bars around them (the rules look back :attr:`Thresholds.lookback` bars), written
with their scores and log rows in one transaction, and stored bars just after them that score
differently now (a filled gap changes the next bar's return) are re-scored. The rules only look
back, so appending never changes older scores. :func:`revalidate` re-scores whole symbols (after
thresholds change, or corporate actions arrive).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from marketdata import calendar
from marketdata.bars import BAR_SCHEMA
from marketdata.storage.base import Store, UpsertCounts
from marketdata.storage.jobs import Checkpoint
from marketdata.validation import (
    DEFAULT_THRESHOLDS,
    Flag,
    GapRange,
    Thresholds,
    missing_sessions,
    validate,
)

log = logging.getLogger(__name__)

_BAR_COLUMNS = list(BAR_SCHEMA)
_KEY = ["symbol", "date"]
_SCORES = ["flags", "quality", "validated"]
_NON_SESSION = "not_a_session"


#: Rows failing this cannot be stored (SQLite turns NaN into NULL) and are skipped.
_FINITE = pl.all_horizontal(
    pl.col(c).is_finite() for c in ("open", "high", "low", "close", "volume")
).fill_null(False)


async def write_bars(
    store: Store,
    frame: pl.DataFrame,
    *,
    source: str,
    at: dt.datetime,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    checkpoint: Checkpoint | None = None,
) -> UpsertCounts:
    """Validate ``frame`` in the context of stored bars, write it scored, refresh gap counts.

    A (symbol, date) repeated in ``frame`` keeps its last row, flagged ``duplicate_date``. Rows
    whose prices or volume are not finite numbers cannot be stored and are skipped (logged).
    A ``checkpoint`` is saved in the same transaction as the bars (even when none are left).
    """
    if frame.is_empty():
        if checkpoint is not None:
            await store.save_progress(checkpoint, at=at)
        return UpsertCounts()
    bars = frame.select(_BAR_COLUMNS)
    bad = bars.filter(~_FINITE)
    if bad.height:
        log.warning(
            "skipped %d bar(s) with non-finite prices or volume (first: %s %s)",
            bad.height,
            bad["symbol"][0],
            bad["date"][0],
            extra={"event": "bars_skipped", "count": bad.height},
        )
        bars = bars.filter(_FINITE)
        if bars.is_empty():
            if checkpoint is not None:
                await store.save_progress(checkpoint, at=at)
            return UpsertCounts()
    symbols = bars["symbol"].unique().sort().to_list()
    stored = {s.symbol for s in await store.symbol_statuses(symbols) if s.bar_count}
    spans = (
        bars.filter(pl.col("symbol").is_in(stored))
        .group_by("symbol")
        .agg(pl.col("date").min().alias("lo"), pl.col("date").max().alias("hi"))
    )
    # The rules look back over *valid* bars; twice the window leaves room for invalid ones.
    context = await store.read_neighbourhood(spans, rows=2 * thresholds.lookback)
    new = bars.with_columns(pl.lit(True).alias("_new"))
    old = (
        context.select(_BAR_COLUMNS)
        .join(bars.select(_KEY), on=_KEY, how="anti")
        .with_columns(pl.lit(False).alias("_new"))
    )
    merged = pl.concat([old, new])
    splits = await store.read_splits(symbols)
    dividends = await store.read_dividends(symbols)
    # In a worker thread: the event loop (the API, other writers) keeps running meanwhile.
    result = await asyncio.to_thread(
        validate, merged, splits=splits, dividends=dividends, thresholds=thresholds
    )
    scored = pl.concat([merged, result.scores.select(_SCORES)], how="horizontal")

    fresh = scored.filter(pl.col("_new"))
    fresh_log = result.log
    if ((result.scores["flags"] & int(Flag.DUPLICATE_DATE)) != 0).any():
        fresh = fresh.unique(_KEY, keep="last", maintain_order=True)
        fresh_log = fresh_log.unique(maintain_order=True)
    if old.height:
        fresh_log = fresh_log.join(fresh.select(_KEY), on=_KEY, how="semi")
    counts = await store.upsert_bars(
        fresh.drop("_new"), source=source, at=at, log=fresh_log, checkpoint=checkpoint
    )

    # Stored bars after the first new bar of their symbol may score differently now.
    if not context.is_empty():
        firsts = spans.select("symbol", "lo")
        later = (
            scored.filter(~pl.col("_new"))
            .join(firsts, on="symbol")
            .filter(pl.col("date") > pl.col("lo"))
            .join(context.select(*_KEY, *(pl.col(c).alias(f"_was_{c}") for c in _SCORES)), on=_KEY)
            .filter(pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"_was_{c}")) for c in _SCORES))
        )
        if later.height:
            await store.write_scores(
                later.select(*_KEY, *_SCORES),
                log=result.log.join(later.select(_KEY), on=_KEY, how="semi"),
                at=at,
            )
    await refresh_gap_counts(store, symbols)
    return counts


async def refresh_gap_counts(store: Store, symbols: Sequence[str] | None = None) -> None:
    """Recompute missing-session counts of ``symbols`` (all when None) from their summaries.

    Missing = XNYS sessions between the first and last stored date − stored bars on sessions;
    bars on other dates are known from the ``not_a_session`` entries of the validation log.
    """
    statuses = await store.symbol_statuses(symbols)
    if not statuses:
        return
    off = await store.rule_counts([s.symbol for s in statuses])
    off_session = dict(
        off.filter(pl.col("rule") == _NON_SESSION).select("symbol", "count").iter_rows()
    )
    all_sessions = calendar.sessions(calendar.FIRST_DATE, calendar.LAST_DATE)
    rows = []
    for s in statuses:
        if s.first_date is None or s.last_date is None:
            continue
        lo = np.searchsorted(all_sessions, np.datetime64(s.first_date, "D"), side="left")
        hi = np.searchsorted(all_sessions, np.datetime64(s.last_date, "D"), side="right")
        on_sessions = s.bar_count - off_session.get(s.symbol, 0)
        rows.append((s.symbol, max(0, int(hi - lo) - on_sessions)))
    if rows:
        await store.set_gap_counts(
            pl.DataFrame(rows, schema={"symbol": pl.String, "gap_count": pl.Int64}, orient="row")
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolQuality:
    """The outcome of scoring one symbol's stored bars."""

    symbol: str
    bars: int
    validated: int
    changed: int  # bars whose scores changed
    rules: dict[str, int] = field(default_factory=dict)  # rule name → bars it fired on
    gaps: tuple[GapRange, ...] = ()

    @property
    def rate(self) -> float:
        """Share of bars validated (1.0 for a symbol without bars)."""
        return self.validated / self.bars if self.bars else 1.0

    @property
    def missing(self) -> int:
        """Missing sessions between the first and last stored bar."""
        return sum(g.sessions for g in self.gaps)


async def revalidate(
    store: Store,
    symbols: Sequence[str] | None = None,
    *,
    at: dt.datetime,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    progress: Callable[[SymbolQuality], None] | None = None,
) -> list[SymbolQuality]:
    """Re-score every stored bar of ``symbols`` (all stored symbols when None)."""
    names = [s.symbol for s in await store.symbol_statuses(symbols)]
    results = []
    for symbol in names:
        bars = (await store.read_bars(symbol)).with_columns(pl.lit(symbol).alias("symbol"))
        result = validate(
            bars,
            splits=await store.read_splits([symbol]),
            dividends=await store.read_dividends([symbol]),
            thresholds=thresholds,
        )
        changed = await store.write_scores(result.scores, log=result.log, at=at)
        rules = dict(result.log.group_by("rule").len().sort("rule").iter_rows())
        quality = SymbolQuality(
            symbol=symbol,
            bars=bars.height,
            validated=int(result.scores["validated"].sum()),
            changed=changed,
            rules={str(k): int(v) for k, v in rules.items()},
            gaps=tuple(missing_sessions(bars["date"])),
        )
        results.append(quality)
        if progress:
            progress(quality)
    await refresh_gap_counts(store, names)
    return results


async def symbol_gaps(
    store: Store, symbol: str, *, start: dt.date | None = None, end: dt.date | None = None
) -> list[GapRange]:
    """Missing-session ranges of ``symbol`` that overlap [start, end]."""
    dates = (await store.read_bars(symbol))["date"]
    return [
        g
        for g in missing_sessions(dates)
        if (start is None or g.end >= start) and (end is None or g.start <= end)
    ]
