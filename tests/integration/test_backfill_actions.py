"""Splits and dividends in backfills, against the local Polygon look-alike, on both backends.

Every range a backfill fetches bars for gets its corporate actions from the provider that
served the bars; real bars replacing simulated ones come with the real actions only; and what
was already checked with the same provider costs no call again.
"""

from __future__ import annotations

import datetime as dt

import httpx
import polars as pl
import pytest

from marketdata.providers.simulator import MarketSimulator
from marketdata.service import watchlist
from marketdata.service.backfill import Target
from marketdata.service.history import read_history
from marketdata.service.runs import backfiller
from marketdata.service.simulated import SYNTHETIC, seed_if_empty
from marketdata.settings import Settings
from marketdata.storage import Store
from marketdata.testing.polygon_server import RecordedRequest
from marketdata.validation import Flag
from tests.integration.test_backfill import NOW, runner_for
from tests.support.polygon import KEY, TODAY, Upstream

#: The fake Polygon's AAPL 1:4 split and PG 1:2 split (seed 0).
AAPL_SPLIT = dt.date(2026, 3, 9)
PG_SPLIT = dt.date(2021, 10, 4)
SERVED = MarketSimulator(seed=0)
SPLIT_COLUMNS = ["symbol", "execution_date", "split_from", "split_to"]
DIVIDEND_COLUMNS = ["symbol", "ex_dividend_date", "cash_amount"]  # the type is named otherwise


def action_calls(upstream: Upstream, since: int = 0) -> list[RecordedRequest]:
    """The splits and dividends requests the fake Polygon received after the first ``since``."""
    return [
        r for r in upstream.server.requests[since:] if r.path.endswith(("/splits", "/dividends"))
    ]


async def stored_actions(store: Store, symbols: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(splits, dividends) stored for ``symbols``, with their source."""
    return await store.read_splits(symbols), await store.read_dividends(symbols)


async def first_bar(store: Store, symbol: str) -> dt.date:
    """The date of ``symbol``'s first stored bar."""
    first = (await store.read_bars(symbol))["date"].min()
    assert isinstance(first, dt.date)
    return first


async def assert_actions_are_the_vendors(store: Store, symbols: list[str]) -> None:
    """Stored splits and dividends of ``symbols`` are exactly Polygon's over their stored bars
    (none from another source, none missing)."""
    splits, dividends = await stored_actions(store, symbols)
    assert set(splits["source"]) | set(dividends["source"]) <= {"polygon"}
    for symbol in symbols:
        start = await first_bar(store, symbol)
        for stored, served, columns in (
            (splits, SERVED.splits([symbol], start, TODAY), SPLIT_COLUMNS),
            (dividends, SERVED.dividends([symbol], start, TODAY), DIVIDEND_COLUMNS),
        ):
            day = columns[1]
            mine = stored.filter((pl.col("symbol") == symbol) & (pl.col(day) >= start))
            assert mine.select(columns).sort(day).equals(served.select(columns).sort(day)), (
                symbol,
                day,
            )


async def assert_adjusted_reads_match(store: Store, upstream: Upstream, symbol: str) -> None:
    """Our split-adjusted history of ``symbol`` equals the vendor's ``adjusted=true`` bars."""
    ours = await read_history(store, symbol, adjusted="splits")
    async with httpx.AsyncClient(
        base_url=upstream.url, headers={"Authorization": f"Bearer {KEY}"}
    ) as http:
        first, last = ours["date"].min(), ours["date"].max()
        response = await http.get(
            f"/v2/aggs/ticker/{symbol}/range/1/day/{first!s}/{last!s}",
            params={"adjusted": "true", "limit": 50000},
        )
    theirs = response.json()["results"]
    assert ours.height == len(theirs)
    for field, key in (("open", "o"), ("close", "c"), ("volume", "v")):
        assert ours[field].to_list() == pytest.approx([b[key] for b in theirs], rel=1e-12), (
            symbol,
            field,
        )


async def assert_jump_explained(store: Store, symbol: str, day: dt.date) -> None:
    """The bar of ``symbol`` on ``day`` (a split) is an explained jump, not a price jump, and
    no bar of the symbol has an unexplained one."""
    bars = await store.read_bars(symbol)
    flags = Flag(bars.filter(pl.col("date") == day)["flags"].item())
    assert Flag.EXPLAINED_JUMP in flags
    rules = await store.rule_counts([symbol])
    assert "price_jump" not in rules["rule"].to_list()


@pytest.mark.parametrize("simulated_by", ["backfill", "seed"])
async def test_real_backfill_after_simulated_data_stores_the_real_actions(
    store: Store, upstream: Upstream, simulated_by: str
) -> None:
    """Simulated data (a keyless backfill, or `serve`'s seed of another simulation), then
    a backfill with a key: the real bars come with Polygon's splits and dividends over their
    whole range, no simulated action is left, AAPL's 1:4 split jump is explained and adjusted
    reads equal the vendor's adjusted bars."""
    symbols = ["AAPL", "PG", "XOM"]
    if simulated_by == "backfill":
        keyless = backfiller(
            store, Settings(symbols=tuple(symbols)), provider="synthetic", clock=lambda: NOW
        )
        assert (await keyless.run(Target())).status == "succeeded"
    else:
        await seed_if_empty(store, symbols=symbols, years=5, today=TODAY, at=NOW, seed=7)
    splits, dividends = await stored_actions(store, symbols)
    assert set(splits["source"]) | set(dividends["source"]) == {SYNTHETIC}

    outcome = await runner_for(store, upstream, symbols=tuple(symbols)).run(Target())

    assert outcome.status == "succeeded", outcome.progress.failures
    assert {s.source for s in await store.symbol_statuses(symbols)} == {"polygon"}
    await assert_actions_are_the_vendors(store, symbols)
    splits, dividends = await stored_actions(store, symbols)
    assert AAPL_SPLIT in splits["execution_date"].to_list()
    assert not dividends.is_empty()
    await assert_jump_explained(store, "AAPL", AAPL_SPLIT)
    for symbol in symbols:
        await assert_adjusted_reads_match(store, upstream, symbol)


@pytest.mark.parametrize("extended_by", ["start", "symbols add"])
async def test_extending_history_backwards_stores_the_older_actions(
    store: Store, upstream: Upstream, extended_by: str
) -> None:
    """Two years of PG, then history back to 2021 (`backfill --start` or `symbols add
    --years 10`): the 2021 split is stored, its jump explained, adjusted reads are right."""
    runner = runner_for(store, upstream, symbols=("PG",), backfill_years=2)
    assert (await runner.run(Target())).status == "succeeded"
    assert (await store.read_splits(["PG"])).is_empty()
    target = Target(start=dt.date(2021, 1, 1))
    if extended_by == "symbols add":
        await watchlist.add(store, ["PG"], years=10, config=runner.config, at=NOW)
        target = Target()

    outcome = await runner.run(target)

    assert outcome.status == "succeeded", outcome.progress.failures
    assert await first_bar(store, "PG") < PG_SPLIT
    await assert_actions_are_the_vendors(store, ["PG"])
    assert PG_SPLIT in (await store.read_splits(["PG"]))["execution_date"].to_list()
    await assert_jump_explained(store, "PG", PG_SPLIT)
    await assert_adjusted_reads_match(store, upstream, "PG")


async def test_actions_already_checked_cost_no_call(store: Store, upstream: Upstream) -> None:
    """Filling a hole inside history already checked asks for no actions; a second identical
    backfill asks for nothing at all; a day later only what is recent is asked for."""
    hole = dt.date(2025, 6, 3)
    upstream.server.faults.bad_bars = {"AAPL": [(hole, "missing_session")]}
    runner = runner_for(store, upstream, symbols=("AAPL", "PG"))
    assert (await runner.run(Target())).status == "succeeded"
    assert action_calls(upstream)
    upstream.server.faults.bad_bars = {}

    before = len(upstream.server.requests)
    outcome = await runner.run(Target())
    assert outcome.progress.counts.inserted == 1  # the hole, filled
    assert action_calls(upstream, before) == []

    before = len(upstream.server.requests)
    outcome = await runner.run(Target())
    assert outcome.progress.calls == 0
    assert upstream.server.requests[before:] == []

    monday = dt.date(2026, 11, 23)
    upstream.server.config.today = monday
    before = len(upstream.server.requests)
    later = runner_for(
        store, upstream, symbols=("AAPL", "PG"), now=dt.datetime(2026, 11, 24, 2, tzinfo=dt.UTC)
    )
    assert (await later.run(Target())).status == "succeeded"
    sent = action_calls(upstream, before)
    assert len(sent) == 2
    recheck = TODAY - dt.timedelta(days=30)  # the last check, less the late-report slack
    assert all(f".gte={recheck}&" in f"{r.query}&" for r in sent), [r.query for r in sent]
