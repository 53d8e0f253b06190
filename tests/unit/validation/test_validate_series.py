"""validate across symbols, orders and batches: windows stay per symbol and trail."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from marketdata.bars import BAR_SCHEMA, SPLIT_SCHEMA
from marketdata.validation import (
    LOG_SCHEMA,
    LOOKBACK_SESSIONS,
    Flag,
    Thresholds,
    validate,
)
from tests.unit.validation.factories import bar, calm, frame_of, plant, scale_from

D = dt.date


def eventful(symbol: str = "AAA", n: int = 90, seed: int = 0) -> pl.DataFrame:
    """A calm series with one of most rules planted, none in the first 35 bars."""
    frame = calm(symbol, D(2023, 1, 3), n, seed=seed)
    frame = scale_from(frame, 40, 1.6)  # price_jump
    frame = plant(frame, 50, volume=frame["volume"][50] * 80)  # volume_anomaly
    frame = plant(frame, 55, volume=0.0)  # zero_volume
    frame = plant(frame, 60, close=float("nan"))  # non_finite_price
    same = frame.row(64, named=True)
    frame = plant(frame, 65, volume=0.0, **{c: same[c] for c in ("open", "high", "low", "close")})
    frame = scale_from(frame, 70, 0.5)  # split-like drop, explained below
    return plant(frame, 80, vwap=frame["high"][80] * 1.2)  # vwap_outside_range


def splits_of(frame: pl.DataFrame, symbol: str = "AAA") -> pl.DataFrame:
    """A 2-for-1 split on the 71st bar's date."""
    day = frame["date"][70]
    return pl.DataFrame(
        {"symbol": [symbol], "execution_date": [day], "split_from": [1.0], "split_to": [2.0]},
        schema=SPLIT_SCHEMA,
    )


def test_eventful_series_fires_where_planted() -> None:
    """Each planted defect fires its rule on its row and nowhere else."""
    frame = eventful()
    result = validate(frame, splits=splits_of(frame))
    masks = result.scores["flags"].to_list()
    expected = {
        40: Flag.PRICE_JUMP,
        50: Flag.VOLUME_ANOMALY,
        55: Flag.ZERO_VOLUME,
        60: Flag.NON_FINITE_PRICE,
        65: Flag.ZERO_VOLUME | Flag.STALE_BAR,
        70: Flag.EXPLAINED_JUMP,
        80: Flag.VWAP_OUTSIDE_RANGE,
    }
    assert {i: m for i, m in enumerate(masks) if m} == {i: int(m) for i, m in expected.items()}


def test_windows_do_not_cross_symbols() -> None:
    """A symbol's first bars are not compared with the previous symbol's last ones."""
    high = calm("AAA", n=60, price=500.0, volume=1e8)
    low = calm("BBB", n=60, price=2.0, volume=1e3, seed=1)
    result = validate(pl.concat([high, low]))
    assert result.scores["flags"].to_list() == [0] * 120


def test_short_symbol_after_a_long_one_has_no_history() -> None:
    """A jump in a symbol's 4th bar is not judged, whatever came before in the frame."""
    short = scale_from(calm("BBB", n=8, seed=1), 3, 2.0)
    assert validate(pl.concat([calm("AAA", n=60), short])).scores["flags"].sum() == 0


def test_partial_windows_per_symbol() -> None:
    """With min_history bars of its own, a symbol's jump is judged on them alone."""
    late = scale_from(calm("BBB", n=30, seed=1), 12, 2.0)
    result = validate(pl.concat([calm("AAA", n=60), late]))
    assert [i for i, m in enumerate(result.scores["flags"]) if m] == [60 + 12]


def test_unsorted_input_gives_the_same_answers() -> None:
    """Shuffled rows get the same per-row scores as sorted rows, and the same log."""
    frames = [eventful("AAA"), eventful("BBB", seed=1), eventful("CCC", seed=2)]
    frame = pl.concat(frames)
    splits = pl.concat(
        [splits_of(f, s) for f, s in zip(frames, ("AAA", "BBB", "CCC"), strict=True)]
    )
    frame = pl.concat([frame, frame[100:101]])  # a duplicate, across the shuffle
    ordered = validate(frame, splits=splits)
    shuffled_rows = frame.with_row_index("row").sample(fraction=1.0, shuffle=True, seed=5)
    shuffled = validate(shuffled_rows.drop("row"), splits=splits)
    back = shuffled.scores.with_columns(row=shuffled_rows["row"]).sort("row").drop("row")
    assert back.equals(ordered.scores)
    assert shuffled.log.equals(ordered.log)
    assert ordered.scores["flags"].to_list().count(int(Flag.DUPLICATE_DATE)) == 2


def test_appending_later_bars_changes_no_earlier_score() -> None:
    """Scores of the first bars are the same whether or not later bars are passed."""
    frame = eventful(n=90)
    splits = splits_of(frame)
    full = validate(frame, splits=splits)
    for cut in (20, 41, 51, 66, 71, 85):
        head = validate(frame[:cut], splits=splits)
        assert head.scores.equals(full.scores[:cut])
        assert head.log.equals(full.log.filter(pl.col("date") < frame["date"][cut]))


def test_lookback_is_enough() -> None:
    """Passing LOOKBACK_SESSIONS valid earlier bars judges new bars as the full history does."""
    frame = eventful(n=90)
    splits = splits_of(frame)
    full = validate(frame, splits=splits)
    for first_new in (40, 50, 70, 85):
        start = first_new - LOOKBACK_SESSIONS
        if first_new > 60 >= start:  # the NaN bar at 60 is not valid: one more is needed
            start -= 1
        part = validate(frame[start:], splits=splits)
        assert part.scores[first_new - start :].equals(full.scores[first_new:])


def test_quality_arithmetic() -> None:
    """Quality is 1 − Σ weights of the fired rules, floored at 0; hard rules fail validation."""
    rows = frame_of(
        bar("AAA", D(2024, 3, 5)),  # clean
        bar("AAA", D(2024, 3, 6), volume=0.0, close=10.6),  # zero_volume (not stale)
        bar("AAA", D(2024, 3, 9)),  # not_a_session
        bar("AAA", D(2024, 3, 10), volume=0.0, close=float("nan")),  # 3 rules, floored
    )
    result = validate(rows)
    assert result.scores["quality"].to_list() == pytest.approx([1.0, 0.8, 0.0, 0.0])
    assert result.scores["validated"].to_list() == [True, True, False, False]
    custom = Thresholds(weights={"zero_volume": 0.05, "not_a_session": 0.5})
    scores = validate(rows, thresholds=custom).scores
    assert scores["quality"].to_list() == pytest.approx([1.0, 0.95, 0.5, 0.0])
    assert scores["validated"].to_list() == [True, True, False, False]


def test_log_rows_and_schema() -> None:
    """The log has one row per fired rule, sorted by symbol, date, rule, nulls for no number."""
    rows = frame_of(
        bar("BBB", D(2024, 3, 6), vwap=12.0),
        bar("AAA", D(2024, 3, 9), close=float("nan"), volume=float("nan")),
        bar("AAA", D(2024, 3, 5), volume=-3.0),
    )
    log = validate(rows).log
    assert log.schema == LOG_SCHEMA
    assert log.rows() == [
        ("AAA", D(2024, 3, 5), "negative_volume", "hard", -3.0, 0.0),
        ("AAA", D(2024, 3, 9), "negative_volume", "hard", None, 0.0),
        ("AAA", D(2024, 3, 9), "non_finite_price", "hard", None, None),
        ("AAA", D(2024, 3, 9), "not_a_session", "hard", None, None),
        ("BBB", D(2024, 3, 6), "vwap_outside_range", "hard", 12.0, pytest.approx(11.055)),
    ]


def test_nulls_and_other_dtypes() -> None:
    """Null symbols, dates and values never raise; integer volumes are accepted."""
    frame = pl.DataFrame(
        [
            bar("AAA", D(2024, 3, 5)),
            bar("AAA", None),  # type: ignore[arg-type]
            bar(None, D(2024, 3, 5)),  # type: ignore[arg-type]
            bar("AAA", D(2024, 3, 6), open=None, vwap=None),
        ],
        schema=BAR_SCHEMA,
    ).with_columns(pl.col("volume").cast(pl.Int64))
    result = validate(frame)
    assert result.scores["flags"].to_list() == [
        0,
        int(Flag.NOT_A_SESSION),
        0,
        int(Flag.NON_FINITE_PRICE),
    ]


def test_missing_columns_are_refused() -> None:
    """A frame without a required column is a caller error."""
    with pytest.raises(ValueError, match="close"):
        validate(frame_of(bar("AAA", D(2024, 3, 5))).drop("close"))


def test_vwap_column_may_be_missing() -> None:
    """Without a vwap column every vwap is absent."""
    result = validate(frame_of(bar("AAA", D(2024, 3, 5), vwap=99.0)).drop("vwap", "transactions"))
    assert result.scores["flags"].to_list() == [0]


@pytest.mark.parametrize("scale", [1e298, 1e-300])
def test_extreme_price_levels_are_fine(scale: float) -> None:
    """A calm series priced near the float limits fires nothing and warns nothing."""
    frame = calm(n=60).with_columns(
        pl.col(c) * scale for c in ("open", "high", "low", "close", "vwap")
    )
    assert validate(frame).scores["flags"].sum() == 0


def test_hostile_frame_is_consistent() -> None:
    """Random garbage in any order never raises; scores and log agree with each other."""
    rng = np.random.default_rng(11)
    n = 5_000
    junk = [np.nan, np.inf, -np.inf, 0.0, -1.0, 1e300, 5e-324]
    columns = {}
    for name in ("open", "high", "low", "close", "volume", "vwap"):
        values = rng.lognormal(3, 1, n)
        hit = rng.random(n) < 0.05
        values[hit] = rng.choice(junk, int(hit.sum()))
        columns[name] = values
    days = np.datetime64("2023-12-20") + rng.integers(0, 60, n).astype("timedelta64[D]")
    frame = pl.DataFrame(
        {"symbol": rng.choice(["AAA", "BBB", "CCC"], n), "date": days, **columns}
    ).with_columns(pl.col("date").cast(pl.Date))
    result = validate(frame)
    scores = result.scores
    assert scores.height == n
    assert scores["symbol"].equals(frame["symbol"])
    assert ((scores["flags"] & 0xFFFF) == 0).equals(scores["validated"])
    assert scores["quality"].is_between(0.0, 1.0).all()
    bits = sum(bin(mask).count("1") for mask in scores["flags"])
    assert result.log.height == bits
    assert result.log.equals(result.log.sort("symbol", "date", "rule"))
    assert not result.log["value"].is_nan().any()
