"""The backfill engine end to end against the local Polygon look-alike, on both backends."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs

import polars as pl
import pytest
import stamina

from marketdata import calendar
from marketdata.errors import Conflict, NotFound
from marketdata.providers.simulator import MarketSimulator
from marketdata.service.backfill import PLAN_DAYS_KEY, Target, years_before
from marketdata.service.quality import write_bars
from marketdata.service.runs import Backfiller, backfiller, run_history, run_progress
from marketdata.service.simulated import SYNTHETIC, seed_if_empty
from marketdata.settings import Settings
from marketdata.storage import Store
from marketdata.symbols import DEFAULT_SYMBOLS
from tests.support.polygon import KEY, TODAY, Upstream

#: Saturday after TODAY (Friday 2026-11-20): the last completed session is TODAY.
NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)
COLUMNS = ["symbol", "date", "open", "high", "low", "close", "volume", "vwap", "transactions"]


def settings_for(store: Store, upstream: Upstream, **overrides: object) -> Settings:
    """Settings pointing at the fake Polygon with no client-side pacing."""
    del store
    return Settings(
        polygon_api_key=KEY,
        polygon_base_url=upstream.url,
        polygon_calls_per_minute=0,
        polygon_retry_deadline=30,
        **overrides,  # type: ignore[arg-type]
    )


def runner_for(
    store: Store, upstream: Upstream, *, now: dt.datetime = NOW, **overrides: object
) -> Backfiller:
    """A Backfiller on ``store`` whose clock stands still at ``now``."""
    return backfiller(store, settings_for(store, upstream, **overrides), clock=lambda: now)


async def stored(store: Store, symbols: tuple[str, ...] | list[str]) -> pl.DataFrame:
    """Every stored bar of ``symbols`` in the vendor's columns, sorted."""
    frames = [
        (await store.read_bars(s)).with_columns(pl.lit(s).alias("symbol")).select(COLUMNS)
        for s in symbols
    ]
    return pl.concat(frames).sort("symbol", "date")


def truth(symbols: tuple[str, ...] | list[str], start: dt.date, end: dt.date) -> pl.DataFrame:
    """What the fake Polygon serves (the simulator with seed 0)."""
    return MarketSimulator(seed=0).bars(list(symbols), start, end).select(COLUMNS)


async def test_full_backfill_with_faults_matches_the_simulator(
    store: Store, upstream: Upstream
) -> None:
    """15 symbols × 5 years through 429s, 5xx and a 2-year plan window: every bar the plan
    allows is stored exactly as served, the window is reported once, and nothing fails."""
    plan_start = TODAY - dt.timedelta(days=730)
    faults = upstream.server.faults
    faults.throttle_next, faults.retry_after = 3, 0.0
    faults.fail_next, faults.error_rate = 2, 0.05
    faults.plan_start = plan_start
    with stamina.set_testing(True, attempts=10):
        outcome = await runner_for(store, upstream).run(Target())
    progress = outcome.progress
    assert outcome.status == "succeeded", progress.failures
    assert progress.failures == {}
    assert [n for n in progress.notes if "plan window" in n] == [progress.notes[0]]
    assert str(plan_start) in progress.notes[0]
    expected = truth(DEFAULT_SYMBOLS, plan_start, TODAY)
    got = await stored(store, DEFAULT_SYMBOLS)
    assert got.height == expected.height == 15 * len(calendar.sessions(plan_start, TODAY))
    assert got.equals(expected.sort("symbol", "date"))
    assert await store.get_state(PLAN_DAYS_KEY.format(provider="polygon")) == str(
        (TODAY - plan_start).days
    )
    record = await store.read_run(outcome.run_id)
    assert record is not None
    assert record.status == "succeeded"
    assert record.inserted == expected.height
    assert record.calls == progress.calls == len(upstream.server.requests)
    assert {s.status for s in record.symbols} == {"done"}


async def test_second_run_on_a_weekend_makes_no_calls(store: Store, upstream: Upstream) -> None:
    """Up to date on Saturday: the plan is empty, no request is sent, the run is recorded."""
    await runner_for(store, upstream, symbols=("AAPL", "MSFT")).run(Target())
    before = len(upstream.server.requests)
    runner = runner_for(store, upstream, symbols=("AAPL", "MSFT"))
    prepared = await runner.plan(Target())
    assert prepared.plan.calls == 0
    outcome = await runner.run(Target())
    assert len(upstream.server.requests) == before
    assert outcome.status == "succeeded"
    assert outcome.progress.calls == 0
    assert [r.id for r in await store.list_runs()] == [outcome.run_id, outcome.run_id - 1]


async def test_daily_update_uses_grouped_calls_and_refreshes_the_overlap(
    store: Store, upstream: Upstream
) -> None:
    """A day later, 15 symbols need one new session and 2 refreshed ones: 3 grouped calls
    (not 15), 15 bars inserted, 30 unchanged, splits and dividends asked only since the last
    refresh."""
    await runner_for(store, upstream).run(Target())
    monday = dt.date(2026, 11, 23)
    upstream.server.config.today = monday
    first = len(upstream.server.requests)
    outcome = await runner_for(
        store, upstream, now=dt.datetime(2026, 11, 24, 2, tzinfo=dt.UTC)
    ).run(Target())
    sent = upstream.server.requests[first:]
    grouped = [r.path for r in sent if "/grouped/" in r.path]
    assert sorted(grouped) == [
        f"/v2/aggs/grouped/locale/us/market/stocks/{d}"
        for d in ("2026-11-19", "2026-11-20", "2026-11-23")
    ]
    assert not [r for r in sent if "/range/" in r.path]
    counts = outcome.progress.counts
    assert (counts.inserted, counts.updated, counts.unchanged) == (15, 0, 30)
    actions = [parse_qs(r.query) for r in sent if "splits" in r.path or "dividends" in r.path]
    assert actions
    assert all(any(k.endswith(".gte") for k in query) for query in actions), (
        "a refresh asks only for what is new"
    )
    got = await stored(store, DEFAULT_SYMBOLS)
    assert got["date"].max() == monday


async def test_unknown_ticker_fails_alone(store: Store, upstream: Upstream) -> None:
    """A ticker the vendor does not know is reported; the other symbol is written."""
    outcome = await runner_for(store, upstream).run(Target(symbols=("AAPL", "ZZZZ"), years=1))
    assert outcome.status == "partial"
    assert set(outcome.progress.failures) == {"ZZZZ"}
    assert "unknown" in outcome.progress.failures["ZZZZ"]
    record = await store.read_run(outcome.run_id)
    assert record is not None
    by_symbol = {s.symbol: s for s in record.symbols}
    assert by_symbol["AAPL"].status == "done"
    assert by_symbol["AAPL"].inserted > 240
    assert by_symbol["ZZZZ"].status == "failed"
    assert record.errors == 1


async def test_a_missing_week_is_planned_as_one_request(store: Store, upstream: Upstream) -> None:
    """Bars imported with a week missing mid-history: the plan fetches exactly that week."""
    runner = runner_for(store, upstream, symbols=("AAPL",))
    prepared = await runner.plan(Target())
    assert prepared.plan.calls == 1  # empty database: one range request
    start = prepared.plan.ranges[0].start
    bars = truth(["AAPL"], start, TODAY)
    week = (pl.col("date") >= dt.date(2024, 3, 4)) & (pl.col("date") <= dt.date(2024, 3, 8))
    await write_bars(store, bars.filter(~week), source="file:aapl.csv", at=NOW)
    plan = (await runner.plan(Target())).plan
    assert [(r.symbol, r.start, r.end, r.sessions) for r in plan.ranges] == [
        ("AAPL", dt.date(2024, 3, 4), dt.date(2024, 3, 8), 5)
    ]
    assert plan.grouped == ()
    outcome = await runner.run(Target())
    assert outcome.progress.counts.inserted == 5
    assert (await stored(store, ["AAPL"])).equals(bars)


async def test_a_running_backfill_holds_the_lock(store: Store, upstream: Upstream) -> None:
    """While another process holds the backfill lock, a second run is refused clearly."""
    lock = await store.acquire_lock("backfill", holder="someone-else")
    assert lock is not None
    try:
        with pytest.raises(Conflict, match="another backfill is running"):
            await runner_for(store, upstream).run(Target())
    finally:
        await lock.release()
    outcome = await runner_for(store, upstream, symbols=("AAPL",)).run(Target())
    assert outcome.status == "succeeded"


async def test_a_dead_run_is_marked_interrupted_at_the_next_start(
    store: Store, upstream: Upstream
) -> None:
    """A run left 'running' by a killed process ends 'interrupted' when the next one starts."""
    dead = await store.create_run(
        trigger="manual", provider="polygon", at=NOW, symbols=[("AAPL", None, None)]
    )
    outcome = await runner_for(store, upstream, symbols=("AAPL",)).run(Target())
    assert outcome.recovered == (dead,)
    record = await store.read_run(dead)
    assert record is not None
    assert record.status == "interrupted"
    assert record.finished_at is not None


async def test_real_backfill_replaces_simulated_bars(store: Store, upstream: Upstream) -> None:
    """Simulated history is purged symbol by symbol as real bars arrive, never mixed."""
    await seed_if_empty(store, symbols=["AAPL", "MSFT"], years=1, today=TODAY, at=NOW)
    outcome = await runner_for(store, upstream, symbols=("AAPL",)).run(Target(years=1))
    assert outcome.status == "succeeded"
    statuses = {s.symbol: s for s in await store.symbol_statuses()}
    assert statuses["AAPL"].source == "polygon"
    assert statuses["MSFT"].source == SYNTHETIC
    revisions = await store.read_revisions("AAPL")
    assert revisions.is_empty()


async def test_simulated_provider_never_writes_into_real_data(
    store: Store, upstream: Upstream
) -> None:
    """With real bars stored, a synthetic backfill is refused before anything is written."""
    await runner_for(store, upstream, symbols=("AAPL",)).run(Target(years=1))
    synthetic = backfiller(store, Settings(), provider="synthetic", clock=lambda: NOW)
    with pytest.raises(Conflict, match="never mixed"):
        await synthetic.run(Target(symbols=("AAPL",)))
    with pytest.raises(Conflict, match="never mixed"):  # the dry run says the same
        await synthetic.plan(Target(symbols=("AAPL",)))


async def test_corporate_actions_arrive_with_the_bars(store: Store, upstream: Upstream) -> None:
    """A run stores the symbols' splits over the fetched history and marks the watchlist as
    refreshed to its end."""
    outcome = await runner_for(store, upstream).run(Target())
    assert outcome.status == "succeeded"
    start = years_before(TODAY, 5)  # earlier actions change no stored bar: not fetched
    served = MarketSimulator(seed=0).splits(list(DEFAULT_SYMBOLS), start, TODAY)
    splits = await store.read_splits()
    assert splits.height == served.height > 0
    assert splits.filter(pl.col("execution_date") < start).is_empty()
    assert {e.actions_checked for e in await store.watchlist()} == {TODAY}


async def test_progress_is_reported_per_request(store: Store, upstream: Upstream) -> None:
    """The progress callback sees every request and ends with every symbol complete."""
    seen: list[tuple[int, int]] = []
    outcome = await runner_for(store, upstream, symbols=("AAPL", "MSFT", "NVDA")).run(
        Target(years=1), on_progress=lambda p: seen.append((p.requests_done, p.symbols_done))
    )
    assert seen[-1] == (3, 3)
    assert [r for r, _ in seen] == sorted(r for r, _ in seen)
    assert outcome.progress.requests_total == 3


async def test_trigger_returns_a_run_id_and_progress_is_readable(
    store: Store, upstream: Upstream
) -> None:
    """The API hook: trigger starts in the background; progress and history read it back."""
    runner = runner_for(store, upstream, symbols=("AAPL", "MSFT"))
    run_id = await runner.trigger(Target(years=1))
    with pytest.raises(Conflict):
        await runner.trigger(Target(years=1))
    await runner.join()
    record = await run_progress(store, run_id)
    assert (record.status, record.trigger) == ("succeeded", "api")
    assert [(s.symbol, s.status) for s in record.symbols] == [("AAPL", "done"), ("MSFT", "done")]
    assert record.inserted == sum(s.inserted for s in record.symbols) > 480
    assert [r.id for r in await run_history(store)] == [run_id]
    with pytest.raises(NotFound):
        await run_progress(store, run_id + 1)


@pytest.mark.parametrize(
    ("now", "calls"),
    [
        (dt.datetime(2026, 11, 23, 20, 30, tzinfo=dt.UTC), 0),  # Monday 15:30 New York
        (dt.datetime(2026, 11, 23, 21, 30, tzinfo=dt.UTC), 0),  # closed, within the delay
        (dt.datetime(2026, 11, 23, 22, 30, tzinfo=dt.UTC), 2),  # Monday is due: 2 range calls
    ],
)
async def test_nothing_is_due_before_the_close_and_the_vendor_delay(
    store: Store, upstream: Upstream, now: dt.datetime, calls: int
) -> None:
    """Up to Friday: on Monday nothing is planned until the close plus the 60-minute delay."""
    await runner_for(store, upstream, symbols=("AAPL", "MSFT")).run(Target(years=1))
    plan = (
        await runner_for(store, upstream, now=now, symbols=("AAPL", "MSFT")).plan(Target(years=1))
    ).plan
    assert plan.calls == calls


async def test_when_every_request_fails_the_run_fails(store: Store, upstream: Upstream) -> None:
    """Retries exhausted on every request: each symbol fails with the reason, status failed."""
    upstream.server.faults.error_rate = 1.0
    with stamina.set_testing(True, attempts=2):
        outcome = await runner_for(store, upstream, symbols=("AAPL", "MSFT")).run(Target(years=1))
    assert outcome.status == "failed"
    assert set(outcome.progress.failures) == {"AAPL", "MSFT"}
    assert all(
        "provider" in reason or "5" in reason for reason in outcome.progress.failures.values()
    )
    record = await store.read_run(outcome.run_id)
    assert record is not None
    assert (record.status, record.errors) == ("failed", 2)
