"""missing_sessions: gaps counted in XNYS sessions, never holidays or closures."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from marketdata import calendar
from marketdata.validation import GapRange, count_missing_sessions, missing_sessions

D = dt.date


def stored(start: dt.date, end: dt.date, *, drop: tuple[dt.date, ...] = ()) -> list[dt.date]:
    """Every session in [start, end] except ``drop``."""
    days = [d for d in calendar.sessions(start, end).tolist() if d not in drop]
    assert all(d not in days for d in drop)
    return days


def test_every_session_present_2000_to_2026() -> None:
    """A complete 27-year history has no gap, whatever the holidays and closures."""
    days = calendar.sessions(D(2000, 1, 1), D(2026, 12, 31))
    assert days.size > 6700
    assert missing_sessions(days) == []
    assert count_missing_sessions(days) == 0


def test_weekdays_that_are_not_sessions_are_never_gaps() -> None:
    """Stored weekdays minus the NYSE's closed days: holidays and one-off closures are no gaps."""
    weekdays = np.arange("2000-01-03", "2026-12-31", dtype="datetime64[D]")
    weekdays = weekdays[np.is_busday(weekdays)]
    closed = weekdays[~np.isin(weekdays, calendar.sessions(D(2000, 1, 1), D(2026, 12, 31)))]
    for day in ("2001-09-11", "2001-09-14", "2004-06-11", "2007-01-02", "2012-10-29"):
        assert np.datetime64(day) in closed
    for day in ("2012-10-30", "2018-12-05", "2025-01-09", "2024-07-04", "2024-12-25"):
        assert np.datetime64(day) in closed
    present = weekdays[~np.isin(weekdays, closed)]
    assert missing_sessions(present) == []


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (D(2001, 9, 7), D(2001, 9, 18)),  # September 11 closure
        (D(2004, 6, 9), D(2004, 6, 15)),  # Reagan
        (D(2006, 12, 28), D(2007, 1, 4)),  # Ford, next to New Year
        (D(2012, 10, 25), D(2012, 11, 1)),  # Hurricane Sandy
        (D(2018, 12, 3), D(2018, 12, 7)),  # G. H. W. Bush
        (D(2025, 1, 7), D(2025, 1, 13)),  # Carter
        (D(2024, 11, 26), D(2024, 12, 3)),  # Thanksgiving and the early close after it
        (D(2024, 12, 20), D(2024, 12, 31)),  # Christmas Eve (early close) and Christmas
        (D(2024, 3, 6), D(2024, 3, 15)),  # US DST change
        (D(2024, 10, 30), D(2024, 11, 6)),  # US DST end
    ],
)
def test_no_false_gaps_around_closures(start: dt.date, end: dt.date) -> None:
    """Every session stored around a closure, early close or DST change: no gap."""
    assert missing_sessions(stored(start, end)) == []


def test_planted_gaps_are_found_as_ranges() -> None:
    """Missing sessions merge into ranges of consecutive sessions, across weekends and holidays."""
    drop = (
        D(2024, 3, 5),  # a lone Tuesday
        D(2024, 3, 15),  # Friday ...
        D(2024, 3, 18),  # ... and Monday: one range over the weekend
        D(2024, 3, 28),  # Thursday before Good Friday ...
        D(2024, 4, 1),  # ... and the Monday after: the holiday does not split them
        D(2024, 11, 29),  # an early close is a session that can be missing
    )
    days = stored(D(2024, 3, 1), D(2024, 12, 31), drop=drop)
    assert missing_sessions(days) == [
        GapRange(start=D(2024, 3, 5), end=D(2024, 3, 5), sessions=1),
        GapRange(start=D(2024, 3, 15), end=D(2024, 3, 18), sessions=2),
        GapRange(start=D(2024, 3, 28), end=D(2024, 4, 1), sessions=2),
        GapRange(start=D(2024, 11, 29), end=D(2024, 11, 29), sessions=1),
    ]
    assert count_missing_sessions(days) == 6


def test_gap_across_a_one_off_closure() -> None:
    """Sessions missing on both sides of Hurricane Sandy form one range of 2 sessions."""
    days = stored(D(2012, 10, 22), D(2012, 11, 5), drop=(D(2012, 10, 26), D(2012, 10, 31)))
    assert missing_sessions(days) == [
        GapRange(start=D(2012, 10, 26), end=D(2012, 10, 31), sessions=2)
    ]


def test_input_kinds_order_duplicates_and_junk() -> None:
    """Series, arrays and lists, unsorted, duplicated, with nulls and non-session dates."""
    days = stored(D(2024, 1, 2), D(2024, 2, 29), drop=(D(2024, 2, 1), D(2024, 2, 2)))
    junk = [D(2024, 1, 6), D(2024, 1, 15)]  # a Saturday and MLK day, stored anyway
    messy = list(reversed(days)) + days[:5] + junk
    expected = [GapRange(start=D(2024, 2, 1), end=D(2024, 2, 2), sessions=2)]
    assert missing_sessions(messy) == expected
    assert missing_sessions(np.array(messy, dtype="datetime64[D]")) == expected
    series = pl.Series([*messy, None], dtype=pl.Date)
    assert missing_sessions(series) == expected
    with_nat = np.array([*messy, "NaT"], dtype="datetime64[D]")
    assert missing_sessions(with_nat) == expected


@pytest.mark.parametrize(
    "dates",
    [[], [D(2024, 3, 5)], [D(2024, 3, 9)], [D(1980, 1, 2), D(1985, 6, 3)], [D(2050, 1, 3)]],
)
def test_nothing_to_miss(dates: list[dt.date]) -> None:
    """No dates, one date, or dates outside the calendar: no gaps."""
    assert missing_sessions(dates) == []
    assert count_missing_sessions(dates) == 0


def test_range_clipped_to_the_calendar() -> None:
    """Dates straddling the calendar's start only count sessions inside it."""
    days = [D(1985, 1, 2), *stored(D(1990, 1, 1), D(1990, 1, 31), drop=(D(1990, 1, 2),))]
    assert missing_sessions(days) == [GapRange(start=D(1990, 1, 2), end=D(1990, 1, 2), sessions=1)]


def test_custom_sessions() -> None:
    """A session list can be passed in; only its sessions can be missing."""
    sessions = np.array(["2024-01-01", "2024-01-03", "2024-01-05", "2024-01-07"], "datetime64[D]")
    dates = [D(2024, 1, 1), D(2024, 1, 7)]
    assert missing_sessions(dates, sessions=sessions) == [
        GapRange(start=D(2024, 1, 3), end=D(2024, 1, 5), sessions=2)
    ]


def test_gap_range_validates() -> None:
    """A range must be ordered and hold at least one session."""
    with pytest.raises(ValueError, match="invalid gap"):
        GapRange(start=D(2024, 1, 5), end=D(2024, 1, 4), sessions=1)
    with pytest.raises(ValueError, match="invalid gap"):
        GapRange(start=D(2024, 1, 4), end=D(2024, 1, 4), sessions=0)
