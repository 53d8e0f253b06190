"""Adjusted views computed from raw bars and corporate actions."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from marketdata.adjust import adjust_bars, dividend_factors
from marketdata.bars import empty_dividends
from marketdata.providers.polygon_parse import aggregates
from tests.support.factories import make_bars

DATA = Path(__file__).parents[1] / "data" / "polygon"

#: AAPL's splits since 2005 (2:1 2005-02-28 lies before the sample and must not apply).
AAPL_SPLITS = pl.DataFrame(
    {
        "symbol": ["AAPL"] * 3,
        "execution_date": [dt.date(2005, 2, 28), dt.date(2014, 6, 9), dt.date(2020, 8, 31)],
        "split_from": [1.0, 1.0, 1.0],
        "split_to": [2.0, 7.0, 4.0],
    }
)


def splits(*rows: tuple[str, float, float]) -> pl.DataFrame:
    """A split frame from (ISO date, from, to) rows."""
    return pl.DataFrame(
        {
            "symbol": ["X"] * len(rows),
            "execution_date": [dt.date.fromisoformat(r[0]) for r in rows],
            "split_from": [r[1] for r in rows],
            "split_to": [r[2] for r in rows],
        },
        schema_overrides={"execution_date": pl.Date},
    )


def dividends(*rows: tuple[str, float]) -> pl.DataFrame:
    """A dividend frame from (ISO ex-date, amount) rows."""
    frame = empty_dividends()
    return pl.concat(
        [
            frame,
            pl.DataFrame(
                {
                    "symbol": ["X"] * len(rows),
                    "ex_dividend_date": [dt.date.fromisoformat(r[0]) for r in rows],
                    "cash_amount": [r[1] for r in rows],
                },
                schema_overrides={"ex_dividend_date": pl.Date},
            ),
        ],
        how="diagonal_relaxed",
    )


def test_split_adjusted_aapl_matches_polygon_adjusted_sample() -> None:
    """AAPL's traded prices of April 2005, split-adjusted by us, equal Polygon's adjusted=true.

    Polygon rounds adjusted prices to 4 decimals; the raw bars are the traded values (2 dp).
    """
    body = json.loads(
        (DATA / "v2_aggs_ticker_AAPL_range_1_day_2005-04-01_2005-04-04.json").read_text()
    )
    theirs = aggregates(body, endpoint="range", symbol="AAPL", path="/v2/aggs")
    raw = theirs.with_columns(
        *(pl.col(c) * 28.0 for c in ("open", "high", "low", "close")),
        pl.col("volume") / 28.0,
    ).with_columns(pl.col("open", "high", "low", "close").round(2), pl.col("volume").round(0))
    ours = adjust_bars(raw, splits=AAPL_SPLITS, adjusted="splits")
    for col in ("open", "high", "low", "close"):
        assert ours[col].round(4).to_list() == theirs[col].to_list(), col
    assert ours["volume"].to_list() == theirs["volume"].to_list()
    assert raw["close"].to_list() == [40.89, 41.09]


def test_a_one_to_twenty_split_makes_the_series_continuous() -> None:
    """A 1:20 split (AMZN 2022-06-06): raw drops 95 %, the split-adjusted series does not."""
    dates = [dt.date(2022, 6, 1), dt.date(2022, 6, 2), dt.date(2022, 6, 3), dt.date(2022, 6, 6)]
    raw = make_bars(
        "AMZN", dates=dates, close=[2400.0, 2480.0, 2440.0, 124.8], volume=[1e6, 1e6, 1e6, 2e7]
    )
    ours = adjust_bars(raw, splits=splits(("2022-06-06", 1.0, 20.0)), adjusted="splits")
    assert ours["close"].to_list() == [120.0, 124.0, 122.0, 124.8]
    assert ours["volume"].to_list() == [2e7, 2e7, 2e7, 2e7]
    assert ours["transactions"].to_list() == raw["transactions"].to_list()


def test_none_returns_raw_and_unknown_mode_is_refused() -> None:
    """``none`` is the identity; anything else than none|splits|all is a clear error."""
    raw = make_bars("X", days=3)
    assert adjust_bars(raw, splits=splits(("2030-01-02", 1, 2)), adjusted="none").equals(raw)
    with pytest.raises(ValueError, match="none, splits, all"):
        adjust_bars(raw, splits=splits(), adjusted="raw")  # type: ignore[arg-type]


def test_reverse_split_and_multiple_splits_compound() -> None:
    """A 1-for-10 reverse split multiplies earlier prices; two splits compound."""
    dates = [dt.date(2020, 1, 2), dt.date(2021, 1, 4), dt.date(2022, 1, 3)]
    raw = make_bars("X", dates=dates, close=[10.0, 20.0, 5.0])
    ours = adjust_bars(
        raw, splits=splits(("2021-01-04", 1.0, 4.0), ("2022-01-03", 10.0, 1.0)), adjusted="splits"
    )
    assert ours["close"].to_list() == [25.0, 200.0, 5.0]


def test_dividend_back_adjustment_uses_the_previous_close() -> None:
    """``all``: bars before an ex-date × (1 − D / previous close); later bars untouched."""
    dates = [dt.date(2024, 2, 6), dt.date(2024, 2, 7), dt.date(2024, 2, 8), dt.date(2024, 2, 9)]
    raw = make_bars("X", dates=dates, close=[100.0, 101.0, 100.0, 99.0])
    ours = adjust_bars(
        raw, splits=splits(), dividends=dividends(("2024-02-08", 1.01)), adjusted="all"
    )
    assert ours["close"].to_list() == pytest.approx([99.0, 99.99, 100.0, 99.0])
    # splits-only ignores the dividend
    assert (
        adjust_bars(
            raw, splits=splits(), dividends=dividends(("2024-02-08", 1.01)), adjusted="splits"
        )["close"].to_list()
        == raw["close"].to_list()
    )


def test_dividend_on_a_split_day_is_put_in_post_split_units() -> None:
    """A 2:1 split and a 1.00 dividend on the same day: factor 1 − 1 / (200 / 2)."""
    dates = [dt.date(2024, 3, 1), dt.date(2024, 3, 4)]
    raw = make_bars("X", dates=dates, close=[200.0, 99.0])
    factors = dividend_factors(
        raw["date"], raw["close"], splits(("2024-03-04", 1, 2)), dividends(("2024-03-04", 1.0))
    )
    assert factors.tolist() == pytest.approx([0.99, 1.0])


def test_unusable_dividends_are_skipped() -> None:
    """No earlier bar, or a dividend at least the price, leaves prices alone."""
    dates = [dt.date(2024, 2, 6), dt.date(2024, 2, 7)]
    raw = make_bars("X", dates=dates, close=[10.0, 10.0])
    factors = dividend_factors(
        raw["date"], raw["close"], splits(), dividends(("2024-02-06", 1.0), ("2024-02-07", 50.0))
    )
    assert factors.tolist() == [1.0, 1.0]


def test_empty_frames_pass_through() -> None:
    """An empty series adjusts to an empty series."""
    raw = make_bars("X", days=0)
    assert adjust_bars(raw, splits=splits(("2024-01-02", 1, 2)), adjusted="all").is_empty()


def test_actions_on_or_before_the_first_bar_change_nothing() -> None:
    """Splits and dividends dated on or before the first bar leave the series as stored (the
    short cut taken for series without later actions), while one a day later still applies."""
    dates = [dt.date(2024, 3, 1), dt.date(2024, 3, 4), dt.date(2024, 3, 5)]
    raw = make_bars("X", dates=dates, close=[200.0, 99.0, 98.0])
    early_splits = splits(("2020-01-02", 1, 4), ("2024-03-01", 1, 2))
    early_dividends = dividends(("2024-03-01", 1.0))
    for mode in ("splits", "all"):
        same = adjust_bars(raw, splits=early_splits, dividends=early_dividends, adjusted=mode)
        assert same.equals(raw), mode
    later = adjust_bars(raw, splits=splits(("2024-03-04", 1, 2)), adjusted="splits")
    assert later["close"].to_list() == [100.0, 99.0, 98.0]
    paid = adjust_bars(
        raw, splits=splits(), dividends=dividends(("2024-03-04", 2.0)), adjusted="all"
    )
    assert paid["close"].to_list() == pytest.approx([198.0, 99.0, 98.0])
