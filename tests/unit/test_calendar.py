"""XNYS sessions: holidays, one-off closures, early closes and the last completed session."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from marketdata import calendar

NY = ZoneInfo("America/New_York")
D = dt.date


def ny(year: int, month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    """A New York wall-clock instant."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=NY)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (D(2024, 1, 2), True),  # an ordinary Tuesday
        (D(2024, 1, 6), False),  # Saturday
        (D(2024, 7, 4), False),  # Independence Day
        (D(2024, 12, 25), False),  # Christmas
        (D(2022, 6, 20), False),  # Juneteenth, observed since 2022
        (D(2021, 6, 18), True),  # ...but not yet in 2021
        (D(2001, 9, 11), False),  # September 11 closure
        (D(2001, 9, 14), False),
        (D(2001, 9, 17), True),  # trading resumed
        (D(2004, 6, 11), False),  # Reagan national day of mourning
        (D(2007, 1, 2), False),  # Ford national day of mourning
        (D(2012, 10, 29), False),  # Hurricane Sandy
        (D(2012, 10, 30), False),
        (D(2018, 12, 5), False),  # G. H. W. Bush national day of mourning
        (D(2025, 1, 9), False),  # Carter national day of mourning
        (D(2024, 7, 3), True),  # early close
        (D(2024, 11, 29), True),  # early close
        (D(2024, 12, 24), True),  # early close
    ],
)
def test_is_session(day: dt.date, expected: bool) -> None:
    """Holidays and one-off closures are not sessions; early closes are."""
    assert calendar.is_session(day) is expected


def test_sessions_are_inclusive_and_skip_holidays() -> None:
    """Both ends are included, the holiday is skipped, and the dtype is datetime64[D]."""
    got = calendar.sessions(D(2024, 7, 1), D(2024, 7, 5))
    assert got.dtype == np.dtype("datetime64[D]")
    assert got.tolist() == [D(2024, 7, 1), D(2024, 7, 2), D(2024, 7, 3), D(2024, 7, 5)]


def test_sessions_skip_one_off_closures() -> None:
    """The two Hurricane Sandy days are missing from the range."""
    got = calendar.sessions(D(2012, 10, 26), D(2012, 10, 31))
    assert got.tolist() == [D(2012, 10, 26), D(2012, 10, 31)]


@pytest.mark.parametrize(
    ("year", "count"),
    [(2000, 252), (2001, 248), (2012, 250), (2022, 251), (2024, 252), (2025, 250)],
)
def test_sessions_per_year(year: int, count: int) -> None:
    """Yearly session counts match the NYSE's."""
    assert calendar.sessions(D(year, 1, 1), D(year, 12, 31)).size == count


def test_sessions_of_a_closed_range_are_empty() -> None:
    """A weekend alone holds no session."""
    assert calendar.sessions(D(2024, 1, 6), D(2024, 1, 7)).size == 0


def test_sessions_are_read_only() -> None:
    """The cached schedule cannot be modified through a returned array."""
    got = calendar.sessions(D(2024, 1, 1), D(2024, 1, 31))
    with pytest.raises(ValueError, match="read-only"):
        got[0] = np.datetime64("2000-01-01")


def test_early_closes() -> None:
    """2024's early closes are 3 July, the day after Thanksgiving and Christmas Eve."""
    got = calendar.early_closes(D(2024, 1, 1), D(2024, 12, 31))
    assert got.tolist() == [D(2024, 7, 3), D(2024, 11, 29), D(2024, 12, 24)]
    assert all(calendar.is_session(day) for day in got.tolist())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: calendar.sessions(D(1989, 12, 31), D(2000, 1, 1)), "outside the calendar"),
        (lambda: calendar.sessions(D(2030, 1, 1), D(2036, 1, 1)), "outside the calendar"),
        (lambda: calendar.sessions(D(2024, 2, 1), D(2024, 1, 1)), "after end"),
        (lambda: calendar.early_closes(D(2024, 2, 1), D(2024, 1, 1)), "after end"),
        (lambda: calendar.is_session(D(2036, 1, 2)), "outside the calendar"),
    ],
)
def test_out_of_window_and_swapped_ranges_are_refused(call: object, message: str) -> None:
    """Dates the calendar does not cover, and swapped ranges, raise ValueError."""
    assert callable(call)
    with pytest.raises(ValueError, match=message):
        call()


def test_a_datetime_is_not_a_date() -> None:
    """Passing a datetime where a session date is expected is a type error."""
    with pytest.raises(TypeError, match="expected a date"):
        calendar.is_session(dt.datetime(2024, 1, 2, 12, 0))


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (ny(2024, 7, 5, 15, 59), D(2024, 7, 3)),  # before the close; 4 July is a holiday
        (ny(2024, 7, 5, 16, 0), D(2024, 7, 5)),  # exactly at the close
        (ny(2024, 7, 3, 12, 59), D(2024, 7, 2)),  # before an early close
        (ny(2024, 7, 3, 13, 0), D(2024, 7, 3)),  # at an early close (13:00)
        (ny(2024, 7, 6, 12, 0), D(2024, 7, 5)),  # Saturday
        (ny(2024, 7, 8, 9, 30), D(2024, 7, 5)),  # Monday open
        (ny(2012, 10, 31, 9, 0), D(2012, 10, 26)),  # after Hurricane Sandy
        (ny(2025, 1, 9, 18, 0), D(2025, 1, 8)),  # Carter day of mourning
        # Daylight saving time began on 2024-03-10: the close moves from 21:00 to 20:00 UTC.
        (dt.datetime(2024, 3, 8, 20, 59, tzinfo=dt.UTC), D(2024, 3, 7)),
        (dt.datetime(2024, 3, 8, 21, 0, tzinfo=dt.UTC), D(2024, 3, 8)),
        (dt.datetime(2024, 3, 11, 19, 59, tzinfo=dt.UTC), D(2024, 3, 8)),
        (dt.datetime(2024, 3, 11, 20, 0, tzinfo=dt.UTC), D(2024, 3, 11)),
        # ...and ended on 2024-11-03: back to 21:00 UTC.
        (dt.datetime(2024, 11, 4, 20, 59, tzinfo=dt.UTC), D(2024, 11, 1)),
        (dt.datetime(2024, 11, 4, 21, 0, tzinfo=dt.UTC), D(2024, 11, 4)),
        (dt.datetime(2024, 7, 6, 5, 0, tzinfo=ZoneInfo("Asia/Tokyo")), D(2024, 7, 5)),
    ],
)
def test_last_completed_session(at: dt.datetime, expected: dt.date) -> None:
    """The latest session whose close is at or before ``at``, in any time zone."""
    assert calendar.last_completed_session(at) == expected


@pytest.mark.parametrize(
    ("minutes", "expected"), [(0, D(2024, 7, 5)), (10, D(2024, 7, 5)), (11, D(2024, 7, 3))]
)
def test_last_completed_session_with_delay(minutes: int, expected: dt.date) -> None:
    """A publication delay counts from the close: 16:10 is 10 minutes after it."""
    at = ny(2024, 7, 5, 16, 10)
    delay = dt.timedelta(minutes=minutes)
    assert calendar.last_completed_session(at, delay=delay) == expected


@pytest.mark.parametrize(
    ("at", "delay", "message"),
    [
        (dt.datetime(2024, 7, 5, 16, 0), dt.timedelta(0), "timezone-aware"),
        (ny(2024, 7, 5, 16, 0), dt.timedelta(minutes=-1), "negative"),
        (ny(1990, 1, 2, 15, 0), dt.timedelta(0), "no session closed"),
        (ny(2036, 1, 3, 12, 0), dt.timedelta(0), "after the calendar window"),
    ],
)
def test_last_completed_session_refuses(at: dt.datetime, delay: dt.timedelta, message: str) -> None:
    """Naive instants, negative delays and instants outside the window raise ValueError."""
    with pytest.raises(ValueError, match=message):
        calendar.last_completed_session(at, delay=delay)


def test_packaged_schedule_equals_exchange_calendars() -> None:
    """The shipped schedule file is exactly what exchange-calendars says today.

    If this fails after upgrading exchange-calendars, run ``scripts/update-calendar``.
    """
    import numpy as np

    from marketdata import calendar as cal

    assert cal.PACKAGED_SCHEDULE.exists()
    built = cal.build_schedule()
    shipped = cal._schedule()
    assert np.array_equal(shipped.days, built.days)
    assert np.array_equal(shipped.closes, built.closes)
    assert np.array_equal(shipped.early, built.early)
