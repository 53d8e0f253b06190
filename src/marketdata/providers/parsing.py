"""Turning raw tabular input (text or typed columns) into a bar frame, row errors included.

Pure: columns in, (good bars, rejected rows) out. Used by the file provider for CSV, CSV.gz and
Parquet, in both supported layouts:

- **standard**: ``symbol,date,open,high,low,close,volume`` plus optional ``vwap,transactions``;
  ``date`` is an ISO session date (YYYY-MM-DD);
- **polygon flat file** (day aggregates): ``ticker,volume,open,close,high,low,window_start,
  transactions``; ``window_start`` is Unix nanoseconds at 00:00 America/New_York.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import polars as pl

from marketdata.bars import BAR_SCHEMA, MAX_SYMBOL_LENGTH

Layout = Literal["standard", "polygon-flat"]

STANDARD_REQUIRED: Final = ("symbol", "date", "open", "high", "low", "close", "volume")
STANDARD_OPTIONAL: Final = ("vwap", "transactions")
FLAT_REQUIRED: Final = ("ticker", "volume", "open", "close", "high", "low", "window_start")
FLAT_OPTIONAL: Final = ("transactions",)
EXCHANGE_TZ: Final = "America/New_York"
LINE: Final = "_line"  # the input line (or row) number travels in this column
_PRICE_COLUMNS: Final = ("open", "high", "low", "close", "volume", "vwap")


class LayoutError(ValueError):
    """The header matches no supported layout."""


def detect_layout(columns: list[str]) -> Layout:
    """Which layout a header is; raises :class:`LayoutError` with what was expected."""
    names = {c.strip().lower() for c in columns}
    for layout, required, optional in (
        ("standard", STANDARD_REQUIRED, STANDARD_OPTIONAL),
        ("polygon-flat", FLAT_REQUIRED, FLAT_OPTIONAL),
    ):
        if set(required) <= names:
            extra = names - set(required) - set(optional)
            if extra:
                msg = (
                    f"unexpected column(s) {', '.join(sorted(extra))}; the {layout} layout has "
                    f"{','.join(required)} and optionally {','.join(optional)}"
                )
                raise LayoutError(msg)
            return layout  # type: ignore[return-value]  # loop values are Layout literals
    msg = (
        "the header matches no supported layout: expected "
        f"{','.join(STANDARD_REQUIRED)}[,{','.join(STANDARD_OPTIONAL)}] "
        f"or Polygon flat files' {','.join(FLAT_REQUIRED)},{','.join(FLAT_OPTIONAL)}; "
        f"got {','.join(c.strip() for c in columns) or '(nothing)'}"
    )
    raise LayoutError(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class Parsed:
    """One chunk after parsing: good bars and the rows that were rejected."""

    bars: pl.DataFrame
    rejected: pl.DataFrame  # columns: _line (int), reason (str)


def _shown(col: str) -> pl.Expr:
    raw = pl.col(col).cast(pl.String)
    return pl.when(raw.str.len_chars() > 40).then(raw.str.slice(0, 40) + "…").otherwise(raw)


def _number(col: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    """(parsed value, reason-or-null) for a numeric input column of any source dtype."""
    raw = pl.col(col)
    text = raw.cast(pl.String).str.strip_chars()
    as_float = text.cast(pl.Float64, strict=False)
    if dtype == pl.Int64():
        whole = as_float.is_finite() & (as_float == as_float.floor()) & (as_float.abs() < 2.0**53)
        value = pl.when(whole).then(as_float).cast(pl.Int64)
        bad = (
            pl.when(text.is_not_null() & (text != "") & as_float.is_null())
            .then(pl.format("unparsable {} '{}'", pl.lit(col), _shown(col)))
            .when(as_float.is_not_null() & ~whole)
            .then(pl.format("{} must be a whole number, got '{}'", pl.lit(col), _shown(col)))
        )
        return value, bad
    value = as_float
    bad = (
        pl.when(text.is_not_null() & (text != "") & as_float.is_null())
        .then(pl.format("unparsable {} '{}'", pl.lit(col), _shown(col)))
        .when(as_float.is_not_null() & ~as_float.is_finite())
        .then(pl.format("{} is not a finite number: '{}'", pl.lit(col), _shown(col)))
    )
    return value, bad


def _session_date(frame: pl.DataFrame, layout: Layout) -> tuple[pl.Expr, pl.Expr]:
    if layout == "polygon-flat":
        text = pl.col("window_start").cast(pl.String).str.strip_chars()
        ns = text.cast(pl.Int64, strict=False)
        value = (
            pl.from_epoch(ns, time_unit="ns")
            .dt.replace_time_zone("UTC")
            .dt.convert_time_zone(EXCHANGE_TZ)
            .dt.date()
        )
        bad = (
            pl.when(text.is_null() | (text == ""))
            .then(pl.lit("window_start is empty"))
            .when(ns.is_null())
            .then(pl.format("unparsable window_start '{}'", _shown("window_start")))
        )
        return value, bad
    dtype = frame.schema["date"]
    if dtype == pl.Date():
        return pl.col("date"), pl.when(pl.col("date").is_null()).then(pl.lit("date is empty"))
    if isinstance(dtype, pl.Datetime):
        value = pl.col("date")
        if dtype.time_zone is not None:
            value = value.dt.convert_time_zone(EXCHANGE_TZ)
        return value.dt.date(), pl.when(pl.col("date").is_null()).then(pl.lit("date is empty"))
    text = pl.col("date").cast(pl.String).str.strip_chars()
    value = text.str.to_date("%Y-%m-%d", strict=False)
    bad = (
        pl.when(text.is_null() | (text == ""))
        .then(pl.lit("date is empty"))
        .when(value.is_null())
        .then(pl.format("unparsable date '{}' (expected YYYY-MM-DD)", _shown("date")))
    )
    return value, bad


def parse_chunk(raw: pl.DataFrame, layout: Layout) -> Parsed:
    """Parse one chunk of input columns (lower-case names, plus ``_line``) into bars.

    Each bad row is rejected with the first reason found; a (symbol, date) that repeats within
    the chunk keeps its last row and rejects the earlier ones.
    """
    frame = raw.rename({c: c.strip().lower() for c in raw.columns if c != LINE})
    if layout == "polygon-flat":
        frame = frame.rename({"ticker": "symbol"})
    for optional in STANDARD_OPTIONAL:
        if optional not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias(optional))

    symbol = pl.col("symbol").cast(pl.String).str.strip_chars()
    checks: list[pl.Expr] = [
        pl.when(symbol.is_null() | (symbol == ""))
        .then(pl.lit("symbol is empty"))
        .when(symbol.str.len_chars() > MAX_SYMBOL_LENGTH)
        .then(
            pl.format(
                "symbol '{}' is longer than {} characters",
                _shown("symbol"),
                pl.lit(MAX_SYMBOL_LENGTH),
            )
        )
        .when(symbol.str.contains(r"[\s,\"']"))
        .then(pl.format("symbol '{}' contains spaces, commas or quotes", _shown("symbol")))
    ]
    values: dict[str, pl.Expr] = {"symbol": symbol}
    date_value, date_bad = _session_date(frame, layout)
    values["date"] = date_value
    checks.append(date_bad)
    for col in _PRICE_COLUMNS:
        value, bad = _number(col, pl.Float64())
        values[col] = value
        checks.append(bad)
        if col != "vwap":
            text = pl.col(col).cast(pl.String).str.strip_chars()
            checks.append(pl.when(text.is_null() | (text == "")).then(pl.lit(f"{col} is empty")))
    value, bad = _number("transactions", pl.Int64())
    values["transactions"] = value
    checks.append(bad)

    parsed = frame.select(
        pl.col(LINE),
        *(expr.alias(name) for name, expr in values.items()),
        pl.coalesce(checks).alias("reason"),
    )
    bad_rows = parsed.filter(pl.col("reason").is_not_null()).select(LINE, "reason")
    good = parsed.filter(pl.col("reason").is_null())
    last_line = pl.col(LINE).max().over("symbol", "date")
    superseded = good.filter(pl.col(LINE) != last_line).select(
        LINE, pl.lit("superseded by a later row with the same symbol and date").alias("reason")
    )
    good = good.filter(pl.col(LINE) == last_line)
    bars = good.select(pl.col(name).cast(dtype) for name, dtype in BAR_SCHEMA.items())
    rejected = pl.concat([bad_rows, superseded]).sort(LINE)
    return Parsed(bars=bars, rejected=rejected)
