"""Missing sessions: which XNYS sessions a symbol's stored history skips.

Gaps are counted in sessions, not days: weekends, holidays and one-off closures (2001-09-11
to 14, Hurricane Sandy, national days of mourning) are never missing, and early closes are
sessions like any other. Missing sessions that follow each other in the session calendar form
one :class:`GapRange`, so a Friday and the next Monday are one gap of two sessions, and a
holiday inside a missing stretch does not split it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import polars as pl

from marketdata import calendar

__all__ = ["DateInput", "GapRange", "count_missing_sessions", "missing_sessions"]

#: One symbol's stored dates: a polars Date series, ``datetime64`` array or dates.
DateInput: TypeAlias = pl.Series | npt.NDArray[np.datetime64] | Sequence[dt.date]
Days = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, kw_only=True)
class GapRange:
    """Consecutive missing sessions from ``start`` to ``end`` (both sessions, inclusive)."""

    start: dt.date
    end: dt.date
    sessions: int  # how many sessions are missing in [start, end]

    def __post_init__(self) -> None:
        if self.start > self.end or self.sessions < 1:
            msg = f"invalid gap {self.start}..{self.end} of {self.sessions} session(s)"
            raise ValueError(msg)


def missing_sessions(
    dates: DateInput, *, sessions: npt.NDArray[np.datetime64] | None = None
) -> list[GapRange]:
    """The sessions between the first and last of ``dates`` that ``dates`` lacks, as ranges.

    ``dates`` may be unsorted and hold duplicates, nulls and non-session dates. ``sessions``
    replaces the XNYS session list (``datetime64[D]``). Dates outside the calendar's window
    have no sessions to miss.
    """
    expected, missing = _missing(dates, sessions)
    at = np.flatnonzero(missing)
    if at.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(at) != 1) + 1
    firsts = at[np.concatenate(([0], breaks))]
    lasts = at[np.concatenate((breaks - 1, [at.size - 1]))]
    return [
        GapRange(start=_date(expected[i]), end=_date(expected[j]), sessions=int(j - i + 1))
        for i, j in zip(firsts.tolist(), lasts.tolist(), strict=True)
    ]


def count_missing_sessions(
    dates: DateInput, *, sessions: npt.NDArray[np.datetime64] | None = None
) -> int:
    """How many sessions :func:`missing_sessions` would report, without building ranges."""
    _, missing = _missing(dates, sessions)
    return int(missing.sum())


def _missing(
    dates: DateInput, sessions: npt.NDArray[np.datetime64] | None
) -> tuple[Days, npt.NDArray[np.bool_]]:
    """Sessions in [first, last] of ``dates`` and which of them ``dates`` lacks."""
    stored = _days(dates)
    if stored.size == 0:
        return np.empty(0, np.int64), np.empty(0, bool)
    first, last = int(stored[0]), int(stored[-1])
    if sessions is None:
        lo = max(first, _day(calendar.FIRST_DATE))
        hi = min(last, _day(calendar.LAST_DATE))
        if lo > hi:
            return np.empty(0, np.int64), np.empty(0, bool)
        expected = _as_days(calendar.sessions(_date(lo), _date(hi)))
    else:
        expected = np.unique(_as_days(np.asarray(sessions, dtype="datetime64[D]")))
        expected = expected[(expected >= first) & (expected <= last)]
    found = np.searchsorted(stored, expected)
    found = np.minimum(found, stored.size - 1)
    return expected, stored[found] != expected


def _days(dates: DateInput) -> Days:
    """Sorted, unique int64 days since 1970-01-01 of ``dates``, nulls dropped."""
    if isinstance(dates, pl.Series):
        days = dates.cast(pl.Date).drop_nulls().to_physical().to_numpy().astype(np.int64)
    else:
        values = np.asarray(dates, dtype="datetime64[D]")
        days = _as_days(values[~np.isnat(values)])
    return np.unique(days)


def _as_days(values: npt.NDArray[np.datetime64]) -> Days:
    return values.astype("datetime64[D]").astype(np.int64)


def _day(value: dt.date) -> int:
    return int(np.datetime64(value, "D").astype(np.int64))


def _date(days: int | np.integer) -> dt.date:
    value = np.datetime64(int(days), "D").item()
    assert isinstance(value, dt.date)  # narrows numpy's Any for mypy
    return value
