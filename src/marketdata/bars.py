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


#: A bar's verdict from validation: flag bitmask, quality in [0, 1], validated (no hard rule).
SCORE_SCHEMA: Final[dict[str, pl.DataType]] = {
    "symbol": pl.String(),
    "date": pl.Date(),
    "flags": pl.Int64(),
    "quality": pl.Float64(),
    "validated": pl.Boolean(),
}

#: One row per (bar, rule that fired): what ``validation_log`` stores.
LOG_SCHEMA: Final[dict[str, pl.DataType]] = {
    "symbol": pl.String(),
    "date": pl.Date(),
    "rule": pl.String(),
    "severity": pl.String(),
    "value": pl.Float64(),
    "threshold": pl.Float64(),
}

#: Stock splits: a ``split_from``-for-``split_to`` split takes effect on ``execution_date``
#: (a 4-for-1 split is from=1, to=4; pre-split prices × from/to are comparable to later ones).
SPLIT_SCHEMA: Final[dict[str, pl.DataType]] = {
    "symbol": pl.String(),
    "execution_date": pl.Date(),
    "split_from": pl.Float64(),
    "split_to": pl.Float64(),
}

#: Cash dividends, not split-adjusted (as the vendor reports them).
DIVIDEND_SCHEMA: Final[dict[str, pl.DataType]] = {
    "symbol": pl.String(),
    "ex_dividend_date": pl.Date(),
    "cash_amount": pl.Float64(),
    "declaration_date": pl.Date(),
    "record_date": pl.Date(),
    "pay_date": pl.Date(),
    "frequency": pl.Int64(),
    "dividend_type": pl.String(),
}


def empty_splits() -> pl.DataFrame:
    """A split frame with no rows."""
    return pl.DataFrame(schema=SPLIT_SCHEMA)


def empty_dividends() -> pl.DataFrame:
    """A dividend frame with no rows."""
    return pl.DataFrame(schema=DIVIDEND_SCHEMA)
