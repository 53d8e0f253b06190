"""``validate``: every rule over a bar frame of any symbols, in any order, in one pass.

The frame is sorted once by (symbol, date), unless it already is; row-local rules run in input
order, time-series rules in sorted order over the bars that passed the hard rules, and every
result is mapped back to input rows. Nothing here reads the clock, a file or the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from marketdata.validation.checks import (
    FULL_SESSION,
    NO_SESSION,
    check_constraints,
    row_local_fired,
    session_kinds,
)
from marketdata.validation.events import event_columns
from marketdata.validation.flags import HARD_MASK, Flag
from marketdata.validation.report import (
    LOG_SCHEMA,
    SCORE_SCHEMA,
    Fired,
    build_log,
    build_scores,
)
from marketdata.validation.series import series_rules
from marketdata.validation.thresholds import DEFAULT_THRESHOLDS, Thresholds

__all__ = ["Validation", "validate"]

Ints = npt.NDArray[np.int64]
_PRICES: Final = ("open", "high", "low", "close", "volume", "vwap")
_NO_DATE: Final = -(2**31)  # a null date: outside every calendar, sorts first


@dataclass(frozen=True, slots=True)
class Validation:
    """What ``validate`` found: per-bar ``scores`` (input order) and the rule ``log``.

    ``scores``: symbol, date, flags (Int64 mask of :class:`Flag`), quality (Float64 in
    [0, 1]), validated (no hard rule fired). ``log``: symbol, date, rule, severity, value,
    threshold; one row per fired rule, sorted by symbol, date, rule.
    """

    scores: pl.DataFrame
    log: pl.DataFrame


@dataclass(frozen=True, slots=True, kw_only=True)
class _Order:
    """How the input maps to (symbol, date) order: ``rows[i]`` is the i-th bar in that order."""

    rows: Ints | None  # None: the input already is in order
    group_start: npt.NDArray[np.bool_]  # sorted row starts a new symbol
    same_day: npt.NDArray[np.bool_]  # sorted row has the previous sorted row's symbol and day

    def to_input(self, positions: Ints) -> Ints:
        return positions if self.rows is None else self.rows[positions]


def validate(
    bars: pl.DataFrame,
    *,
    splits: pl.DataFrame | None = None,
    dividends: pl.DataFrame | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    sessions: npt.NDArray[np.datetime64] | None = None,
) -> Validation:
    """Check every bar of ``bars`` against every rule; never raises on bad values.

    ``bars`` needs symbol, date, open, high, low, close and volume (vwap may be null or
    missing; other columns are ignored); rows may come in any order and repeat. ``splits``
    (SPLIT_SCHEMA) and ``dividends`` (DIVIDEND_SCHEMA) turn jumps they explain into
    ``explained_jump``. ``sessions`` replaces the XNYS session list (sorted ``datetime64[D]``;
    early closes still come from the XNYS calendar).

    Time-series rules (price_jump, explained_jump, volume_anomaly, stale_bar) see only the
    bars that pass every hard rule: a bad bar is neither judged by them nor part of a later
    bar's history. To judge new bars exactly as with the full history, pass
    ``thresholds.lookback`` such valid earlier bars of each symbol with them.
    """
    frame = _normalise(bars)
    if frame.height == 0:
        return Validation(
            scores=pl.DataFrame(schema=SCORE_SCHEMA), log=pl.DataFrame(schema=LOG_SCHEMA)
        )
    o, h, lo, c, v, w = (frame.get_column(name).to_numpy() for name in _PRICES)
    flags = check_constraints(o, h, lo, c, v, w, tolerance=thresholds.vwap_tolerance)
    days = frame.get_column("date").to_physical().fill_null(_NO_DATE).to_numpy().astype(np.int64)
    kinds = session_kinds(days, sessions=sessions)
    kinds[days == _NO_DATE] = NO_SESSION
    flags[kinds == NO_SESSION] |= Flag.NOT_A_SESSION
    zero_volume = np.flatnonzero((v == 0.0) & (kinds == FULL_SESSION))
    flags[zero_volume] |= Flag.ZERO_VOLUME

    order = _sort(frame, days)
    fired = row_local_fired(flags, (o, h, lo, c, v, w), thresholds.vwap_tolerance)
    fired.append(Fired(flag=Flag.ZERO_VOLUME, rows=zero_volume, value=v[zero_volume]))
    fired.append(_duplicates(order))
    flags[fired[-1].rows] |= Flag.DUPLICATE_DATE

    hard = flags & HARD_MASK
    sorted_valid = np.flatnonzero((hard if order.rows is None else hard[order.rows]) == 0)
    valid = order.to_input(sorted_valid)  # input rows of valid bars, in (symbol, date) order
    symbol_id = np.cumsum(order.group_start)[sorted_valid]
    group_start = np.ones(valid.size, dtype=bool)
    group_start[1:] = symbol_id[1:] != symbol_id[:-1]
    split_log, cash = event_columns(frame, valid, splits=splits, dividends=dividends)
    everything = valid.size == frame.height and order.rows is None  # valid is 0..n-1
    for found in series_rules(
        group_start,
        (o, h, lo, c) if everything else (o[valid], h[valid], lo[valid], c[valid]),
        v if everything else v[valid],
        split_log=split_log,
        cash=cash,
        thresholds=thresholds,
    ):
        at_input = found.at(valid)
        flags[at_input.rows] |= at_input.flag
        fired.append(at_input)
    return Validation(scores=build_scores(frame, flags, thresholds), log=build_log(frame, fired))


def _normalise(bars: pl.DataFrame) -> pl.DataFrame:
    """The columns the rules read, with their contract dtypes; nulls become NaN in floats."""
    missing = [name for name in ("symbol", "date", *_PRICES[:5]) if name not in bars.columns]
    if missing:
        msg = f"bars lack the column(s) {', '.join(missing)}"
        raise ValueError(msg)
    vwap = pl.col("vwap") if "vwap" in bars.columns else pl.lit(None)
    return bars.select(
        pl.col("symbol").cast(pl.String),
        pl.col("date").cast(pl.Date),
        *(pl.col(name).cast(pl.Float64).fill_null(np.nan) for name in _PRICES[:5]),
        vwap.cast(pl.Float64).fill_null(np.nan).alias("vwap"),
    ).rechunk()


def _sort(frame: pl.DataFrame, days: Ints) -> _Order:
    """The (symbol, date) order of ``frame``: the identity when it is already sorted."""
    symbol = pl.col("symbol")
    if frame.get_column("symbol").null_count() == 0 and days.min() > _NO_DATE:
        unsorted = frame.select(
            (
                (symbol < symbol.shift(1))
                | ((symbol == symbol.shift(1)) & (pl.col("date") < pl.col("date").shift(1)))
            ).any()
        ).item()
        if not unsorted:
            # The first row differs from the null before it, so it starts a symbol.
            start = frame.select(symbol.ne_missing(symbol.shift(1))).to_series().to_numpy()
            return _Order(rows=None, group_start=start, same_day=_same_day(start, days))
    codes = (
        frame.select(symbol.cast(pl.Categorical).to_physical().cast(pl.Int64).fill_null(-1))
        .to_series()
        .to_numpy()
    )
    key = ((codes + 1) << 32) | (days - _NO_DATE)
    rows = pl.Series(key).arg_sort().to_numpy().astype(np.int64)
    sorted_codes = codes[rows]
    start = np.empty(rows.size, dtype=bool)
    start[0] = True
    start[1:] = sorted_codes[1:] != sorted_codes[:-1]
    return _Order(rows=rows, group_start=start, same_day=_same_day(start, days[rows]))


def _same_day(group_start: npt.NDArray[np.bool_], days: Ints) -> npt.NDArray[np.bool_]:
    same = np.zeros(days.size, dtype=bool)
    same[1:] = ~group_start[1:] & (days[1:] == days[:-1])
    return same


def _duplicates(order: _Order) -> Fired:
    """Every occurrence of a (symbol, date) seen more than once; value: how many times."""
    same = order.same_day
    member = same.copy()
    member[:-1] |= same[1:]  # the first of a run is followed by a same-day row
    sorted_rows = np.flatnonzero(member)
    run_id = np.cumsum(~same)[sorted_rows]
    _, inverse, counts = np.unique(run_id, return_inverse=True, return_counts=True)
    return Fired(
        flag=Flag.DUPLICATE_DATE,
        rows=order.to_input(sorted_rows),
        value=counts[inverse].astype(np.float64),
    )
