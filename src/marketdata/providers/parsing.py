"""Turning raw tabular input (text or typed columns) into a bar frame, row errors included.

Pure: columns in, (good bars, rejected rows) out. Used by the file provider for CSV, CSV.gz and
Parquet, in both supported layouts:

- **standard**: ``symbol,date,open,high,low,close,volume`` plus optional ``vwap,transactions``;
  ``date`` is an ISO session date (YYYY-MM-DD);
- **polygon flat file** (day aggregates): ``ticker,volume,open,close,high,low,window_start,
  transactions``; ``window_start`` is Unix nanoseconds at 00:00 America/New_York.

Symbols follow the one rule of :mod:`marketdata.symbols`, checked column-wise: trimmed and
upper-cased on the way in (``aapl`` is stored as AAPL), and a row whose symbol breaks the rule
is rejected with the rule as its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import polars as pl

from marketdata import symbols
from marketdata.bars import BAR_SCHEMA, MAX_SYMBOL_LENGTH
from marketdata.errors import InputError

Layout = Literal["standard", "polygon-flat"]

STANDARD_REQUIRED: Final = ("symbol", "date", "open", "high", "low", "close", "volume")
STANDARD_OPTIONAL: Final = ("vwap", "transactions")
FLAT_REQUIRED: Final = ("ticker", "volume", "open", "close", "high", "low", "window_start")
FLAT_OPTIONAL: Final = ("transactions",)
EXCHANGE_TZ: Final = "America/New_York"
LINE: Final = "_line"  # the input line (or row) number travels in this column
_PRICE_COLUMNS: Final = ("open", "high", "low", "close", "volume", "vwap")
OPTIONAL_VALUES: Final = ("vwap", "transactions")
#: :func:`marketdata.symbols.normalize_symbol`'s rule as a whole-string regex for polars, so a
#: column of any length is checked in one vectorized pass (tests hold the two in step).
_SYMBOL_REGEX: Final = f"^(?:{symbols.PATTERN.pattern})$"  # the one rule, not a copy of it


def clean_symbol(column: str = "symbol") -> pl.Expr:
    """``column`` normalized as :func:`~marketdata.symbols.normalize_symbol` does: trimmed, and
    upper-cased unless already in the vendor's form (``AMpB`` stays, ``aapl`` is AAPL)."""
    return normalize_case(pl.col(column).cast(pl.String).str.strip_chars())


def normalize_case(trimmed: pl.Expr) -> pl.Expr:
    """Each trimmed value as it is when it already is a symbol, else upper-cased."""
    kept = trimmed.str.contains(_SYMBOL_REGEX).fill_null(False)
    return pl.when(kept).then(trimmed).otherwise(trimmed.str.to_uppercase())


def is_valid_symbol(cleaned: pl.Expr) -> pl.Expr:
    """Whether each cleaned value is a valid symbol (``symbols.RULE``); null is not."""
    valid = (cleaned.str.len_chars() <= symbols.MAX_LENGTH) & cleaned.str.contains(_SYMBOL_REGEX)
    return valid.fill_null(False)


def normalize_symbol_column(frame: pl.DataFrame, *, name: str) -> pl.DataFrame:
    """``frame`` with its ``symbol`` column normalized; any invalid one is an InputError.

    For tables that are taken or refused whole (splits, dividends): the error names ``name``,
    how many rows are bad and the first of them.
    """
    cleaned = frame.with_columns(clean_symbol())
    bad = cleaned.with_row_index("_row").filter(~is_valid_symbol(pl.col("symbol")))
    if bad.height:
        first = frame["symbol"][int(bad["_row"][0])]
        shown = str(first) if first is None or len(str(first)) <= 40 else str(first)[:40] + "…"
        msg = (
            f"{name}: {bad.height:,} row(s) with an invalid symbol (first: data row "
            f"{int(bad['_row'][0]) + 1}, {shown!r}): a symbol has {symbols.RULE}"
        )
        raise InputError(msg)
    return cleaned


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


Check = tuple[pl.Expr, pl.Expr]  # (row is bad, reason text); reasons are built for bad rows only


def _number(col: str, dtype: pl.DataType, *, required: bool) -> tuple[pl.Expr, list[Check]]:
    """The parsed value and the checks of a numeric input column of any source dtype."""
    text = pl.col(col).cast(pl.String).str.strip_chars()
    given = text.is_not_null() & (text != "")
    as_float = text.cast(pl.Float64, strict=False)
    checks: list[Check] = []
    if required:
        checks.append((~given, pl.lit(f"{col} is empty")))
    checks.append(
        (given & as_float.is_null(), pl.format("unparsable {} '{}'", pl.lit(col), _shown(col)))
    )
    if dtype == pl.Int64():
        # Digits are read as an integer, exactly (a float would round past 2**53); forms like
        # "1e3" or "12.0" go through the float, when it holds them exactly.
        as_int = text.cast(pl.Int64, strict=False)
        exact = as_float.is_finite() & (as_float == as_float.floor()) & (as_float.abs() < 2.0**53)
        whole = as_int.is_not_null() | exact
        checks.append(
            (
                as_float.is_not_null() & ~whole,
                pl.format("{} must be a whole number, got '{}'", pl.lit(col), _shown(col)),
            )
        )
        value = pl.coalesce(as_int, pl.when(exact).then(as_float).cast(pl.Int64))
        return value, checks
    checks.append(
        (
            as_float.is_not_null() & ~as_float.is_finite(),
            pl.format("{} is not a finite number: '{}'", pl.lit(col), _shown(col)),
        )
    )
    return as_float, checks


def _session_date(frame: pl.DataFrame, layout: Layout) -> tuple[pl.Expr, list[Check]]:
    if layout == "polygon-flat":
        text = pl.col("window_start").cast(pl.String).str.strip_chars()
        ns = text.cast(pl.Int64, strict=False)
        value = (
            pl.from_epoch(ns, time_unit="ns")
            .dt.replace_time_zone("UTC")
            .dt.convert_time_zone(EXCHANGE_TZ)
            .dt.date()
        )
        empty = text.is_null() | (text == "")
        return value, [
            (empty, pl.lit("window_start is empty")),
            (
                ~empty & ns.is_null(),
                pl.format("unparsable window_start '{}'", _shown("window_start")),
            ),
        ]
    dtype = frame.schema["date"]
    if dtype == pl.Date():
        return pl.col("date"), [(pl.col("date").is_null(), pl.lit("date is empty"))]
    if isinstance(dtype, pl.Datetime):
        value = pl.col("date")
        if dtype.time_zone is not None:
            value = value.dt.convert_time_zone(EXCHANGE_TZ)
        return value.dt.date(), [(pl.col("date").is_null(), pl.lit("date is empty"))]
    text = pl.col("date").cast(pl.String).str.strip_chars()
    value = text.str.to_date("%Y-%m-%d", strict=False)
    empty = text.is_null() | (text == "")
    return value, [
        (empty, pl.lit("date is empty")),
        (
            ~empty & value.is_null(),
            pl.format("unparsable date '{}' (expected YYYY-MM-DD)", _shown("date")),
        ),
    ]


def parse_chunk(raw: pl.DataFrame, layout: Layout, *, verbatim_symbols: bool = False) -> Parsed:
    """Parse one chunk of input columns (lower-case names, plus ``_line``) into bars.

    Each bad row is rejected with the first reason found; a (symbol, date) that repeats within
    the chunk keeps its last row and rejects the earlier ones. Symbols are normalized and held
    to the symbol rule, unless ``verbatim_symbols``: a marketdata dataset brings back what its
    database stored, as it was (only an empty, over-long or space-holding symbol is refused).
    """
    frame = raw.rename({c: c.strip().lower() for c in raw.columns if c != LINE})
    if layout == "polygon-flat":
        frame = frame.rename({"ticker": "symbol"})
    for optional in STANDARD_OPTIONAL:
        if optional not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias(optional))

    # Symbols are trimmed and upper-cased unless already in the vendor's form (``aapl`` is
    # AAPL, ``AMpB`` stays) and must follow the one symbol rule of marketdata.symbols; the
    # first matching reason below is the one reported.
    symbol = pl.col("symbol").cast(pl.String).str.strip_chars()
    if not verbatim_symbols:
        symbol = normalize_case(symbol)
    checks: list[Check] = [
        (symbol.is_null() | (symbol == ""), pl.lit("symbol is empty")),
        (
            symbol.str.len_chars() > MAX_SYMBOL_LENGTH,
            pl.format(
                "symbol '{}' is longer than {} characters",
                _shown("symbol"),
                pl.lit(MAX_SYMBOL_LENGTH),
            ),
        ),
        (
            symbol.str.contains(r"[\s,\"']"),
            pl.format("symbol '{}' contains spaces, commas or quotes", _shown("symbol")),
        ),
    ]
    if not verbatim_symbols:
        checks.append(
            (
                ~is_valid_symbol(symbol),
                pl.format(
                    "invalid symbol '{}': a symbol has {}", _shown("symbol"), pl.lit(symbols.RULE)
                ),
            )
        )
    values: dict[str, pl.Expr] = {"symbol": symbol}
    values["date"], date_checks = _session_date(frame, layout)
    checks += date_checks
    for col in _PRICE_COLUMNS:
        values[col], col_checks = _number(col, pl.Float64(), required=col != "vwap")
        checks += col_checks
    values["transactions"], tx_checks = _number("transactions", pl.Int64(), required=False)
    checks += tx_checks

    # Cheap pass: parse every column once and flag bad rows from the parsed values. Reason
    # strings are built in a second pass over the bad rows only (formatting them for every row
    # would dominate the parse time).
    given = {
        f"_given_{c}": pl.col(c).cast(pl.String).str.strip_chars().str.len_bytes().fill_null(0) > 0
        for c in OPTIONAL_VALUES
    }
    parsed = frame.select(
        pl.col(LINE),
        *(expr.alias(name) for name, expr in values.items()),
        *(expr.alias(name) for name, expr in given.items()),
    )
    sym = pl.col("symbol")
    required = [c for c in _PRICE_COLUMNS if c not in OPTIONAL_VALUES]
    symbol_bad = (
        (sym.is_null() | (sym == "") | (sym.str.len_chars() > MAX_SYMBOL_LENGTH))
        | sym.str.contains(r"[\s,\"']")
        if verbatim_symbols
        else ~is_valid_symbol(sym)
    )
    bad = pl.any_horizontal(
        symbol_bad,
        pl.col("date").is_null(),
        *(pl.col(c).is_null() | ~pl.col(c).is_finite() for c in required),
        *(pl.col(f"_given_{c}") & pl.col(c).is_null() for c in OPTIONAL_VALUES),
        ~pl.col("vwap").is_finite().fill_null(True),
    )
    parsed = parsed.with_columns(bad.fill_null(True).alias("_bad"))
    bad_mask = parsed["_bad"]
    if bad_mask.any():
        bad_rows = frame.filter(bad_mask).select(
            pl.col(LINE),
            pl.coalesce(
                [
                    *(pl.when(cond.fill_null(False)).then(reason) for cond, reason in checks),
                    pl.lit("invalid row"),
                ]
            ).alias("reason"),
        )
        good = parsed.filter(~bad_mask)
    else:
        bad_rows = pl.DataFrame(schema={LINE: pl.Int64, "reason": pl.String})
        good = parsed
    if good.select(pl.struct("symbol", "date").is_duplicated().any()).item():
        last_line = pl.col(LINE).max().over("symbol", "date")
        superseded = good.filter(pl.col(LINE) != last_line).select(
            LINE,
            pl.lit("superseded by a later row with the same symbol and date").alias("reason"),
        )
        good = good.filter(pl.col(LINE) == last_line)
        bad_rows = pl.concat([bad_rows, superseded])
    bars = good.select(pl.col(name).cast(dtype) for name, dtype in BAR_SCHEMA.items())
    return Parsed(bars=bars, rejected=bad_rows.sort(LINE))
