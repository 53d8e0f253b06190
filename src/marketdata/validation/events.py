"""Corporate actions as columns aligned with bars: the moves a split or dividend explains.

A ``split_from``-for-``split_to`` split executed on a bar's date makes raw prices jump by
``log(split_from / split_to)`` (a 1-for-20 split: log(1/20) ≈ −3.0); a cash dividend going ex
moves the close by ``log(1 − cash / previous close)``, which the jump rule works out itself.
Several actions of one symbol on one date add up. Actions with unusable numbers (missing,
zero, negative or infinite) are ignored rather than trusted.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl

__all__ = ["event_columns"]

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def event_columns(
    frame: pl.DataFrame,
    rows: Ints,
    *,
    splits: pl.DataFrame | None,
    dividends: pl.DataFrame | None,
) -> tuple[Floats, Floats]:
    """``(split_log, cash)`` for the bars at ``rows`` of ``frame`` (0 where nothing happened).

    ``split_log`` is the summed ``log(split_from / split_to)`` of splits executed on the bar's
    date, ``cash`` the summed cash dividends going ex on it.
    """
    split_log, cash = np.zeros(rows.size), np.zeros(rows.size)
    position = None
    for events, out in (
        (_splits(splits), split_log),
        (_dividends(dividends), cash),
    ):
        if events is None or events.is_empty() or rows.size == 0:
            continue
        if position is None:
            position = np.full(frame.height, -1, dtype=np.int64)
            position[rows] = np.arange(rows.size)
        matched = (
            frame.lazy()
            .select("symbol", "date")
            .with_row_index("row")
            .join(events.lazy(), on=["symbol", "date"], how="inner")
            .collect()
        )
        at = position[matched.get_column("row").to_numpy().astype(np.int64)]
        keep = at >= 0
        out[at[keep]] = matched.get_column("value").to_numpy()[keep]
    return split_log, cash


def _splits(splits: pl.DataFrame | None) -> pl.DataFrame | None:
    """Valid splits as (symbol, date, value = summed log(from / to))."""
    if splits is None or splits.is_empty():
        return None
    ratio_from = pl.col("split_from").cast(pl.Float64)
    ratio_to = pl.col("split_to").cast(pl.Float64)
    return _by_day(
        splits.filter(_usable(ratio_from) & _usable(ratio_to)).select(
            pl.col("symbol").cast(pl.String),
            pl.col("execution_date").cast(pl.Date).alias("date"),
            (ratio_from.log() - ratio_to.log()).alias("value"),
        )
    )


def _dividends(dividends: pl.DataFrame | None) -> pl.DataFrame | None:
    """Valid cash dividends as (symbol, date, value = summed cash amount)."""
    if dividends is None or dividends.is_empty():
        return None
    amount = pl.col("cash_amount").cast(pl.Float64)
    return _by_day(
        dividends.filter(_usable(amount)).select(
            pl.col("symbol").cast(pl.String),
            pl.col("ex_dividend_date").cast(pl.Date).alias("date"),
            amount.alias("value"),
        )
    )


def _usable(column: pl.Expr) -> pl.Expr:
    """Present, positive and finite."""
    return column.is_not_null() & (column > 0.0) & column.is_finite()


def _by_day(events: pl.DataFrame) -> pl.DataFrame:
    """One row per (symbol, date), values summed; rows without a symbol or date dropped."""
    return (
        events.drop_nulls(["symbol", "date"]).group_by("symbol", "date").agg(pl.col("value").sum())
    )
