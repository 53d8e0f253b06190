"""Row-local checks: rules that judge a bar by its own columns and the calendar alone.

:func:`check_constraints` is the hot path of validation (every bar of every ingest goes
through it), so it works through the columns in cache-sized blocks with preallocated scratch
arrays: each block's temporaries stay in L2 and nothing of size *n* is allocated but the
result. Ordering rules (high vs low, …) are only judged on rows whose four prices are finite,
so a NaN or infinite price fires ``non_finite_price`` alone, not a cascade of comparisons.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import numpy as np
import numpy.typing as npt

from marketdata import calendar
from marketdata.validation.flags import HARD_MASK, Flag
from marketdata.validation.report import Fired
from marketdata.validation.thresholds import DEFAULT_THRESHOLDS

__all__ = [
    "EARLY_CLOSE",
    "FULL_SESSION",
    "NO_SESSION",
    "check_constraints",
    "row_local_fired",
    "session_kinds",
]

Floats = npt.NDArray[np.float64]
_BLOCK: Final = 16_384  # rows per block: 5 scratch arrays of this size fit in L2

#: Codes returned by :func:`session_kinds`.
NO_SESSION: Final = 0
FULL_SESSION: Final = 1
EARLY_CLOSE: Final = 2


def check_constraints(
    open: npt.ArrayLike,
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    volume: npt.ArrayLike,
    vwap: npt.ArrayLike,
    *,
    tolerance: float = DEFAULT_THRESHOLDS.vwap_tolerance,
) -> npt.NDArray[np.int64]:
    """The int64 flag mask of the row-local hard rules, one per row.

    Covers every hard rule but ``not_a_session`` and ``duplicate_date``. Arrays are
    converted to float64 (no copy when they already are); NaN in ``vwap`` means "absent".
    Never warns, whatever the values.
    """
    columns = (open, high, low, close, volume, vwap)
    o, h, lo, c, v, w = (np.asarray(a, dtype=np.float64) for a in columns)
    n = o.size
    if any(a.ndim != 1 or a.size != n for a in (o, h, lo, c, v, w)):
        msg = "check_constraints needs six one-dimensional arrays of the same length"
        raise ValueError(msg)
    if not 0.0 <= tolerance < 1.0:
        msg = f"tolerance must be in [0, 1), got {tolerance!r}"
        raise ValueError(msg)
    flags = np.zeros(n, dtype=np.int64)
    size = min(_BLOCK, n)
    t_buf, fin_buf, b1_buf, b2_buf = (
        np.empty(size),
        np.empty(size, bool),
        np.empty(size, bool),
        np.empty(size, bool),
    )
    below, above = 1.0 - tolerance, 1.0 + tolerance
    with np.errstate(invalid="ignore", over="ignore"):
        for start in range(0, n, _BLOCK):
            stop = min(start + _BLOCK, n)
            m = stop - start
            bo, bh, bl, bc = o[start:stop], h[start:stop], lo[start:stop], c[start:stop]
            bv, bw, f = v[start:stop], w[start:stop], flags[start:stop]
            t, fin, b1, b2 = t_buf[:m], fin_buf[:m], b1_buf[:m], b2_buf[:m]

            np.isfinite(bo, out=fin)
            for column in (bh, bl, bc):
                np.isfinite(column, out=b1)
                fin &= b1
            np.logical_not(fin, out=b1)
            np.bitwise_or(f, Flag.NON_FINITE_PRICE, out=f, where=b1)

            np.minimum(bo, bc, out=t)  # min(open, close)
            np.greater(bl, t, out=b1)
            b1 &= fin
            np.bitwise_or(f, Flag.LOW_ABOVE_OPEN_CLOSE, out=f, where=b1)
            np.minimum(t, bl, out=t)
            np.minimum(t, bh, out=t)  # min of all four prices
            np.less_equal(t, 0.0, out=b1)
            b1 &= fin
            np.bitwise_or(f, Flag.NON_POSITIVE_PRICE, out=f, where=b1)

            np.maximum(bo, bc, out=t)  # max(open, close)
            np.less(bh, t, out=b1)
            b1 &= fin
            np.bitwise_or(f, Flag.HIGH_BELOW_OPEN_CLOSE, out=f, where=b1)
            np.less(bh, bl, out=b1)
            b1 &= fin
            np.bitwise_or(f, Flag.HIGH_BELOW_LOW, out=f, where=b1)

            np.greater_equal(bv, 0.0, out=b1)  # False for NaN
            np.less(bv, np.inf, out=b2)
            b1 &= b2
            np.logical_not(b1, out=b1)
            np.bitwise_or(f, Flag.NEGATIVE_VOLUME, out=f, where=b1)

            np.multiply(bl, below, out=t)
            np.less(bw, t, out=b1)  # False for an absent (NaN) vwap
            np.multiply(bh, above, out=t)
            np.greater(bw, t, out=b2)
            b1 |= b2
            b1 &= fin
            np.bitwise_or(f, Flag.VWAP_OUTSIDE_RANGE, out=f, where=b1)
    return flags


def session_kinds(
    days: npt.NDArray[np.int64], *, sessions: npt.NDArray[np.datetime64] | None = None
) -> npt.NDArray[np.int8]:
    """For days given as int64 days since 1970-01-01: NO_SESSION, FULL_SESSION or EARLY_CLOSE.

    ``sessions`` overrides the XNYS session list (sorted ``datetime64[D]``); early closes
    always come from the XNYS calendar. Days outside the calendar's window are no session.
    """
    kinds = np.zeros(days.size, dtype=np.int8)
    if days.size == 0:
        return kinds
    first, last = int(days.min()), int(days.max())
    window_lo, window_hi = _as_days(calendar.FIRST_DATE), _as_days(calendar.LAST_DATE)
    if sessions is None:
        lo, hi = max(first, window_lo), min(last, window_hi)
        if lo > hi:
            return kinds
        session_days = _to_days(calendar.sessions(_as_date(lo), _as_date(hi)))
    else:
        session_days = _to_days(np.asarray(sessions, dtype="datetime64[D]"))
        session_days = session_days[(session_days >= first) & (session_days <= last)]
    if session_days.size == 0:
        return kinds
    lo, hi = int(session_days.min()), int(session_days.max())
    table = np.zeros(hi - lo + 1, dtype=np.int8)
    table[session_days - lo] = FULL_SESSION
    early_lo, early_hi = max(lo, window_lo), min(hi, window_hi)
    if early_lo <= early_hi:
        early = _to_days(calendar.early_closes(_as_date(early_lo), _as_date(early_hi))) - lo
        table[early] = np.where(table[early] == FULL_SESSION, EARLY_CLOSE, NO_SESSION)
    inside = (days >= lo) & (days <= hi)
    kinds[inside] = table[days[inside] - lo]
    return kinds


def _to_days(values: npt.NDArray[np.datetime64]) -> npt.NDArray[np.int64]:
    return values.astype("datetime64[D]").astype(np.int64)


def _as_days(day: dt.date) -> int:
    return int(np.datetime64(day, "D").astype(np.int64))


def _as_date(days: int) -> dt.date:
    value = np.datetime64(days, "D").item()
    assert isinstance(value, dt.date)  # narrows numpy's Any for mypy
    return value


def row_local_fired(
    flags: npt.NDArray[np.int64],
    columns: tuple[Floats, Floats, Floats, Floats, Floats, Floats],
    tolerance: float,
) -> list[Fired]:
    """The hard rules set in ``flags`` with what each measured, for the validation log.

    ``columns`` are (open, high, low, close, volume, vwap), as given to the checks.
    """
    flagged = np.flatnonzero(flags & (HARD_MASK & ~Flag.DUPLICATE_DATE))
    bits = flags[flagged]
    fo, fh, fl, fc, fv, fw = (column[flagged] for column in columns)
    with np.errstate(invalid="ignore", over="ignore"):
        below, above = fl * (1.0 - tolerance), fh * (1.0 + tolerance)
        measured = {
            Flag.NON_FINITE_PRICE: (None, None),
            Flag.NON_POSITIVE_PRICE: (np.minimum(np.minimum(fo, fc), np.minimum(fh, fl)), 0.0),
            Flag.HIGH_BELOW_OPEN_CLOSE: (fh, np.maximum(fo, fc)),
            Flag.LOW_ABOVE_OPEN_CLOSE: (fl, np.minimum(fo, fc)),
            Flag.HIGH_BELOW_LOW: (fh, fl),
            Flag.NEGATIVE_VOLUME: (fv, 0.0),
            Flag.VWAP_OUTSIDE_RANGE: (fw, np.where(fw < below, below, above)),
            Flag.NOT_A_SESSION: (None, None),
        }
    fired = []
    for flag, (value, threshold) in measured.items():
        hit = np.flatnonzero(bits & flag)
        fired.append(
            Fired(
                flag=flag,
                rows=flagged[hit],
                value=None if value is None else value[hit],
                threshold=None if threshold is None else np.broadcast_to(threshold, fo.shape)[hit],
            )
        )
    return fired
