"""Adjusted prices, computed on read from raw bars and corporate actions.

Bars are stored raw, exactly as the vendor sent them; splits and dividends are stored beside
them. An adjusted series is derived when it is read, so a split learned later changes adjusted
reads at once, with nothing to re-download or rewrite.

- ``none``: the raw bars.
- ``splits`` (Polygon's ``adjusted=true``): every bar before a split's execution date is put in
  post-split units: prices × ``split_from / split_to``, volume × ``split_to / split_from``.
  The products of all later ``split_from`` and ``split_to`` values are formed separately and
  applied as ``price × from / to``, so a 28-for-1 history is an exact division by 28.
- ``all``: ``splits``, then the standard dividend back-adjustment: every bar before an
  ex-dividend date is multiplied by ``1 − dividend / previous close`` (the raw close of the
  last bar before the ex-date, put in the ex-date's share units when a split falls between).
  Dividends that cannot be applied (no earlier bar, or a factor outside (0, 1]) are skipped.

Pure: frames in, frames out.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

import numpy as np
import polars as pl

Adjustment = Literal["none", "splits", "all"]

#: The accepted ``adjusted=`` values, in the order they are documented.
ADJUSTMENTS: Final[tuple[Adjustment, ...]] = get_args(Adjustment)

#: Columns holding prices (scaled by adjustment); ``volume`` is scaled inversely by splits.
PRICE_COLUMNS: Final = ("open", "high", "low", "close", "vwap")


def _days(values: pl.Series) -> np.ndarray:
    return values.cast(pl.Date).cast(pl.Int32).to_numpy().astype(np.int64)


def _later_products(event_days: np.ndarray, values: np.ndarray, bar_days: np.ndarray) -> np.ndarray:
    """For each bar, the product of ``values`` of the events strictly after the bar's day."""
    order = np.argsort(event_days, kind="stable")
    days, vals = event_days[order], values[order]
    # suffix[k] = product of vals[k:], with suffix[len] = 1
    suffix = np.ones(len(vals) + 1)
    if len(vals):
        suffix[:-1] = np.cumprod(vals[::-1])[::-1]
    return suffix[np.searchsorted(days, bar_days, side="right")]


def split_products(dates: pl.Series, splits: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per bar date: (Π split_from, Π split_to) over splits executed after that date."""
    days = _days(dates)
    usable = splits.filter(
        (pl.col("split_from") > 0)
        & (pl.col("split_to") > 0)
        & pl.col("split_from").is_finite()
        & pl.col("split_to").is_finite()
    )
    ex = _days(usable["execution_date"])
    return (
        _later_products(ex, usable["split_from"].to_numpy(), days),
        _later_products(ex, usable["split_to"].to_numpy(), days),
    )


def dividend_factors(
    dates: pl.Series, closes: pl.Series, splits: pl.DataFrame, dividends: pl.DataFrame
) -> np.ndarray:
    """Per bar (sorted by date): the product of ``1 − D / previous close`` of later ex-dates."""
    days = _days(dates)
    if dividends.is_empty() or len(days) == 0:
        return np.ones(len(days))
    per_date = dividends.group_by("ex_dividend_date").agg(pl.col("cash_amount").sum())
    ex = _days(per_date["ex_dividend_date"])
    amount = per_date["cash_amount"].to_numpy()
    prev = np.searchsorted(days, ex, side="left") - 1  # last bar before the ex-date
    has_prev = prev >= 0
    prev_close = np.where(has_prev, closes.to_numpy()[np.maximum(prev, 0)], np.nan)
    # Put the previous close in the ex-date's share units when a split lies in between.
    num_p, den_p = split_products(dates[np.maximum(prev, 0)], splits)
    num_e, den_e = split_products(per_date["ex_dividend_date"], splits)
    units = (num_p / den_p) / (num_e / den_e)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = 1.0 - amount / (prev_close * units)
    usable = has_prev & np.isfinite(factor) & (factor > 0.0) & (factor <= 1.0)
    return _later_products(ex[usable], factor[usable], days)


def _untouched(bars: pl.DataFrame, splits: pl.DataFrame, dividends: pl.DataFrame | None) -> bool:
    """Whether no split or dividend falls after the first bar, so adjusting changes nothing
    (the common case: a series without actions skips the arithmetic)."""
    first = bars["date"].min()
    events = [splits["execution_date"]]
    if dividends is not None:
        events.append(dividends["ex_dividend_date"])
    return all(not (days > first).any() for days in events)


def adjust_bars(
    bars: pl.DataFrame,
    *,
    splits: pl.DataFrame,
    dividends: pl.DataFrame | None = None,
    adjusted: Adjustment,
) -> pl.DataFrame:
    """``bars`` of one symbol (sorted by date) adjusted as asked; other columns untouched.

    ``splits`` and ``dividends`` are that symbol's, in the frames of :mod:`marketdata.bars`.
    """
    if adjusted not in ADJUSTMENTS:
        msg = f"adjusted must be one of {', '.join(ADJUSTMENTS)}, not {adjusted!r}"
        raise ValueError(msg)
    if adjusted == "none" or bars.is_empty():
        return bars
    if _untouched(bars, splits, dividends if adjusted == "all" else None):
        return bars
    num, den = split_products(bars["date"], splits)
    scale = np.ones(bars.height)
    if adjusted == "all" and dividends is not None:
        scale = dividend_factors(bars["date"], bars["close"], splits, dividends)
    num_s = pl.Series(num)
    den_s = pl.Series(den)
    scale_s = pl.Series(scale)
    present = [c for c in PRICE_COLUMNS if c in bars.columns]
    return bars.with_columns(
        *((pl.col(c) * num_s / den_s * scale_s).alias(c) for c in present),
        (pl.col("volume") * den_s / num_s).alias("volume"),
    )
