"""The bar-frame contract: the columns every layer uses to pass daily bars around.

Bars travel as columns (a polars DataFrame), never as one object per row. ``date`` is the
exchange session date (America/New_York), not a UTC instant. Prices and volume are float64
exactly as the source sent them: nothing here rounds.
"""

from __future__ import annotations

from typing import Final

import polars as pl

#: Columns of a bar as it arrives from a source (file, provider). ``vwap`` and
#: ``transactions`` may be null; every other column is required.
BAR_SCHEMA: Final[dict[str, pl.DataType]] = {
    "symbol": pl.String(),
    "date": pl.Date(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "vwap": pl.Float64(),
    "transactions": pl.Int64(),
}

#: The columns that define a bar's value; a change in any of them is a revision.
VALUE_COLUMNS: Final[tuple[str, ...]] = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "vwap",
    "transactions",
)

#: Longest symbol accepted anywhere.
MAX_SYMBOL_LENGTH: Final = 20


def empty_bars() -> pl.DataFrame:
    """A bar frame with no rows."""
    return pl.DataFrame(schema=BAR_SCHEMA)
