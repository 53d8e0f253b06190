"""From fired rules to the two frames callers keep: per-bar scores and the rule log.

Rules report what fired as :class:`Fired` values (row positions plus the measured value and
the limit it crossed); this module turns them into flag masks, quality scores and log rows.
Non-finite measurements are logged as null, so the log never holds NaN or infinity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from marketdata.bars import LOG_SCHEMA, SCORE_SCHEMA
from marketdata.validation.flags import HARD_MASK, Flag, rule_name, severity_of
from marketdata.validation.thresholds import Thresholds

__all__ = ["LOG_SCHEMA", "SCORE_SCHEMA", "Fired", "build_log", "build_scores", "quality"]

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class Fired:
    """Where one rule fired: row positions, and per row the measured value and the limit.

    ``value`` and ``threshold`` are aligned with ``rows``; None (or NaN in them) means the
    rule has no number to report.
    """

    flag: Flag
    rows: Ints
    value: Floats | None = None
    threshold: Floats | None = None

    def at(self, positions: Ints) -> Fired:
        """The same firing with ``rows`` mapped through ``positions`` (e.g. sorted → input)."""
        return Fired(
            flag=self.flag, rows=positions[self.rows], value=self.value, threshold=self.threshold
        )


def quality(flags: Ints, thresholds: Thresholds) -> Floats:
    """``max(0, 1 − Σ weights of the rules set in each mask)``, per row."""
    scores = np.ones(flags.size)
    flagged = np.flatnonzero(flags)
    if flagged.size == 0:
        return scores
    masks, inverse = np.unique(flags[flagged], return_inverse=True)
    penalties = np.array(
        [
            sum(thresholds.weights[rule_name(flag)] for flag in Flag if int(mask) & flag)
            for mask in masks
        ]
    )
    scores[flagged] = np.maximum(0.0, 1.0 - penalties)[inverse]
    return scores


def build_scores(frame: pl.DataFrame, flags: Ints, thresholds: Thresholds) -> pl.DataFrame:
    """The score frame of ``frame``'s symbol and date columns and their flag masks."""
    return pl.DataFrame(
        {
            "symbol": frame.get_column("symbol"),
            "date": frame.get_column("date"),
            "flags": pl.Series(flags, dtype=pl.Int64),
            "quality": pl.Series(quality(flags, thresholds), dtype=pl.Float64),
            "validated": pl.Series((flags & HARD_MASK) == 0, dtype=pl.Boolean),
        },
        schema=SCORE_SCHEMA,
    )


def _measure(values: Floats | None, size: int) -> Floats:
    """Values as float64 with NaN for "none"; non-finite values become NaN (logged as null)."""
    if values is None:
        return np.full(size, np.nan)
    out = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(out), out, np.nan)


def build_log(frame: pl.DataFrame, fired: list[Fired]) -> pl.DataFrame:
    """One row per (row of ``frame``, fired rule), sorted by symbol, date, rule."""
    fired = [f for f in fired if f.rows.size]
    if not fired:
        return pl.DataFrame(schema=LOG_SCHEMA)
    rows = np.concatenate([f.rows for f in fired])
    sizes = [f.rows.size for f in fired]
    names = np.repeat(np.array([rule_name(f.flag) for f in fired]), sizes)
    levels = np.repeat(np.array([str(severity_of(f.flag)) for f in fired]), sizes)
    value = np.concatenate([_measure(f.value, f.rows.size) for f in fired])
    threshold = np.concatenate([_measure(f.threshold, f.rows.size) for f in fired])
    keys = frame.select("symbol", "date")[pl.Series(rows, dtype=pl.Int64)]
    log = keys.with_columns(
        rule=pl.Series(names, dtype=pl.String),
        severity=pl.Series(levels, dtype=pl.String),
        value=pl.Series(value, dtype=pl.Float64).fill_nan(None),
        threshold=pl.Series(threshold, dtype=pl.Float64).fill_nan(None),
    )
    return log.sort("symbol", "date", "rule", nulls_last=True).select(list(LOG_SCHEMA))
