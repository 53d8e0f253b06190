"""Finding a crontab's latest trigger before a moment (for catch-up and claims)."""

from __future__ import annotations

import datetime as dt

import pytest
from apscheduler.triggers.cron import CronTrigger

from marketdata.crontab import parse_crontab
from marketdata.service.scheduler import previous_fire_time

UTC = dt.UTC


def _cron(expr: str) -> CronTrigger:
    return parse_crontab(expr)


@pytest.mark.parametrize(
    ("expr", "now", "expected"),
    [
        (
            "0 2 * * *",
            dt.datetime(2026, 11, 24, 1, 59, tzinfo=UTC),
            dt.datetime(2026, 11, 23, 2, 0),
        ),
        ("0 2 * * *", dt.datetime(2026, 11, 24, 2, 0, tzinfo=UTC), dt.datetime(2026, 11, 24, 2, 0)),
        (
            "0 2 * * *",
            dt.datetime(2026, 11, 24, 9, 30, tzinfo=UTC),
            dt.datetime(2026, 11, 24, 2, 0),
        ),
        (
            "*/5 * * * *",
            dt.datetime(2026, 11, 24, 9, 32, tzinfo=UTC),
            dt.datetime(2026, 11, 24, 9, 30),
        ),
        ("0 3 * * 0", dt.datetime(2026, 11, 24, 9, 0, tzinfo=UTC), dt.datetime(2026, 11, 22, 3, 0)),
        ("0 0 1 1 *", dt.datetime(2026, 11, 24, 9, 0, tzinfo=UTC), dt.datetime(2026, 1, 1, 0, 0)),
    ],
)
def test_previous_fire_time(expr: str, now: dt.datetime, expected: dt.datetime) -> None:
    """The latest scheduled time at or before now, in UTC, for hourly to yearly schedules."""
    assert previous_fire_time(_cron(expr), now) == expected.replace(tzinfo=UTC)


def test_previous_fire_time_is_utc_for_other_zones() -> None:
    """A 'now' in New York gives the same instant as in UTC."""
    new_york = dt.datetime(2026, 11, 23, 21, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert previous_fire_time(_cron("0 2 * * *"), new_york) == dt.datetime(
        2026, 11, 24, 2, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("weekday", "expected"),
    [
        ("0", dt.date(2026, 11, 22)),  # Sunday, as in cron
        ("7", dt.date(2026, 11, 22)),
        ("sun", dt.date(2026, 11, 22)),
        ("1-5", dt.date(2026, 11, 24)),  # Monday to Friday: today (a Tuesday)
        ("6", dt.date(2026, 11, 21)),  # Saturday
        ("5-7", dt.date(2026, 11, 22)),
        ("*/3", dt.date(2026, 11, 22)),  # Sunday, Wednesday, Saturday
        ("mon,wed", dt.date(2026, 11, 23)),
    ],
)
def test_weekdays_count_from_sunday(weekday: str, expected: dt.date) -> None:
    """The weekday field means what it means in cron (APScheduler's own numbering differs)."""
    now = dt.datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    fire = previous_fire_time(parse_crontab(f"0 3 * * {weekday}"), now)
    assert fire is not None
    assert fire.date() == expected


@pytest.mark.parametrize(
    "expr", ["0 3 * * 8", "0 3 * * 5-1", "0 3 * * xyz", "0 3 * *", "0 3 * * 1/0"]
)
def test_bad_crontabs_are_refused(expr: str) -> None:
    """Out-of-range, backwards, unknown and incomplete expressions raise ValueError."""
    with pytest.raises(ValueError):  # noqa: PT011  # the message varies by field
        parse_crontab(expr)
