"""validate on hand-built series: each rule fires exactly where planted and nowhere else."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from marketdata.bars import BAR_SCHEMA, DIVIDEND_SCHEMA, SPLIT_SCHEMA
from marketdata.validation import (
    LOG_SCHEMA,
    SCORE_SCHEMA,
    Thresholds,
    Validation,
    flag_names,
    validate,
)
from tests.unit.validation.factories import bar, calm, fired, frame_of, plant, scale_from

D = dt.date
NAN, INF = float("nan"), float("inf")


def by_row(result: Validation) -> list[list[str]]:
    """The rule names of each score row, in input order."""
    return [flag_names(mask) for mask in result.scores["flags"]]


def planted(result: Validation) -> dict[int, list[str]]:
    """Row → rule names, for the rows where anything fired."""
    return {i: names for i, names in enumerate(by_row(result)) if names}


def test_empty_input() -> None:
    """No bars: empty frames with the documented schemas."""
    result = validate(pl.DataFrame(schema=BAR_SCHEMA))
    assert result.scores.schema == SCORE_SCHEMA
    assert result.log.schema == LOG_SCHEMA
    assert result.scores.height == result.log.height == 0


def test_calm_series_is_clean() -> None:
    """A quiet stock fires nothing: flags 0, quality 1, validated, empty log."""
    result = validate(pl.concat([calm("AAA", n=120), calm("BBB", n=120, seed=1)]))
    assert result.scores.schema == SCORE_SCHEMA
    assert result.scores["flags"].to_list() == [0] * 240
    assert result.scores["quality"].to_list() == [1.0] * 240
    assert result.scores["validated"].all()
    assert result.log.is_empty()
    assert result.log.schema == LOG_SCHEMA


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, []),
        ({"close": NAN}, ["non_finite_price"]),
        ({"open": INF}, ["non_finite_price"]),
        ({"close": None}, ["non_finite_price"]),
        ({"low": 0.0}, ["non_positive_price"]),
        (
            {"open": -1.0, "high": -0.5, "low": -2.0, "close": -1.0, "vwap": None},
            ["non_positive_price"],
        ),
        ({"high": 10.4}, ["high_below_open_close"]),
        ({"low": 10.1}, ["low_above_open_close"]),
        ({"volume": -5.0}, ["negative_volume"]),
        ({"volume": None}, ["negative_volume"]),
        ({"volume": 0.0}, ["zero_volume"]),
        ({"vwap": None}, []),
        ({"vwap": 12.0}, ["vwap_outside_range"]),
        ({"open": 1e300, "high": 1e300, "low": 1e300, "close": 1e300, "vwap": 1e300}, []),
        ({"volume": 1e300}, []),
    ],
)
def test_single_bar(values: dict[str, float | None], expected: list[str]) -> None:
    """One bar on an ordinary session fires exactly its row-local rules."""
    result = validate(frame_of(bar("AAA", D(2024, 3, 5), **values)))
    assert by_row(result) == [expected]
    assert result.scores["validated"].to_list() == [expected in ([], ["zero_volume"])]


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (D(2024, 1, 6), ["not_a_session"]),  # Saturday
        (D(2024, 7, 4), ["not_a_session"]),  # Independence Day
        (D(2012, 10, 29), ["not_a_session"]),  # Hurricane Sandy
        (D(2025, 1, 9), ["not_a_session"]),  # Carter national day of mourning
        (D(1985, 1, 2), ["not_a_session"]),  # before the calendar: no crash
        (D(2040, 1, 3), ["not_a_session"]),  # after the calendar
        (D(2024, 7, 3), []),  # early close: a session
        (D(2024, 3, 11), []),  # the Monday after the DST change
    ],
)
def test_sessions(day: dt.date, expected: list[str]) -> None:
    """Weekends, holidays, closures and out-of-calendar dates are not sessions."""
    assert by_row(validate(frame_of(bar("AAA", day)))) == [expected]


def test_dates_far_apart_do_not_crash() -> None:
    """A frame spanning far outside the calendar still answers per row."""
    rows = [bar("AAA", D(1, 1, 1)), bar("AAA", D(2024, 3, 5)), bar("AAA", D(9999, 12, 31))]
    assert by_row(validate(frame_of(*rows))) == [["not_a_session"], [], ["not_a_session"]]


def test_sessions_override() -> None:
    """A custom session list decides what is a session."""
    rows = frame_of(bar("AAA", D(2024, 3, 5)), bar("AAA", D(2024, 3, 9)))  # Tue, Sat
    sessions = np.array(["2024-03-09"], dtype="datetime64[D]")
    assert by_row(validate(rows, sessions=sessions)) == [["not_a_session"], []]


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (D(2024, 7, 2), ["zero_volume"]),  # full session
        (D(2024, 7, 3), []),  # early close before Independence Day
        (D(2024, 11, 29), []),  # day after Thanksgiving
        (D(2024, 12, 24), []),  # Christmas Eve
        (D(2024, 7, 6), ["not_a_session"]),  # Saturday: no session, so no "full session" either
    ],
)
def test_zero_volume_only_on_full_sessions(day: dt.date, expected: list[str]) -> None:
    """Zero volume is flagged on full sessions, not on early closes."""
    assert by_row(validate(frame_of(bar("AAA", day, volume=0.0)))) == [expected]


def test_duplicates_flag_every_occurrence() -> None:
    """Each copy of a repeated (symbol, date) is flagged, with the copy count as value."""
    rows = frame_of(
        bar("AAA", D(2024, 3, 5)),
        bar("BBB", D(2024, 3, 5)),  # same date, other symbol: fine
        bar("AAA", D(2024, 3, 6)),
        bar("AAA", D(2024, 3, 5), close=10.6),
        bar("CCC", D(2024, 3, 7)),
        bar("CCC", D(2024, 3, 7)),
        bar("CCC", D(2024, 3, 7)),
    )
    result = validate(rows)
    assert planted(result) == {i: ["duplicate_date"] for i in (0, 3, 4, 5, 6)}
    log = result.log.filter(pl.col("rule") == "duplicate_date")
    assert log["value"].to_list() == [2.0, 2.0, 3.0, 3.0, 3.0]
    assert log["symbol"].to_list() == ["AAA", "AAA", "CCC", "CCC", "CCC"]


def test_duplicates_are_left_out_of_the_series() -> None:
    """Bars after a duplicated date are judged against the last bar before it."""
    frame = calm(n=40)
    prices = ("open", "high", "low", "close", "vwap")
    doubled = pl.concat([frame, frame[25:26].with_columns(pl.col(c) * 2 for c in prices)])
    result = validate(doubled)
    assert planted(result) == {25: ["duplicate_date"], 40: ["duplicate_date"]}


def test_hard_failed_bars_are_skipped_by_series_rules() -> None:
    """A bad bar fires its hard rule only; the next bar is compared with the one before it."""
    frame = calm(n=60)
    frame = plant(frame, 30, close=NAN)
    frame = plant(frame, 40, close=frame["close"][40] * 3.0)  # above the high: hard
    frame = plant(frame, 50, volume=-1.0)
    result = validate(frame)
    assert planted(result) == {
        30: ["non_finite_price"],
        40: ["high_below_open_close"],
        50: ["negative_volume"],
    }
    assert result.scores["quality"][30] == 0.0
    assert result.scores["validated"].to_list().count(False) == 3


def test_stale_bar() -> None:
    """A bar repeating the previous prices with no volume is stale (and zero-volume)."""
    frame = calm(n=60)
    previous = frame.row(30, named=True)
    stale = {c: previous[c] for c in ("open", "high", "low", "close")}
    frame = plant(frame, 31, volume=0.0, **stale)
    frame = plant(frame, 45, volume=0.0)  # zero volume alone is not stale
    frame = plant(frame, 50, **frame.row(49, named=True) | {"date": frame["date"][50]})
    result = validate(frame)
    assert planted(result) == {31: ["zero_volume", "stale_bar"], 45: ["zero_volume"]}
    assert result.scores["quality"][31] == pytest.approx(0.6)


@pytest.mark.parametrize(("factor", "sign"), [(50.0, 1.0), (0.01, -1.0)])
def test_volume_anomaly(factor: float, sign: float) -> None:
    """A volume 50× or 1/100 of the usual is an anomaly; its neighbours are not."""
    frame = calm(n=60)
    frame = plant(frame, 40, volume=frame["volume"][40] * factor)
    result = validate(frame)
    assert planted(result) == {40: ["volume_anomaly"]}
    (z,) = result.log["value"]
    assert z * sign > 8.0
    assert result.log["threshold"].to_list() == [8.0]


def test_volume_anomaly_needs_history() -> None:
    """Within the first min_history bars a symbol's volume is not judged."""
    frame = plant(calm(n=30), 5, volume=5e8)
    assert planted(validate(frame)) == {}
    assert planted(validate(frame, thresholds=Thresholds(min_history=5))) == {5: ["volume_anomaly"]}


def test_constant_volume_does_not_divide_by_zero() -> None:
    """A window of identical volumes (MAD 0) uses the floor: small moves pass, big ones fire."""
    frame = calm(n=40).with_columns(volume=pl.lit(1e6))
    frame = plant(frame, 30, volume=1.5e6)  # log 0.41 < 8 × 0.1
    frame = plant(frame, 35, volume=3e6)  # log 1.10 > 8 × 0.1
    result = validate(frame)
    assert planted(result) == {35: ["volume_anomaly"]}


def test_price_jump_on_a_calm_series() -> None:
    """A 50 % level shift is one jump, on its first day, measured as the log return."""
    frame = scale_from(calm(n=60), 40, 1.5)
    result = validate(frame)
    assert planted(result) == {40: ["price_jump"]}
    (row,) = result.log.iter_rows(named=True)
    expected = math.log(frame["close"][40] / frame["close"][39])
    assert row["value"] == pytest.approx(expected)
    assert row["threshold"] == pytest.approx(0.15)  # the calm series' scale is below min_jump
    assert row["severity"] == "soft"
    assert result.scores["quality"][40] == pytest.approx(0.7)


def test_one_day_spike_is_two_jumps() -> None:
    """A single bad close (with its range) jumps away and back: both moves are flagged."""
    frame = calm(n=60)
    values = {c: frame[c][40] * 1.5 for c in ("open", "high", "low", "close", "vwap")}
    assert planted(validate(plant(frame, 40, **values))) == {
        40: ["price_jump"],
        41: ["price_jump"],
    }


def test_price_jump_needs_history() -> None:
    """A jump among the first bars of a symbol is not judged."""
    assert planted(validate(scale_from(calm(n=40), 5, 2.0))) == {}


def test_jump_threshold_follows_volatility() -> None:
    """On a volatile series the limit is k × robust σ, above min_jump."""
    rng = np.random.default_rng(3)
    frame = calm(n=60)
    swings = np.exp(np.cumsum(rng.normal(0, 0.08, 60)))  # σ = 8 % a day
    frame = frame.with_columns(
        *(pl.col(c) * swings for c in ("open", "high", "low", "close", "vwap"))
    )
    quiet = validate(scale_from(frame, 40, 1.5))  # log 1.5 = 0.41 < 10 × 1.4826 × MAD
    assert "price_jump" not in quiet.log["rule"].to_list()
    loud = validate(scale_from(frame, 40, 10.0))
    assert fired(loud.log, "price_jump") == [("AAA", frame["date"][40], "price_jump")]
    assert loud.log["threshold"][0] > 0.15


AMZN = ("AMZN", D(2022, 4, 1), D(2022, 6, 6), 2400.0)
GOOGL = ("GOOGL", D(2022, 5, 2), D(2022, 7, 18), 2200.0)


def split_series(
    symbol: str, start: dt.date, day: dt.date, price: float, volume: float = 1.0
) -> tuple[pl.DataFrame, int]:
    """A calm series with a raw 1-for-20 split on ``day``; and that day's row."""
    frame = calm(symbol, start, 70, price=price)
    row = frame["date"].to_list().index(day)
    return scale_from(frame, row, 1 / 20, volume=volume), row


def twenty_for_one(symbol: str, day: dt.date) -> pl.DataFrame:
    """The split frame of a 1-for-20 split."""
    return pl.DataFrame(
        {"symbol": [symbol], "execution_date": [day], "split_from": [1.0], "split_to": [20.0]},
        schema=SPLIT_SCHEMA,
    )


@pytest.mark.parametrize(("symbol", "start", "day", "price"), [AMZN, GOOGL])
def test_split_explains_the_jump(symbol: str, start: dt.date, day: dt.date, price: float) -> None:
    """A 1-for-20 split (prices ÷20, share volume ×20) is an explained jump when passed."""
    frame, row = split_series(symbol, start, day, price, volume=20.0)
    assert frame["close"][row] / frame["close"][row - 1] < 0.06  # raw close drops ~95 %

    explained = validate(frame, splits=twenty_for_one(symbol, day))
    assert planted(explained) == {row: ["explained_jump"]}
    assert explained.scores["quality"][row] == 1.0
    assert explained.scores["validated"][row]
    (entry,) = explained.log.iter_rows(named=True)
    assert entry["severity"] == "info"
    assert entry["value"] == pytest.approx(math.log(frame["close"][row] / frame["close"][row - 1]))

    unexplained = validate(frame)  # volume ×20 is then an anomaly too, on the split day on
    assert fired(unexplained.log, "price_jump") == [(symbol, day, "price_jump")]
    assert planted(unexplained)[row] == ["price_jump", "volume_anomaly"]


@pytest.mark.parametrize(
    "splits",
    [
        twenty_for_one(AMZN[0], AMZN[2] - dt.timedelta(days=2)),  # a day without a bar
        twenty_for_one("OTHER", AMZN[2]),  # another symbol
        pl.DataFrame(schema=SPLIT_SCHEMA),
        None,
    ],
)
def test_split_elsewhere_explains_nothing(splits: pl.DataFrame | None) -> None:
    """A split of another day or symbol leaves the raw drop a price jump, alone."""
    symbol, start, day, price = AMZN
    frame, row = split_series(symbol, start, day, price)  # volume left unchanged
    assert planted(validate(frame, splits=splits)) == {row: ["price_jump"]}


def test_unsplit_volume_after_a_passed_split_is_an_anomaly() -> None:
    """With the split passed, share volume that did not grow ×20 is anomalous (÷20 per share)."""
    symbol, start, day, price = AMZN
    frame, row = split_series(symbol, start, day, price)
    found = planted(validate(frame, splits=twenty_for_one(symbol, day)))
    assert found[row] == ["volume_anomaly", "explained_jump"]


def test_dividend_explains_the_drop() -> None:
    """A special dividend of 20 % of the price explains the ex-date drop."""
    frame = calm(n=60)
    cash = 0.2 * frame["close"][39]
    frame = scale_from(frame, 40, 0.8)
    ex_date = frame["date"][40]
    dividends = pl.DataFrame(
        {"symbol": ["AAA"], "ex_dividend_date": [ex_date], "cash_amount": [cash]},
    ).with_columns(
        pl.lit(None, pl.Date).alias("declaration_date"),
        pl.lit(None, pl.Date).alias("record_date"),
        pl.lit(None, pl.Date).alias("pay_date"),
        pl.lit(4, pl.Int64).alias("frequency"),
        pl.lit("SC").alias("dividend_type"),
    )
    assert dividends.schema == DIVIDEND_SCHEMA
    assert planted(validate(frame, dividends=dividends)) == {40: ["explained_jump"]}
    assert planted(validate(frame)) == {40: ["price_jump"]}
    small = dividends.with_columns(pl.col("cash_amount") * 0.1)  # explains only 2 % of 20 %
    assert planted(validate(frame, dividends=small)) == {40: ["price_jump"]}


def test_bad_actions_are_ignored() -> None:
    """Splits and dividends with zero, negative, NaN or missing numbers explain nothing."""
    symbol, start, day, price = AMZN
    frame, row = split_series(symbol, start, day, price)
    bad = pl.DataFrame(
        {
            "symbol": [symbol] * 4,
            "execution_date": [day] * 4,
            "split_from": [0.0, -1.0, NAN, None],
            "split_to": [20.0, 20.0, 20.0, 20.0],
        },
        schema=SPLIT_SCHEMA,
    )
    assert planted(validate(frame, splits=bad)) == {row: ["price_jump"]}
