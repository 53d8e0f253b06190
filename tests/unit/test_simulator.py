"""The synthetic market: determinism, the bar contract, realism, corporate actions, provider."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from marketdata import calendar
from marketdata.bars import BAR_SCHEMA, DIVIDEND_SCHEMA, SPLIT_SCHEMA
from marketdata.providers.base import Provider
from marketdata.providers.simulator import (
    DEFAULT_SYMBOLS,
    ORIGIN,
    MarketSimulator,
    SyntheticProvider,
)

D = dt.date
MANY = [f"S{i:03d}" for i in range(300)]
FULL = (ORIGIN, D(2025, 12, 31))


@pytest.fixture(scope="module")
def history() -> pl.DataFrame:
    """Raw bars of 300 symbols over 26 years (about 2 million rows), with returns."""
    bars = MarketSimulator(seed=11).bars(MANY, *FULL)
    return bars.with_columns(prev_close=pl.col("close").shift(1).over("symbol"))


@pytest.fixture(scope="module")
def actions() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Splits and dividends of the same 300 symbols."""
    sim = MarketSimulator(seed=11)
    return sim.splits(MANY, *FULL), sim.dividends(MANY, *FULL)


def fresh(seed: int = 1, **options: int) -> MarketSimulator:
    """A simulator without a cache, so every answer is simulated anew."""
    return MarketSimulator(seed=seed, cache_size=0, **options)


def test_default_symbols() -> None:
    """The default universe is the 15 large caps, in the documented order."""
    expected = "AAPL MSFT GOOGL AMZN NVDA META TSLA JPM V JNJ WMT PG XOM UNH HD"
    assert " ".join(DEFAULT_SYMBOLS) == expected


def test_bars_follow_the_contract() -> None:
    """Exactly BAR_SCHEMA, no nulls, sorted by symbol then date, each symbol once."""
    bars = fresh().bars(["MSFT", "AAPL", "MSFT"], D(2024, 1, 1), D(2024, 3, 31))
    assert bars.schema == BAR_SCHEMA
    assert bars.null_count().sum_horizontal().item() == 0
    assert bars.equals(bars.sort("symbol", "date"))
    assert bars["symbol"].unique(maintain_order=True).to_list() == ["AAPL", "MSFT"]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (D(2012, 10, 1), D(2012, 11, 30)),  # Hurricane Sandy
        (D(2024, 6, 29), D(2024, 7, 8)),  # a holiday and an early close
        (D(2025, 1, 1), D(2025, 1, 31)),  # Carter day of mourning
        (D(2001, 9, 1), D(2001, 9, 30)),  # September 11
    ],
)
def test_rows_are_exactly_the_sessions(start: dt.date, end: dt.date) -> None:
    """Each symbol has one row per XNYS session in the range, and no other."""
    bars = fresh().bars(["AAPL", "XOM"], start, end)
    expected = calendar.sessions(start, end).tolist()
    for symbol in ("AAPL", "XOM"):
        assert bars.filter(pl.col("symbol") == symbol)["date"].to_list() == expected


def test_same_seed_same_frames() -> None:
    """Two simulators with one seed give identical bars, splits and dividends."""
    a, b = fresh(seed=5), fresh(seed=5)
    args = (["AAPL", "KO", "ZZZZ"], D(2003, 1, 1), D(2025, 12, 31))
    assert a.bars(*args).equals(b.bars(*args))
    assert a.splits(*args).equals(b.splits(*args))
    assert a.dividends(*args).equals(b.dividends(*args))


def test_different_seed_different_bars() -> None:
    """Another seed gives another market."""
    args = (["AAPL"], D(2020, 1, 1), D(2020, 12, 31))
    assert not fresh(seed=1).bars(*args).equals(fresh(seed=2).bars(*args))


def test_same_seed_same_bars_in_another_process() -> None:
    """A new interpreter with another hash seed computes the very same bars."""
    code = (
        "import datetime as dt, sys\n"
        "from marketdata.providers.simulator import MarketSimulator\n"
        "bars = MarketSimulator(seed=3).bars(['AAPL', 'BRK.B'], dt.date(2019, 1, 1),"
        " dt.date(2019, 12, 31))\n"
        "bars.write_ipc(sys.stdout.buffer)\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, check=True, env=env
    ).stdout
    theirs = pl.read_ipc(out)
    ours = fresh(seed=3).bars(["AAPL", "BRK.B"], D(2019, 1, 1), D(2019, 12, 31))
    assert theirs.equals(ours)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (D(2020, 6, 1), D(2020, 6, 1)),
        (D(2020, 1, 1), D(2021, 12, 31)),
        (D(1990, 1, 1), D(2026, 12, 31)),
        (D(2020, 5, 29), D(2035, 12, 31)),
    ],
)
def test_a_session_does_not_depend_on_the_range(start: dt.date, end: dt.date) -> None:
    """The bar of 2020-06-01 is the same whatever range it was asked within."""
    alone = fresh().bars(["AAPL", "TSLA"], D(2020, 6, 1), D(2020, 6, 1))
    within = fresh().bars(["AAPL", "TSLA"], start, end).filter(pl.col("date") == D(2020, 6, 1))
    assert within.equals(alone)


@pytest.mark.parametrize(
    ("others", "batch_size", "workers"),
    [
        ([], 256, 1),
        (["A", "ZZZ"], 256, 1),
        (MANY[:40], 7, 2),
        (MANY[:40], 1, 3),
    ],
)
def test_a_symbol_does_not_depend_on_the_others(
    others: list[str], batch_size: int, workers: int
) -> None:
    """Bars of AAPL are the same whichever symbols, batch size and threads come with it."""
    sim = fresh(batch_size=batch_size, workers=workers)
    bars = sim.bars([*others, "AAPL"], D(2015, 1, 1), D(2016, 12, 31))
    alone = fresh().bars(["AAPL"], D(2015, 1, 1), D(2016, 12, 31))
    assert bars.filter(pl.col("symbol") == "AAPL").equals(alone)


def test_cached_answers_equal_fresh_ones() -> None:
    """A cached simulator answers a short range after a long one exactly as a fresh one."""
    cached = MarketSimulator(seed=1)
    cached.bars(["AAPL"], D(2019, 1, 1), D(2019, 1, 31))
    cached.bars(["AAPL"], D(2000, 1, 1), D(2030, 12, 31))
    again = cached.bars(["AAPL"], D(2019, 1, 1), D(2019, 12, 31))
    assert again.equals(fresh().bars(["AAPL"], D(2019, 1, 1), D(2019, 12, 31)))


def test_iter_bars_pieces_make_up_bars() -> None:
    """The pieces of iter_bars, concatenated, are the bars frame."""
    sim = fresh(batch_size=3)
    symbols = MANY[:10]
    pieces = list(sim.iter_bars(symbols, D(2020, 1, 1), D(2020, 3, 31)))
    assert len(pieces) == 4
    assert pl.concat(pieces).equals(sim.bars(symbols, D(2020, 1, 1), D(2020, 3, 31)))


def test_ohlc_constraints_hold(history: pl.DataFrame) -> None:
    """Across 300 symbols x 26 years: low > 0, low <= open/close <= high, vwap inside."""
    bad = history.filter(
        (pl.col("low") <= 0)
        | (pl.col("low") > pl.min_horizontal("open", "close"))
        | (pl.col("high") < pl.max_horizontal("open", "close"))
        | (pl.col("vwap") < pl.col("low"))
        | (pl.col("vwap") > pl.col("high"))
        | (pl.col("volume") <= 0)
        | (pl.col("volume") != pl.col("volume").round(0))
        | (pl.col("transactions") < 1)
    )
    assert bad.height == 0
    assert history.height == 300 * calendar.sessions(*FULL).size


def test_returns_look_like_a_market(history: pl.DataFrame) -> None:
    """Annual volatility is plausible, returns cluster, and volume follows the moves."""
    moves = history.filter(pl.col("prev_close").is_not_null()).with_columns(
        r=(pl.col("close") / pl.col("prev_close")).log(),
        log_volume=pl.col("volume").log(),
    )
    normal = moves.filter(pl.col("r").abs() < 0.25)  # leave out split days
    per_symbol = normal.group_by("symbol").agg(
        vol=pl.col("r").std() * 252**0.5,
        clustering=pl.corr(pl.col("r") ** 2, (pl.col("r") ** 2).shift(1)),
        volume_link=pl.corr(pl.col("r").abs(), "log_volume"),
    )
    median = per_symbol.select(pl.exclude("symbol").median()).row(0, named=True)
    assert 0.12 < median["vol"] < 0.6
    assert median["clustering"] > 0.05
    assert median["volume_link"] > 0.2


def test_early_closes_have_lower_volume(history: pl.DataFrame) -> None:
    """Volume on early-close sessions is about half the usual."""
    early = calendar.early_closes(*FULL).tolist()
    ratio = (
        history.with_columns(rel=pl.col("volume") / pl.col("volume").median().over("symbol"))
        .group_by(pl.col("date").is_in(early).alias("early"))
        .agg(pl.col("rel").median())
        .sort("early")["rel"]
        .to_list()
    )
    assert ratio[1] < 0.7 * ratio[0]


def test_volume_spikes_are_occasional(history: pl.DataFrame) -> None:
    """About 1.5 % of sessions trade more than 3x the median volume of the weeks around them."""
    usual = pl.col("volume").rolling_median(21, center=True).over("symbol")
    share = history.select((pl.col("volume") > 3 * usual).mean()).item()
    assert 0.005 < share < 0.03


def test_splits_follow_the_contract(actions: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    """SPLIT_SCHEMA, sessions only, forward and reverse ratios, one per ~8 to 20 years."""
    splits, _ = actions
    assert splits.schema == SPLIT_SCHEMA
    assert splits.equals(splits.sort("symbol", "execution_date"))
    assert all(calendar.is_session(day) for day in splits["execution_date"].to_list())
    kinds = set(zip(splits["split_to"], splits["split_from"], strict=True))
    assert {(2.0, 1.0), (3.0, 1.0), (4.0, 1.0), (3.0, 2.0), (1.0, 10.0)} == kinds
    years = 300 * calendar.sessions(*FULL).size / 252 / splits.height
    assert 8 < years < 20


def test_splits_are_raw_jumps(
    history: pl.DataFrame, actions: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    """The raw open on a split day is the previous close / ratio (within the overnight gap);
    no other overnight move is that large."""
    splits, _ = actions
    jumps = history.join(
        splits, left_on=["symbol", "date"], right_on=["symbol", "execution_date"], how="left"
    ).with_columns(
        ratio=(pl.col("split_to") / pl.col("split_from")).fill_null(1.0),
        move=pl.col("prev_close") / pl.col("open"),
    )
    on_split = jumps.filter(pl.col("split_to").is_not_null())
    assert on_split.height == splits.height
    assert np.abs(on_split["move"].to_numpy() / on_split["ratio"].to_numpy() - 1).max() < 0.1
    others = jumps.filter(pl.col("split_to").is_null() & pl.col("prev_close").is_not_null())
    assert (others["move"].log().abs() < np.log(1.3)).all()


def test_dividends_follow_the_contract(
    history: pl.DataFrame, actions: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    """Quarterly cash dividends on about 60 % of symbols, with ordered, plausible dates."""
    _, dividends = actions
    assert dividends.schema == DIVIDEND_SCHEMA
    assert dividends.equals(dividends.sort("symbol", "ex_dividend_date"))
    assert 0.45 < dividends["symbol"].n_unique() / 300 < 0.75
    assert set(dividends["frequency"]) == {4}
    assert set(dividends["dividend_type"]) == {"CD"}
    per_year = dividends.group_by("symbol", pl.col("ex_dividend_date").dt.year()).len()
    assert per_year.filter(pl.col("ex_dividend_date").is_between(2001, 2024))["len"].max() == 4
    ex = dividends["ex_dividend_date"].to_list()
    assert all(calendar.is_session(day) for day in ex)
    assert all(
        calendar.sessions(d, r).size == 2 for d, r in zip(ex, dividends["record_date"], strict=True)
    )
    declared = (dividends["ex_dividend_date"] - dividends["declaration_date"]).dt.total_days()
    paid = (dividends["pay_date"] - dividends["ex_dividend_date"]).dt.total_days()
    assert 28 <= declared.to_numpy().min() <= declared.to_numpy().max() <= 50
    assert 14 <= paid.to_numpy().min() <= paid.to_numpy().max() <= 33


def test_dividends_drop_the_raw_open(
    history: pl.DataFrame, actions: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    """Cash is 0.2-1 % of the previous close, and the open falls by about that much."""
    _, dividends = actions
    ex_days = history.join(
        dividends, left_on=["symbol", "date"], right_on=["symbol", "ex_dividend_date"]
    ).filter(pl.col("cash_amount") >= 0.1)
    assert ex_days.height > 5000
    prev_close = ex_days["prev_close"].to_numpy()
    yield_ = ex_days["cash_amount"].to_numpy() / prev_close
    assert 0.0015 < yield_.min() <= yield_.max() < 0.0105
    gap = ex_days["open"].to_numpy() / prev_close - 1
    assert abs((gap + yield_).mean()) < 0.001
    assert gap.mean() < -0.004


def test_grouped_is_the_bars_of_one_session() -> None:
    """grouped(session) equals each symbol's bar for that session; a holiday has none."""
    sim = fresh()
    symbols = ["XOM", "AAPL", "NEW"]
    day = D(2021, 3, 15)
    expected = sim.bars(symbols, D(2021, 1, 1), D(2021, 12, 31)).filter(pl.col("date") == day)
    assert sim.grouped(day, symbols).equals(expected)
    assert sim.grouped(D(2021, 12, 24), symbols).height == 0


@pytest.mark.parametrize(
    ("start", "end", "first", "last"),
    [
        (D(1995, 1, 1), D(1999, 12, 31), None, None),  # before ORIGIN
        (D(1999, 6, 1), D(2000, 1, 5), ORIGIN, D(2000, 1, 5)),
        (D(2035, 12, 20), D(2040, 1, 1), D(2035, 12, 20), calendar.LAST_DATE),
        (D(2036, 1, 1), D(2040, 1, 1), None, None),  # after the calendar
    ],
)
def test_edges_of_the_simulated_history(
    start: dt.date, end: dt.date, first: dt.date | None, last: dt.date | None
) -> None:
    """History starts at ORIGIN and ends with the calendar; outside, there are no rows."""
    bars = fresh().bars(["AAPL"], start, end)
    assert bars.schema == BAR_SCHEMA
    assert (bars["date"].min(), bars["date"].max()) == (first, last)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda s: s.bars(["AAPL"], D(2020, 2, 1), D(2020, 1, 1)), ValueError, "after end"),
        (lambda s: s.splits(["AAPL"], D(2020, 2, 1), D(2020, 1, 1)), ValueError, "after end"),
        (lambda s: s.bars("AAPL", D(2020, 1, 1), D(2020, 2, 1)), TypeError, "not the string"),
        (lambda s: s.bars([""], D(2020, 1, 1), D(2020, 2, 1)), ValueError, "1 to 20"),
        (lambda s: s.bars(["X" * 21], D(2020, 1, 1), D(2020, 2, 1)), ValueError, "1 to 20"),
    ],
)
def test_bad_requests_are_refused(call: object, error: type[Exception], message: str) -> None:
    """Swapped ranges, a bare string and impossible symbols raise."""
    assert callable(call)
    with pytest.raises(error, match=message):
        call(fresh())


@pytest.mark.parametrize(
    "options", [{"seed": -1}, {"batch_size": 0}, {"workers": 0}, {"cache_size": -1}]
)
def test_bad_options_are_refused(options: dict[str, int]) -> None:
    """A negative seed and non-positive sizes raise ValueError."""
    with pytest.raises(ValueError, match="must be"):
        MarketSimulator(**options)


def test_many_symbols_quickly() -> None:
    """200 symbols x 5 years come back in one call (speed targets live in bench/simulate.py)."""
    bars = MarketSimulator(seed=2).bars(MANY[:200], D(2015, 1, 1), D(2019, 12, 31))
    assert bars.height == 200 * calendar.sessions(D(2015, 1, 1), D(2019, 12, 31)).size


async def test_provider_serves_the_simulator() -> None:
    """SyntheticProvider answers exactly what its simulator does."""
    sim = fresh(seed=4)
    provider: Provider = SyntheticProvider(simulator=sim)
    assert provider.name == "synthetic"
    start, end = D(2020, 1, 1), D(2020, 12, 31)
    assert (await provider.daily_bars("AAPL", start, end)).equals(sim.bars(["AAPL"], start, end))
    day = D(2020, 6, 1)
    grouped = await provider.grouped_daily(day)
    assert grouped.equals(sim.grouped(day, DEFAULT_SYMBOLS))
    assert grouped.height == len(DEFAULT_SYMBOLS)
    everyone = sim.splits(DEFAULT_SYMBOLS, ORIGIN, calendar.LAST_DATE)
    assert (await provider.splits()).equals(everyone)
    since = await provider.dividends(["AAPL", "MSFT"], since=D(2010, 1, 1))
    assert since.equals(sim.dividends(["AAPL", "MSFT"], D(2010, 1, 1), calendar.LAST_DATE))
    await provider.aclose()


async def test_provider_stops_at_today() -> None:
    """With ``today``, nothing later is served: bars, grouped bars and actions stop there."""
    today = D(2021, 6, 30)
    provider = SyntheticProvider(seed=4, universe=["AAPL", "KO"], today=today)
    bars = await provider.daily_bars("AAPL", D(2021, 6, 1), D(2021, 12, 31))
    assert bars["date"].max() == today
    assert (await provider.daily_bars("AAPL", D(2022, 1, 1), D(2022, 2, 1))).height == 0
    assert (await provider.grouped_daily(D(2021, 7, 1))).height == 0
    assert (await provider.grouped_daily(today)).height == 2
    splits = await provider.splits()
    dividends = await provider.dividends(since=D(2021, 1, 1))
    assert set(dividends["symbol"]) <= {"AAPL", "KO"}
    for frame, column in ((splits, "execution_date"), (dividends, "ex_dividend_date")):
        assert frame.filter(pl.col(column) > today).is_empty()
    assert (await provider.splits(since=D(2022, 1, 1))).height == 0
    with pytest.raises(ValueError, match="after end"):
        await provider.daily_bars("AAPL", D(2021, 2, 1), D(2021, 1, 1))
