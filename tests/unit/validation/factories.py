"""Hand-built bar frames for the validation tests: calm series and planted defects."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

from marketdata import calendar
from marketdata.bars import BAR_SCHEMA

D = dt.date
START = D(2024, 1, 2)


def calm(
    symbol: str = "AAA",
    start: dt.date = START,
    n: int = 60,
    *,
    price: float = 100.0,
    volume: float = 1e6,
    seed: int = 0,
) -> pl.DataFrame:
    """``n`` consecutive XNYS sessions of a quiet stock that fires no rule.

    Daily returns stay within ±3 % and log volume within ±0.25 of its level, far inside every
    default threshold; high/low bracket open/close and vwap sits between them.
    """
    days = calendar.sessions(start, start + dt.timedelta(days=2 * n + 30))[:n]
    assert days.size == n
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(np.clip(rng.normal(0, 0.01, n), -0.03, 0.03)))
    open_ = close * np.exp(np.clip(rng.normal(0, 0.005, n), -0.01, 0.01))
    high = np.maximum(open_, close) * 1.004
    low = np.minimum(open_, close) * 0.996
    return pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "date": days,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume * np.exp(np.clip(rng.normal(0, 0.1, n), -0.25, 0.25)),
            "vwap": (high + low + close) / 3,
            "transactions": np.full(n, 1000),
        },
        schema=BAR_SCHEMA,
    )


def plant(frame: pl.DataFrame, row: int, **values: Any) -> pl.DataFrame:
    """``frame`` with the given columns replaced in one row (None means null)."""
    index = pl.int_range(pl.len()) == row
    return frame.with_columns(
        pl.when(index)
        .then(pl.lit(value, dtype=frame.schema[name]))
        .otherwise(pl.col(name))
        .alias(name)
        for name, value in values.items()
    )


def scale_from(
    frame: pl.DataFrame, row: int, factor: float, *, volume: float = 1.0
) -> pl.DataFrame:
    """Prices from ``row`` on multiplied by ``factor`` (a level shift), volume by ``volume``."""
    later = pl.int_range(pl.len()) >= row
    prices = ("open", "high", "low", "close", "vwap")
    return frame.with_columns(
        *(pl.when(later).then(pl.col(c) * factor).otherwise(pl.col(c)).alias(c) for c in prices),
        pl.when(later).then(pl.col("volume") * volume).otherwise(pl.col("volume")).alias("volume"),
    )


def bar(symbol: str, day: dt.date, **values: float | None) -> dict[str, Any]:
    """One sane bar as a row dict, with overrides."""
    row: dict[str, Any] = {
        "symbol": symbol,
        "date": day,
        "open": 10.0,
        "high": 11.0,
        "low": 9.0,
        "close": 10.5,
        "volume": 1000.0,
        "vwap": 10.2,
        "transactions": 10,
    }
    row.update(values)
    return row


def frame_of(*rows: dict[str, Any]) -> pl.DataFrame:
    """A bar frame of row dicts."""
    return pl.DataFrame(list(rows), schema=BAR_SCHEMA)


def fired(result_log: pl.DataFrame, rule: str | None = None) -> list[tuple[str, dt.date, str]]:
    """(symbol, date, rule) of the log rows, optionally of one rule."""
    log = result_log if rule is None else result_log.filter(pl.col("rule") == rule)
    return list(log.select("symbol", "date", "rule").iter_rows())
