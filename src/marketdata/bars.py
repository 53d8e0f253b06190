"""The bar-frame contract: the columns every layer uses to pass daily bars around.

Bars travel as columns (a polars DataFrame), never as one object per row. ``date`` is the
exchange session date (America/New_York), not a UTC instant. Prices and volume are float64
exactly as the source sent them: nothing here rounds.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Final

import polars as pl

#: Columns of a bar as it arrives from a source (file, provider).
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

#: Columns that may be null in a bar frame; all others are required.
OPTIONAL_COLUMNS: Final[frozenset[str]] = frozenset({"vwap", "transactions"})

#: Columns of a bar as read back from storage (one symbol: no ``symbol`` column).
STORED_SCHEMA: Final[dict[str, pl.DataType]] = {
    "date": pl.Date(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "vwap": pl.Float64(),
    "transactions": pl.Int64(),
    "source": pl.String(),
    "quality": pl.Float64(),
    "flags": pl.Int64(),
    "validated": pl.Boolean(),
    "ingested_at": pl.Datetime("us", "UTC"),
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

_SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,19}$")
MAX_SYMBOL_LENGTH: Final = 20


def is_valid_symbol(symbol: str) -> bool:
    """Upper-case letters, digits, ``.`` and ``-``; starts with a letter or digit; ≤ 20 chars."""
    return bool(_SYMBOL_RE.match(symbol))


def empty_bars() -> pl.DataFrame:
    """A bar frame with no rows."""
    return pl.DataFrame(schema=BAR_SCHEMA)


def empty_stored() -> pl.DataFrame:
    """A stored-bar frame with no rows."""
    return pl.DataFrame(schema=STORED_SCHEMA)


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Return ``frame`` with exactly the bar columns, in order, with their dtypes.

    Missing optional columns are added as nulls; a missing required column is an error.
    """
    missing = [c for c in BAR_SCHEMA if c not in frame.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        msg = f"bar frame lacks required columns: {', '.join(missing)}"
        raise ValueError(msg)
    return frame.select(
        (pl.col(c) if c in frame.columns else pl.lit(None)).cast(dtype).alias(c)
        for c, dtype in BAR_SCHEMA.items()
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DateRange:
    """An inclusive range of session dates; either end may be open."""

    start: dt.date | None = None
    end: dt.date | None = None

    def __post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.start > self.end:
            msg = f"start {self.start} is after end {self.end}"
            raise ValueError(msg)
