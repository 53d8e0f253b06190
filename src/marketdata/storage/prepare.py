"""Frames made ready for a write: the pure preparation both backends share.

Writes are idempotent upserts keyed by (symbol, date), so a frame must name each key once;
these functions type and order the columns a backend writes, fill in defaults, refuse repeated
keys, and work out what a chunk adds to ``symbol_status``. No I/O happens here.
:mod:`marketdata.storage.base` re-exports every name.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from marketdata.bars import BAR_SCHEMA, DIVIDEND_SCHEMA, LOG_SCHEMA, SCORE_SCHEMA, SPLIT_SCHEMA
from marketdata.storage.records import VALIDATION_DEFAULTS


def prepare_write(frame: pl.DataFrame, *, source: str, at: dt.datetime) -> pl.DataFrame:
    """The frame in the column order of ``bars``, with defaults filled in.

    Raises ``ValueError`` when (symbol, date) repeats: the caller decides which row wins.
    """
    if at.tzinfo is None:
        msg = "ingestion time must be timezone-aware"
        raise ValueError(msg)
    if frame.select(pl.struct("symbol", "date").is_duplicated().any()).item():
        msg = "frame has duplicate (symbol, date) rows"
        raise ValueError(msg)
    cols = [pl.col(c).cast(t) for c, t in BAR_SCHEMA.items()]
    cols.append(pl.lit(source, pl.String()).alias("source"))
    for name, (dtype, default) in VALIDATION_DEFAULTS.items():
        expr = pl.col(name) if name in frame.columns else pl.lit(default)
        cols.append(
            expr.cast(dtype).fill_null(default).alias(name)
            if default is not None
            else expr.cast(dtype).alias(name)
        )
    cols.append(pl.lit(at.astimezone(dt.UTC)).cast(pl.Datetime("us", "UTC")).alias("ingested_at"))
    return frame.select(cols)


def has_scores(frame: pl.DataFrame) -> bool:
    """Whether ``frame`` carries all three score columns (so they may overwrite stored ones)."""
    return all(name in frame.columns for name in VALIDATION_DEFAULTS)


def prepare_log(log: pl.DataFrame) -> pl.DataFrame:
    """``log`` in :data:`LOG_SCHEMA` column order and types."""
    return log.select(pl.col(c).cast(t) for c, t in LOG_SCHEMA.items())


def prepare_scores(scores: pl.DataFrame) -> pl.DataFrame:
    """``scores`` in :data:`SCORE_SCHEMA`; refuses repeated (symbol, date)."""
    if scores.select(pl.struct("symbol", "date").is_duplicated().any()).item():
        msg = "scores have duplicate (symbol, date) rows"
        raise ValueError(msg)
    return scores.select(pl.col(c).cast(t) for c, t in SCORE_SCHEMA.items())


def prepare_splits(frame: pl.DataFrame, *, source: str) -> pl.DataFrame:
    """Splits ready to store: typed, complete, one row per (symbol, date) (the last wins)."""
    out = frame.select(pl.col(c).cast(t) for c, t in SPLIT_SCHEMA.items()).drop_nulls()
    return out.unique(["symbol", "execution_date"], keep="last", maintain_order=True).with_columns(
        pl.lit(source).alias("source")
    )


def prepare_dividends(frame: pl.DataFrame, *, source: str) -> pl.DataFrame:
    """Dividends ready to store; a missing type counts as a regular cash dividend (``CD``).

    Only symbol, ex-date and amount are required; absent optional columns are null.
    """
    out = (
        frame.select(
            (pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c)
            for c, t in DIVIDEND_SCHEMA.items()
        )
        .with_columns(pl.col("dividend_type").fill_null("CD"))
        .drop_nulls(["symbol", "ex_dividend_date", "cash_amount"])
    )
    return out.unique(
        ["symbol", "ex_dividend_date", "dividend_type"], keep="last", maintain_order=True
    ).with_columns(pl.lit(source).alias("source"))


def status_deltas(frame: pl.DataFrame) -> pl.DataFrame:
    """Per-symbol first/last date, count and validated count of newly inserted rows."""
    return frame.group_by("symbol").agg(
        pl.col("date").min().alias("first_date"),
        pl.col("date").max().alias("last_date"),
        pl.len().alias("inserted"),
        pl.col("validated").cast(pl.Int64).sum().alias("validated"),
    )


def disjoint_from_stored(
    frame: pl.DataFrame, stored: dict[str, tuple[dt.date | None, dt.date | None]]
) -> bool:
    """True when no row of ``frame`` can collide with a stored bar.

    ``stored`` maps symbol → (first_date, last_date) from ``symbol_status``; a symbol's bars all
    lie in that range, so a chunk entirely outside it needs no comparison with stored rows.
    """
    spans = frame.group_by("symbol").agg(
        pl.col("date").min().alias("lo"), pl.col("date").max().alias("hi")
    )
    for symbol, lo, hi in spans.iter_rows():
        first, last = stored.get(symbol, (None, None))
        if first is None or last is None:
            continue
        if not (hi < first or lo > last):
            return False
    return True
