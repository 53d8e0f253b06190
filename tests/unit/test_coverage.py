"""Monthly coverage counts (``marketdata.service.coverage``): pure calendar arithmetic."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from marketdata import calendar
from marketdata.errors import InputError
from marketdata.service.coverage import Coverage, month_counts, month_labels

D = dt.date


def _bars(rows: list[tuple[str, dt.date, bool]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"symbol": pl.String, "date": pl.Date, "validated": pl.Boolean}, orient="row"
    )


def _counts(frame: pl.DataFrame) -> list[tuple[str, str, int, int, int]]:
    return [tuple(row) for row in frame.iter_rows()]


def test_months_are_those_holding_a_session() -> None:
    """Partial months count; a range with only a weekend in a month adds no month for it."""
    assert month_labels(calendar.sessions(D(2024, 1, 31), D(2024, 3, 1))) == (
        "2024-01",
        "2024-02",
        "2024-03",
    )
    assert month_labels(calendar.sessions(D(2024, 5, 31), D(2024, 6, 2))) == ("2024-05",)
    assert month_labels(calendar.sessions(D(2024, 3, 2), D(2024, 3, 3))) == ()


@pytest.mark.parametrize(
    ("rows", "first", "expected"),
    [
        pytest.param(
            [("A", D(2024, 2, 1), True), ("A", D(2024, 2, 2), False)],
            D(2024, 1, 2),
            [("A", "2024-01", 21, 0, 0), ("A", "2024-02", 20, 2, 1)],
            id="present-and-valid",
        ),
        pytest.param(
            [("A", D(2024, 2, 19), True), ("A", D(2024, 2, 17), True)],
            D(2024, 1, 2),
            [("A", "2024-01", 21, 0, 0), ("A", "2024-02", 20, 0, 0)],
            id="holiday-and-weekend-bars-never-count",
        ),
        pytest.param(
            [("A", D(2024, 1, 29), True)],
            D(2024, 1, 29),
            [("A", "2024-01", 3, 1, 1), ("A", "2024-02", 20, 0, 0)],
            id="no-session-expected-before-the-first",
        ),
        pytest.param(
            [],
            D(2024, 3, 1),
            [("A", "2024-01", 0, 0, 0), ("A", "2024-02", 0, 0, 0)],
            id="history-after-the-range",
        ),
        pytest.param(
            [("B", D(2024, 2, 1), True)],
            None,
            [("A", "2024-01", 21, 0, 0), ("A", "2024-02", 20, 0, 0)],
            id="other-symbols-bars-are-not-ours",
        ),
    ],
)
def test_month_counts(
    rows: list[tuple[str, dt.date, bool]],
    first: dt.date | None,
    expected: list[tuple[str, str, int, int, int]],
) -> None:
    """Sessions expected from the first stored one, bars on sessions, validated bars."""
    sessions = calendar.sessions(D(2024, 1, 1), D(2024, 2, 29))
    assert _counts(month_counts(sessions, _bars(rows), {"A": first})) == expected


def test_symbols_keep_the_given_order_and_get_every_month() -> None:
    """Rows come per symbol in the given order, then by month, zeros where nothing is stored."""
    sessions = calendar.sessions(D(2024, 1, 30), D(2024, 2, 2))
    counts = month_counts(sessions, _bars([("B", D(2024, 2, 1), True)]), {"B": None, "A": None})
    assert _counts(counts) == [
        ("B", "2024-01", 2, 0, 0),
        ("B", "2024-02", 2, 1, 1),
        ("A", "2024-01", 2, 0, 0),
        ("A", "2024-02", 2, 0, 0),
    ]


def test_coverage_refuses_a_swapped_range() -> None:
    """The value validates itself."""
    with pytest.raises(InputError, match="after"):
        Coverage(start=D(2024, 2, 1), end=D(2024, 1, 1), months=(), symbols=())
