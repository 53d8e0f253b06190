"""The provider interface: where daily bars and corporate actions come from.

Every provider answers in columns (polars frames following :mod:`marketdata.bars`), keyed by
the exchange session date in America/New_York. Bars are raw (unadjusted); adjustment happens on
read from the stored splits and dividends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

import polars as pl


class Provider(Protocol):
    """A source of daily bars, splits and dividends."""

    @property
    def name(self) -> str:
        """Short name stored as the bars' ``source`` (``polygon``, ``synthetic``)."""
        ...

    async def daily_bars(self, symbol: str, start: dt.date, end: dt.date) -> pl.DataFrame:
        """Raw daily bars of ``symbol`` for sessions in [start, end] (``BAR_SCHEMA``)."""
        ...

    async def grouped_daily(self, session: dt.date) -> pl.DataFrame:
        """Raw daily bars of every symbol for one session (``BAR_SCHEMA``)."""
        ...

    async def splits(
        self, symbols: Sequence[str] | None = None, *, since: dt.date | None = None
    ) -> pl.DataFrame:
        """Splits executed on or after ``since`` (``SPLIT_SCHEMA``); all symbols when None."""
        ...

    async def dividends(
        self, symbols: Sequence[str] | None = None, *, since: dt.date | None = None
    ) -> pl.DataFrame:
        """Dividends going ex on or after ``since`` (``DIVIDEND_SCHEMA``)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
