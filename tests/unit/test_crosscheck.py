"""Cross-source comparison on hand-built series whose answers are known."""

from __future__ import annotations

import datetime as dt
import json
import math

import polars as pl
import pytest

from marketdata.validation.crosscheck import Difference, compare_bars, relative_difference

INF = math.inf
NAN = math.nan
DAYS = [dt.date(2024, 3, d) for d in (4, 5, 6, 7, 8)]


def bars(days: list[dt.date] = DAYS, **columns: list[float | None]) -> pl.DataFrame:
    """Bars on ``days``: prices 100, 101, …, volume 1,000 per day, unless ``columns`` say so."""
    n = len(days)
    base: dict[str, list[float | None]] = {
        "open": [100.0 + i for i in range(n)],
        "high": [102.0 + i for i in range(n)],
        "low": [99.0 + i for i in range(n)],
        "close": [101.0 + i for i in range(n)],
        "volume": [1000.0] * n,
    }
    return pl.DataFrame(
        {"date": days, **base, **columns}, schema_overrides=dict.fromkeys(base, pl.Float64)
    )


def changed(frame: pl.DataFrame, day: dt.date, field: str, value: float | None) -> pl.DataFrame:
    """``frame`` with one value replaced."""
    return frame.with_columns(
        pl.when(pl.col("date") == day)
        .then(pl.lit(value, pl.Float64))
        .otherwise(pl.col(field))
        .alias(field)
    )


def test_identical_series_agree() -> None:
    """The same bars on both sides: everything compared, within, nothing listed."""
    check = compare_bars(bars(), bars(), symbol="AAPL", tolerance=0.005)
    assert (check.compared, check.within, check.outside) == (5, 5, 0)
    assert check.share_within == 1.0
    assert check.only_ours == check.only_theirs == ()
    assert check.worst == ()
    assert check.agrees


def test_planted_differences_just_inside_and_just_outside() -> None:
    """0.5 % on a 100 tolerance of 0.005 is within (≤); a hair more is not."""
    theirs = bars()
    ours = changed(theirs, DAYS[0], "open", 100.5)  # exactly 0.005
    ours = changed(ours, DAYS[2], "close", 103.0 * 1.00501)  # just outside
    check = compare_bars(ours, theirs, symbol="AAPL", tolerance=0.005)
    assert (check.compared, check.within, check.outside) == (5, 4, 1)
    assert check.share_within == 0.8
    assert not check.agrees
    assert [(d.date, d.field) for d in check.worst] == [(DAYS[2], "close"), (DAYS[0], "open")]
    outside, inside = check.worst
    assert outside.ours == pytest.approx(103.51603)
    assert outside.theirs == 103.0
    assert outside.relative == pytest.approx(0.00501)
    assert inside.relative == 0.005


def test_one_sided_sessions_are_listed_not_compared() -> None:
    """Sessions on one side only are listed, sorted, and stop the sources agreeing."""
    ours = bars().filter(pl.col("date") != DAYS[2]).reverse()  # any row order
    theirs = bars().filter(~pl.col("date").is_in([DAYS[3], DAYS[4]]))
    check = compare_bars(ours, theirs, symbol="AAPL", tolerance=0.005)
    assert check.only_ours == (DAYS[3], DAYS[4])
    assert check.only_theirs == (DAYS[2],)
    assert (check.compared, check.within, check.outside) == (2, 2, 0)
    assert not check.agrees


def test_several_fields_of_one_bar_count_once_as_a_bar() -> None:
    """within counts sessions; outside counts field values."""
    theirs = bars()
    ours = changed(changed(theirs, DAYS[1], "high", 200.0), DAYS[1], "volume", 5.0)
    check = compare_bars(ours, theirs, symbol="AAPL", tolerance=0.01)
    assert (check.within, check.outside) == (4, 2)
    assert {d.field for d in check.worst} == {"high", "volume"}


@pytest.mark.parametrize(
    ("ours", "theirs", "relative"),
    [
        (0.0, 0.0, 0.0),
        (1.0, 0.0, INF),
        (0.0, 1.0, 1.0),
        (NAN, NAN, 0.0),
        (None, None, 0.0),
        (NAN, None, 0.0),
        (NAN, 1.0, INF),
        (1.0, NAN, INF),
        (None, 1.0, INF),
        (1.0, None, INF),
        (INF, INF, 0.0),
        (INF, 1.0, INF),
        (1.0, INF, INF),
        (-INF, INF, INF),
        (-2.0, -1.0, 1.0),
        (101.0, 100.0, 0.01),
    ],
)
def test_missing_zero_and_infinite_values(
    ours: float | None, theirs: float | None, relative: float
) -> None:
    """Two missing or two equal values agree; one missing, or theirs zero, is infinitely off."""
    frame = pl.DataFrame({"o": [ours], "t": [theirs]}, schema={"o": pl.Float64, "t": pl.Float64})
    got = frame.select(relative_difference(pl.col("o"), pl.col("t"))).item()
    assert got == pytest.approx(relative)


def test_nan_in_a_bar_is_a_difference_and_serialises_as_null() -> None:
    """Our NaN against their number is an infinite difference; JSON says null, strictly."""
    theirs = bars()
    ours = changed(theirs, DAYS[3], "low", NAN)
    check = compare_bars(ours, theirs, symbol="AAPL", tolerance=0.005)
    assert check.worst == (
        Difference(date=DAYS[3], field="low", ours=check.worst[0].ours, theirs=102.0, relative=INF),
    )
    assert math.isnan(check.worst[0].ours or 0.0)
    text = json.dumps(check.to_dict(), allow_nan=False)
    assert json.loads(text)["worst"] == [
        {"date": "2024-03-07", "field": "low", "ours": None, "theirs": 102.0, "relative": None}
    ]


def test_worst_is_ordered_and_limited() -> None:
    """Largest first, then by date and field; exact matches never listed; N caps the list."""
    theirs = bars()
    ours = theirs
    for i, day in enumerate(DAYS):
        ours = changed(ours, day, "close", (101.0 + i) * (1 + 0.001 * (i + 1)))
    check = compare_bars(ours, theirs, symbol="AAPL", tolerance=0.5, worst=3)
    assert [d.date for d in check.worst] == [DAYS[4], DAYS[3], DAYS[2]]
    assert compare_bars(ours, theirs, symbol="AAPL", tolerance=0.5, worst=0).worst == ()


def test_only_the_asked_fields_are_compared() -> None:
    """A volume difference is ignored when only prices are compared."""
    theirs = bars()
    ours = changed(theirs, DAYS[0], "volume", 1.0)
    check = compare_bars(
        ours, theirs, symbol="AAPL", tolerance=0.005, fields=("open", "high", "low", "close")
    )
    assert check.agrees
    assert check.fields == ("open", "high", "low", "close")


def test_nothing_to_compare() -> None:
    """Two empty series: nothing compared, no share, nothing one-sided."""
    empty = bars([])
    check = compare_bars(empty, empty, symbol="AAPL", tolerance=0.005)
    assert check.compared == 0
    assert check.share_within is None
    assert check.agrees


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"tolerance": 0.0}, "tolerance must be in"),
        ({"tolerance": 1.0}, "tolerance must be in"),
        ({"tolerance": 0.01, "fields": ()}, "at least one field"),
        ({"tolerance": 0.01, "worst": -1}, "worst must be"),
        ({"tolerance": 0.01, "fields": ("vwap",)}, "lack the column"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], words: str) -> None:
    """Impossible tolerances, empty or unknown fields are refused."""
    with pytest.raises(ValueError, match=words):
        compare_bars(bars(), bars(), symbol="AAPL", **kwargs)  # type: ignore[arg-type]


def test_repeated_dates_are_refused() -> None:
    """One row per date is the caller's promise; a repeat is an error, not a silent pick."""
    twice = pl.concat([bars(), bars([DAYS[0]])])
    with pytest.raises(ValueError, match="their bars repeat a date"):
        compare_bars(bars(), twice, symbol="AAPL", tolerance=0.005)
