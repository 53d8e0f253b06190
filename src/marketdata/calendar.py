"""NYSE trading sessions, so every layer agrees on which dates a daily bar can exist for.

The schedule comes from exchange-calendars (``XNYS``): regular holidays, early closes (which
*are* sessions) and one-off closures such as Hurricane Sandy (2012-10-29/30) or national days of
mourning (2018-12-05, 2025-01-09). The calendar is built once for the fixed window
[:data:`FIRST_DATE`, :data:`LAST_DATE`] and turned into plain numpy arrays, so queries are pure,
never read the clock and never touch pandas. Dates outside the window raise ``ValueError``
rather than guess: years after the last published NYSE schedule are exchange-calendars'
rule-based projection, which a one-off closure can still prove wrong.
"""

from __future__ import annotations

import datetime as dt
import functools
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

#: First and last dates the calendar knows; exchange-calendars sets no bound for XNYS.
FIRST_DATE: Final = dt.date(1990, 1, 1)
LAST_DATE: Final = dt.date(2035, 12, 31)

#: ``numpy.datetime64[D]`` arrays of session dates.
SessionArray = npt.NDArray[np.datetime64]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Schedule:
    """Every XNYS session in the window with its close instant and early-close flag."""

    days: SessionArray  # datetime64[D], ascending, read-only
    closes: npt.NDArray[np.datetime64]  # datetime64[ns], UTC, aligned with ``days``
    early: npt.NDArray[np.bool_]  # True where the session closes early


#: The schedule below, saved by :func:`save_schedule` and shipped with the package: loading it
#: takes a millisecond and no pandas, where building it imports exchange-calendars (about a
#: second and 80 MB). A test checks it still equals exchange-calendars' answer; after an
#: exchange-calendars upgrade, ``uv run python scripts/update-calendar`` rewrites it.
PACKAGED_SCHEDULE: Final = Path(__file__).with_name("xnys_schedule.npz")


@functools.cache
def _schedule() -> _Schedule:
    """The XNYS schedule: the packaged copy when present, else built by exchange-calendars."""
    if PACKAGED_SCHEDULE.exists():
        with np.load(PACKAGED_SCHEDULE) as data:
            days = data["days"].astype("datetime64[D]")
            closes = data["closes"].astype("datetime64[ns]")
            early = data["early"].astype(bool)
    else:
        schedule = build_schedule()
        days, closes, early = schedule.days.copy(), schedule.closes.copy(), schedule.early.copy()
    for array in (days, closes, early):
        array.flags.writeable = False
    return _Schedule(days=days, closes=closes, early=early)


def build_schedule() -> _Schedule:
    """Ask exchange-calendars for every XNYS session in the window (slow: imports pandas)."""
    import exchange_calendars

    with warnings.catch_warnings():
        # exchange-calendars 4.13 reads tz-aware ``Series.values``, which pandas 3.1 deprecates.
        warnings.filterwarnings(
            "ignore", "Series.values returning an ndarray", category=DeprecationWarning
        )
        xnys = exchange_calendars.get_calendar(
            "XNYS", start=FIRST_DATE.isoformat(), end=LAST_DATE.isoformat()
        )
        days = xnys.sessions.to_numpy().astype("datetime64[D]")
        closes = xnys.closes.dt.tz_convert(None).to_numpy().astype("datetime64[ns]")
        early = np.isin(days, xnys.early_closes.to_numpy().astype("datetime64[D]"))
    return _Schedule(days=days, closes=closes, early=early)


def save_schedule(path: Path = PACKAGED_SCHEDULE) -> None:
    """Write :func:`build_schedule`'s answer where :func:`_schedule` looks for it."""
    schedule = build_schedule()
    with path.open("wb") as fh:
        np.savez_compressed(
            fh,
            days=schedule.days.astype("int64"),
            closes=schedule.closes.astype("int64"),
            early=schedule.early,
        )


def _day(value: dt.date) -> np.datetime64:
    """``value`` as a day, refused outside [FIRST_DATE, LAST_DATE]."""
    if isinstance(value, dt.datetime):
        msg = f"expected a date, got the datetime {value!r}"
        raise TypeError(msg)
    if not FIRST_DATE <= value <= LAST_DATE:
        msg = f"{value} is outside the calendar window {FIRST_DATE} to {LAST_DATE}"
        raise ValueError(msg)
    return np.datetime64(value, "D")


def _bounds(start: dt.date, end: dt.date) -> tuple[int, int]:
    """Positions ``[i, j)`` of the sessions in [start, end]."""
    lo, hi = _day(start), _day(end)
    if lo > hi:
        msg = f"start {start} is after end {end}"
        raise ValueError(msg)
    days = _schedule().days
    return int(np.searchsorted(days, lo, "left")), int(np.searchsorted(days, hi, "right"))


def sessions(start: dt.date, end: dt.date) -> SessionArray:
    """XNYS session dates in [start, end] as an ascending, read-only ``datetime64[D]`` array."""
    i, j = _bounds(start, end)
    return _schedule().days[i:j]


def is_session(day: dt.date) -> bool:
    """Whether the NYSE trades on ``day`` (early closes count, holidays and closures do not)."""
    target = _day(day)
    days = _schedule().days
    i = int(np.searchsorted(days, target))
    return i < days.size and bool(days[i] == target)


def early_closes(start: dt.date, end: dt.date) -> SessionArray:
    """The sessions in [start, end] that close early (13:00 New York), ascending."""
    i, j = _bounds(start, end)
    schedule = _schedule()
    return schedule.days[i:j][schedule.early[i:j]]


def last_completed_session(at: dt.datetime, *, delay: dt.timedelta = dt.timedelta(0)) -> dt.date:
    """The latest session whose close plus ``delay`` is at or before ``at`` (timezone-aware).

    ``delay`` (non-negative) models a vendor publishing a session's bar some time after the
    close. Raises ``ValueError`` for a naive ``at`` and outside the calendar window.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        msg = f"at must be timezone-aware, got {at!r}"
        raise ValueError(msg)
    if delay < dt.timedelta(0):
        msg = f"delay must not be negative, got {delay!r}"
        raise ValueError(msg)
    cutoff = (at - delay).astimezone(dt.UTC).replace(tzinfo=None)
    if cutoff.date() > LAST_DATE + dt.timedelta(days=1):
        msg = f"{at} is after the calendar window, which ends {LAST_DATE}"
        raise ValueError(msg)
    schedule = _schedule()
    i = int(np.searchsorted(schedule.closes, np.datetime64(cutoff, "ns"), "right")) - 1
    if i < 0:
        msg = f"no session closed by {at}; the calendar starts {FIRST_DATE}"
        raise ValueError(msg)
    return _as_date(schedule.days[i])


def _as_date(day: np.datetime64) -> dt.date:
    """A ``datetime64[D]`` scalar as a ``datetime.date``."""
    value = day.astype("datetime64[D]").item()
    assert isinstance(value, dt.date)  # narrows numpy's ``Any`` for mypy
    return value
