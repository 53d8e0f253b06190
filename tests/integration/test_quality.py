"""Validation on every write, re-scoring, gap counts and adjusted reads, on both backends."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from marketdata import calendar
from marketdata.providers.simulator import MarketSimulator
from marketdata.service.actions import store_actions
from marketdata.service.history import read_history
from marketdata.service.quality import revalidate, symbol_gaps, write_bars
from marketdata.storage import Store
from marketdata.validation import validate
from tests.support.factories import AT

SYMBOLS = ["AAA", "BBB"]
START, END = dt.date(2021, 1, 4), dt.date(2022, 12, 30)
SIM = MarketSimulator(seed=7)


def sessions(start: dt.date, end: dt.date) -> list[dt.date]:
    """XNYS sessions in [start, end] as dates."""
    return [d.astype(dt.date) for d in calendar.sessions(start, end)]


async def stored_scores(store: Store, symbol: str) -> pl.DataFrame:
    """(date, flags, quality, validated) of every stored bar of ``symbol``."""
    return (await store.read_bars(symbol)).select("date", "flags", "quality", "validated")


async def test_scores_written_in_pieces_equal_one_pass_over_everything(store: Store) -> None:
    """Chunks written out of order (gaps filled later) end with the scores of a full pass."""
    bars = SIM.bars(SYMBOLS, START, END)
    bars = bars.with_columns(  # a couple of soft and hard faults to score
        pl.when(pl.int_range(pl.len()) == 100)
        .then(0.0)
        .otherwise(pl.col("volume"))
        .alias("volume"),
        pl.when(pl.int_range(pl.len()) == 300)
        .then(pl.col("low") * 0.5)
        .otherwise(pl.col("high"))
        .alias("high"),
    )
    dates = sessions(START, END)
    pieces = [
        bars.filter(pl.col("date").is_between(dates[200], dates[350])),
        bars.filter(pl.col("date") > dates[350]),
        bars.filter(pl.col("date") < dates[120]),
        bars.filter(pl.col("date").is_between(dates[120], dates[199])),
    ]
    for piece in pieces:
        await write_bars(store, piece, source="test", at=AT)
    expected = validate(bars)
    for symbol in SYMBOLS:
        want = (
            pl.concat(
                [
                    bars.select("symbol", "date"),
                    expected.scores.select("flags", "quality", "validated"),
                ],
                how="horizontal",
            )
            .filter(pl.col("symbol") == symbol)
            .drop("symbol")
            .sort("date")
        )
        got = await stored_scores(store, symbol)
        assert got.equals(want), symbol
    logged = pl.concat([await store.read_validation_log(s) for s in SYMBOLS])
    assert (
        logged.select("symbol", "date", "rule")
        .sort(pl.all())
        .equals(expected.log.select("symbol", "date", "rule").sort(pl.all()))
    )
    statuses = {s.symbol: s for s in await store.symbol_statuses()}
    assert sum(s.validated_count for s in statuses.values()) == int(
        expected.scores["validated"].sum()
    )
    assert [s.gap_count for s in statuses.values()] == [0, 0]


async def test_gap_counts_follow_missing_sessions_and_their_filling(store: Store) -> None:
    """A removed session is one gap; holidays are none; filling the gap clears it."""
    bars = SIM.bars(["AAA"], dt.date(2012, 10, 1), dt.date(2013, 1, 31))  # Sandy closure inside
    hole = dt.date(2012, 11, 20)
    await write_bars(store, bars.filter(pl.col("date") != hole), source="test", at=AT)
    (status,) = await store.symbol_statuses(["AAA"])
    assert status.gap_count == 1
    gaps = await symbol_gaps(store, "AAA")
    assert [(g.start, g.end, g.sessions) for g in gaps] == [(hole, hole, 1)]
    await write_bars(store, bars.filter(pl.col("date") == hole), source="test", at=AT)
    (status,) = await store.symbol_statuses(["AAA"])
    assert status.gap_count == 0
    assert await symbol_gaps(store, "AAA") == []


async def test_a_bar_on_a_holiday_is_kept_flagged_and_is_not_a_gap(store: Store) -> None:
    """A bar dated Christmas is stored, fails validation, and does not hide a missing session."""
    bars = SIM.bars(["AAA"], dt.date(2023, 12, 1), dt.date(2024, 1, 31))
    christmas = bars.filter(pl.col("date") == dt.date(2023, 12, 22)).with_columns(
        pl.lit(dt.date(2023, 12, 25)).alias("date")
    )
    missing = dt.date(2024, 1, 10)
    frame = pl.concat([bars.filter(pl.col("date") != missing), christmas]).sort("date")
    await write_bars(store, frame, source="test", at=AT)
    got = await store.read_bars("AAA")
    holiday = got.filter(pl.col("date") == dt.date(2023, 12, 25))
    assert holiday["validated"].to_list() == [False]
    (status,) = await store.symbol_statuses(["AAA"])
    assert status.gap_count == 1
    assert status.validated_count == status.bar_count - 1


async def test_duplicate_rows_keep_the_last_flagged(store: Store) -> None:
    """A repeated (symbol, date) in one write keeps the last row, marked duplicate_date."""
    bars = SIM.bars(["AAA"], dt.date(2024, 3, 1), dt.date(2024, 3, 8))
    again = bars[2:3].with_columns(pl.col("close") * 1.01)
    await write_bars(store, pl.concat([bars, again]), source="test", at=AT)
    got = await store.read_bars("AAA")
    assert got.height == bars.height
    row = got.filter(pl.col("date") == bars["date"][2])
    assert row["close"].to_list() == again["close"].to_list()
    assert row["validated"].to_list() == [False]
    rules = (await store.read_validation_log("AAA"))["rule"].to_list()
    assert rules.count("duplicate_date") == 1


async def test_non_finite_rows_are_skipped_not_stored(store: Store) -> None:
    """A NaN price cannot be stored (SQLite has no NaN); the other bars are written."""
    bars = SIM.bars(["AAA"], dt.date(2024, 3, 1), dt.date(2024, 3, 8))
    broken = bars.with_columns(
        pl.when(pl.int_range(pl.len()) == 1)
        .then(float("nan"))
        .otherwise(pl.col("open"))
        .alias("open")
    )
    counts = await write_bars(store, broken, source="test", at=AT)
    assert counts.inserted == bars.height - 1


AMZN_SPLIT = pl.DataFrame(
    {
        "symbol": ["AMZN"],
        "execution_date": [dt.date(2022, 6, 6)],
        "split_from": [1.0],
        "split_to": [20.0],
    }
)


def amzn_raw() -> pl.DataFrame:
    """Calm raw AMZN-like bars around its 1:20 split of 2022-06-06 (prices drop 95 %)."""
    days = sessions(dt.date(2022, 3, 1), dt.date(2022, 7, 29))
    raw = MarketSimulator(seed=3).bars(["AMZN"], days[0], days[-1])
    before = pl.col("date") < dt.date(2022, 6, 6)
    scale = pl.when(before).then(20.0).otherwise(1.0)
    return raw.with_columns(
        *(pl.col(c) * scale for c in ("open", "high", "low", "close", "vwap")),
        pl.col("volume") / scale,
    )


async def test_a_split_learned_later_explains_the_jump_and_adjusts_reads(store: Store) -> None:
    """Raw bars with a 1:20 drop: flagged until the split is known; then explained, and
    split-adjusted reads are continuous at once, with nothing re-downloaded."""
    raw = amzn_raw()
    await write_bars(store, raw, source="test", at=AT)
    split_day = dt.date(2022, 6, 6)
    rules = await store.read_validation_log("AMZN", start=split_day, end=split_day)
    assert rules["rule"].to_list() == ["price_jump"]
    before = await read_history(store, "AMZN", adjusted="splits")
    assert before["close"].to_list() == raw["close"].to_list()  # no split known yet

    report = await store_actions(store, splits=AMZN_SPLIT, source="file", at=AT)
    assert report.rescored == ("AMZN",)
    rules = await store.read_validation_log("AMZN", start=split_day, end=split_day)
    assert rules["rule"].to_list() == ["explained_jump"]
    adjusted = await read_history(store, "AMZN", adjusted="splits")
    closes = adjusted["close"].to_numpy()
    returns = abs(closes[1:] / closes[:-1] - 1)
    assert returns.max() < 0.15
    pre = adjusted.filter(pl.col("date") < split_day)
    assert pre["close"].to_list() == pytest.approx(
        (raw.filter(pl.col("date") < split_day)["close"] / 20).to_list(), rel=1e-15
    )
    assert pre["volume"].to_list() == pytest.approx(
        (raw.filter(pl.col("date") < split_day)["volume"] * 20).to_list(), rel=1e-15
    )
    raw_read = await read_history(store, "AMZN", adjusted="none")
    assert raw_read["close"].to_list() == raw["close"].to_list()


async def test_revalidate_reports_rates_rules_and_gaps(store: Store) -> None:
    """Re-scoring summarises each symbol; nothing changes when nothing did."""
    bars = SIM.bars(SYMBOLS, dt.date(2024, 1, 2), dt.date(2024, 6, 28))
    hole = dt.date(2024, 3, 5)
    frame = bars.filter(~((pl.col("symbol") == "BBB") & (pl.col("date") == hole)))
    await write_bars(store, frame, source="test", at=AT)
    results = {q.symbol: q for q in await revalidate(store, at=AT)}
    assert set(results) == set(SYMBOLS)
    assert all(q.changed == 0 for q in results.values())
    assert results["BBB"].missing == 1
    assert results["AAA"].rate == 1.0
    assert results["BBB"].bars == results["AAA"].bars - 1


async def test_only_symbols_whose_actions_change_are_rescored(store: Store) -> None:
    """Loading the same actions again re-scores nothing; one new dividend re-scores only its
    symbol, though the refresh names every symbol."""
    bars = SIM.bars(SYMBOLS, START, END)
    await write_bars(store, bars, source="test", at=AT)
    dividends = SIM.dividends(SYMBOLS, START, END)
    first = await store_actions(store, dividends=dividends, source="test", at=AT)
    assert set(first.rescored) == set(dividends["symbol"].to_list())
    again = await store_actions(store, dividends=dividends, source="test", at=AT)
    assert again.rescored == ()
    extra = pl.DataFrame(
        {"symbol": ["AAA"], "ex_dividend_date": [dt.date(2022, 12, 1)], "cash_amount": [0.5]}
    )
    later = await store_actions(
        store, dividends=pl.concat([dividends, extra], how="diagonal_relaxed"), source="test", at=AT
    )
    assert later.rescored == ("AAA",)
