"""Reading a symbol's history, raw or adjusted for splits and dividends.

The one place that combines stored bars with stored corporate actions, so the API, the CLI and
verification all adjust the same way (see :mod:`marketdata.adjust`).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from marketdata.adjust import Adjustment, adjust_bars
from marketdata.storage.base import Store


async def read_history(
    store: Store,
    symbol: str,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    adjusted: Adjustment = "splits",
    validated_only: bool = False,
    min_quality: float | None = None,
    as_of: dt.datetime | None = None,
) -> pl.DataFrame:
    """Stored bars of ``symbol`` in [start, end], oldest first, adjusted as asked; with
    ``as_of``, as the database knew them then (adjusted with today's splits and dividends).

    Columns as :data:`~marketdata.storage.base.READ_SCHEMA`. Split factors depend only on
    dates, so a range read is adjusted exactly; a dividend factor needs the close before its
    ex-date, so ``adjusted="all"`` reads the whole series and filters afterwards.
    """

    async def in_range() -> pl.DataFrame:
        return await store.read_bars(
            symbol,
            start=start,
            end=end,
            validated_only=validated_only,
            min_quality=min_quality,
            as_of=as_of,
        )

    if adjusted == "none":
        return await in_range()
    splits = await store.read_splits([symbol])
    dividends = await store.read_dividends([symbol]) if adjusted == "all" else None
    if dividends is None or dividends.is_empty():
        return adjust_bars(await in_range(), splits=splits, adjusted="splits")
    bars = adjust_bars(
        await store.read_bars(symbol, as_of=as_of),
        splits=splits,
        dividends=dividends,
        adjusted="all",
    )
    keep = pl.lit(True)
    if start is not None:
        keep &= pl.col("date") >= start
    if end is not None:
        keep &= pl.col("date") <= end
    if validated_only:
        keep &= pl.col("validated")
    if min_quality is not None:
        keep &= pl.col("quality") >= min_quality
    return bars.filter(keep)
