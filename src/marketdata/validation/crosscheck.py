"""Cross-source verification: one symbol's bars from two sources, compared field by field.

Pure: two frames in, a :class:`CrossCheck` out. Both frames must hold ``date`` and the compared
fields, one row per date, already adjusted the same way (the caller's job). A field's
difference is relative to the other source: ``|ours − theirs| / |theirs|``; a bar is within
tolerance when every compared field is. Values are compared as they are, NaN included:

- equal values (two zeros, two infinities) differ by 0; so do two missing ones (null or NaN);
- a value missing on one side only, or a non-zero value against their zero, differs by ``inf``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import polars as pl

#: The fields compared unless told otherwise.
DEFAULT_FIELDS: Final = ("open", "high", "low", "close", "volume")
#: Rows kept in :attr:`CrossCheck.worst` unless told otherwise.
DEFAULT_WORST: Final = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class Difference:
    """One field of one session where the sources disagree."""

    date: dt.date
    field: str
    ours: float | None
    theirs: float | None
    relative: float  # |ours − theirs| / |theirs|; ``inf`` when not comparable

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; non-finite numbers become ``null``."""
        return {
            "date": self.date.isoformat(),
            "field": self.field,
            "ours": _finite(self.ours),
            "theirs": _finite(self.theirs),
            "relative": _finite(self.relative),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CrossCheck:
    """How one symbol's bars agree with a second source."""

    symbol: str
    tolerance: float
    fields: tuple[str, ...]
    compared: int  # sessions present on both sides
    within: int  # of those, sessions whose every field is within tolerance
    outside: int  # field values beyond tolerance, over all compared sessions
    only_ours: tuple[dt.date, ...]
    only_theirs: tuple[dt.date, ...]
    worst: tuple[Difference, ...]  # largest non-zero differences first, within tolerance or not

    @property
    def share_within(self) -> float | None:
        """Share of compared sessions within tolerance; None when nothing was compared."""
        return self.within / self.compared if self.compared else None

    @property
    def agrees(self) -> bool:
        """Every compared session within tolerance and no session on one side only."""
        return self.within == self.compared and not self.only_ours and not self.only_theirs

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "symbol": self.symbol,
            "tolerance": self.tolerance,
            "fields": list(self.fields),
            "compared": self.compared,
            "within": self.within,
            "share_within": self.share_within,
            "outside": self.outside,
            "agrees": self.agrees,
            "only_ours": [d.isoformat() for d in self.only_ours],
            "only_theirs": [d.isoformat() for d in self.only_theirs],
            "worst": [d.to_dict() for d in self.worst],
        }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def relative_difference(ours: pl.Expr, theirs: pl.Expr) -> pl.Expr:
    """``|ours − theirs| / |theirs|`` with the missing, zero and infinite cases of the module."""
    missing_o = ours.is_null() | ours.is_nan()
    missing_t = theirs.is_null() | theirs.is_nan()
    inf = float("inf")
    return (
        pl.when(missing_o & missing_t)
        .then(0.0)
        .when(missing_o | missing_t)
        .then(inf)
        .when(ours == theirs)
        .then(0.0)
        .when((theirs == 0) | ours.is_infinite() | theirs.is_infinite())
        .then(inf)
        .otherwise((ours - theirs).abs() / theirs.abs())
    )


def _side(frame: pl.DataFrame, fields: Sequence[str], suffix: str, name: str) -> pl.DataFrame:
    missing = [c for c in ("date", *fields) if c not in frame.columns]
    if missing:
        msg = f"{name} bars lack the column(s) {', '.join(missing)}"
        raise ValueError(msg)
    if frame["date"].is_duplicated().any():
        msg = f"{name} bars repeat a date"
        raise ValueError(msg)
    return frame.select(
        pl.col("date").cast(pl.Date),
        *(pl.col(c).cast(pl.Float64).alias(f"{c}{suffix}") for c in fields),
        pl.lit(value=True).alias(f"in{suffix}"),
    )


def compare_bars(
    ours: pl.DataFrame,
    theirs: pl.DataFrame,
    *,
    symbol: str,
    tolerance: float,
    fields: Sequence[str] = DEFAULT_FIELDS,
    worst: int = DEFAULT_WORST,
) -> CrossCheck:
    """Compare ``ours`` with ``theirs`` (one symbol, one row per date) field by field."""
    if not 0 < tolerance < 1:
        msg = f"tolerance must be in (0, 1), not {tolerance}"
        raise ValueError(msg)
    if not fields:
        msg = "compare at least one field"
        raise ValueError(msg)
    if worst < 0:
        msg = f"worst must be >= 0, not {worst}"
        raise ValueError(msg)
    joined = _side(ours, fields, "_o", "our").join(
        _side(theirs, fields, "_t", "their"), on="date", how="full", coalesce=True
    )
    in_o, in_t = pl.col("in_o").fill_null(value=False), pl.col("in_t").fill_null(value=False)
    only_o = joined.filter(in_o & ~in_t)["date"].sort()
    only_t = joined.filter(~in_o & in_t)["date"].sort()
    both = joined.filter(in_o & in_t)
    long = pl.concat(
        [
            both.select(
                "date",
                pl.lit(name).alias("field"),
                pl.col(f"{name}_o").alias("ours"),
                pl.col(f"{name}_t").alias("theirs"),
            )
            for name in fields
        ]
    ).with_columns(relative_difference(pl.col("ours"), pl.col("theirs")).alias("relative"))
    beyond = long.filter(pl.col("relative") > tolerance)
    top = (
        long.filter(pl.col("relative") > 0)
        .sort(["relative", "date", "field"], descending=[True, False, False])
        .head(worst)
    )
    return CrossCheck(
        symbol=symbol,
        tolerance=tolerance,
        fields=tuple(fields),
        compared=both.height,
        within=both.height - beyond["date"].n_unique(),
        outside=beyond.height,
        only_ours=tuple(only_o.to_list()),
        only_theirs=tuple(only_t.to_list()),
        worst=tuple(Difference(**row) for row in top.iter_rows(named=True)),
    )
