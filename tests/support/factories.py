"""Bar-frame factories with overridable defaults."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import polars as pl

from marketdata.bars import BAR_SCHEMA

AT = dt.datetime(2025, 1, 6, 22, 0, tzinfo=dt.UTC)


def business_days(start: dt.date, count: int) -> list[dt.date]:
    """``count`` weekdays from ``start`` (holidays are not this helper's business)."""
    days: list[dt.date] = []
    day = start
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def make_bars(
    symbol: str = "AAPL",
    *,
    start: dt.date = dt.date(2024, 1, 2),
    days: int = 5,
    dates: Sequence[dt.date] | None = None,
    **columns: Any,
) -> pl.DataFrame:
    """A valid bar frame for one symbol; any column can be overridden with a list or scalar."""
    when = list(dates) if dates is not None else business_days(start, days)
    n = len(when)
    base = [100.0 + i * 0.25 for i in range(n)]
    data: dict[str, Any] = {
        "symbol": [symbol] * n,
        "date": when,
        "open": base,
        "high": [b + 1.5 for b in base],
        "low": [b - 1.25 for b in base],
        "close": [b + 0.5 for b in base],
        "volume": [1_000_000.0 + i for i in range(n)],
        "vwap": [b + 0.125 for b in base],
        "transactions": [10_000 + i for i in range(n)],
    }
    for name, value in columns.items():
        data[name] = value if isinstance(value, list) else [value] * n
    schema = {**BAR_SCHEMA, **{k: v for k, v in _EXTRA.items() if k in data}}
    return pl.DataFrame(data, schema=schema)


_EXTRA: dict[str, pl.DataType] = {
    "quality": pl.Float64(),
    "flags": pl.Int64(),
    "validated": pl.Boolean(),
}

#: Values that a naive float → text → float path gets wrong.
AWKWARD_FLOATS = [1e-8, 123456.78901234, 0.1 + 0.2, 5e-324, 1.7976931348623157e308, 2.0**53 + 2]
