"""A first run without a key: simulated data, said loudly, never mixed with real data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
from fastapi.testclient import TestClient
from pydantic import SecretStr

from marketdata.api.app import create_app
from marketdata.providers.simulator import DEFAULT_SYMBOLS
from marketdata.service.ingest import check_files, import_files
from marketdata.service.simulated import SYNTHETIC, data_mode, replace_synthetic, seed_if_empty
from marketdata.service.status import status_overview
from marketdata.settings import Settings
from marketdata.storage import Store, open_store
from tests.support.factories import AT, make_bars

TODAY = dt.date(2026, 11, 20)


async def test_empty_database_is_seeded_once(store: Store) -> None:
    """15 symbols × 5 years of synthetic bars; a second call does nothing."""
    counts = await seed_if_empty(store, symbols=DEFAULT_SYMBOLS, years=5, today=TODAY, at=AT)
    assert counts is not None
    assert counts.inserted > 15 * 1200
    statuses = await store.symbol_statuses()
    assert [s.symbol for s in statuses] == sorted(DEFAULT_SYMBOLS)
    assert {s.source for s in statuses} == {SYNTHETIC}
    assert all(s.last_date == TODAY for s in statuses)
    assert await data_mode(store) == "simulated"
    assert await seed_if_empty(store, symbols=DEFAULT_SYMBOLS, years=5, today=TODAY, at=AT) is None


async def test_simulated_data_has_planted_faults_that_validation_finds(store: Store) -> None:
    """The original plan's success criteria show on simulated data with planted faults:
    validation rate > 95 %, the broken bar fails, the missing session is a gap, the volume
    spike and the zero-volume day are flagged, and split jumps are explained, not flagged."""
    await seed_if_empty(store, symbols=DEFAULT_SYMBOLS, years=5, today=TODAY, at=AT)
    statuses = await store.symbol_statuses()
    bars = sum(s.bar_count for s in statuses)
    validated = sum(s.validated_count for s in statuses)
    assert 0.95 < validated / bars < 1.0
    assert bars - validated == 1  # exactly the broken bar
    assert sum(s.gap_count for s in statuses) == 1
    names = sorted(DEFAULT_SYMBOLS)
    counts = await store.rule_counts()
    fired = {(symbol, rule) for symbol, rule, _, _ in counts.iter_rows()}
    assert (names[1], "high_below_low") in fired
    assert (names[3], "volume_anomaly") in fired
    assert (names[4], "zero_volume") in fired
    assert "price_jump" not in {rule for _, rule in fired}
    splits = await store.read_splits()
    explained = {symbol for symbol, rule in fired if rule == "explained_jump"}
    assert set(splits["symbol"].to_list()) <= explained
    assert not splits.is_empty()


async def test_real_data_is_never_joined_by_simulated(store: Store) -> None:
    """A database holding real bars is left alone."""
    await store.upsert_bars(make_bars("AAPL", days=3), source="polygon", at=AT)
    assert await seed_if_empty(store, symbols=["MSFT"], years=1, today=TODAY, at=AT) is None
    assert await data_mode(store) == "real"
    assert not await store.has_source(SYNTHETIC)


async def test_real_bars_replace_simulated_ones_per_symbol(store: Store, tmp_path: Path) -> None:
    """Importing real AAPL bars purges AAPL's simulated history; the others stay simulated."""
    await seed_if_empty(store, symbols=["AAPL", "MSFT"], years=1, today=TODAY, at=AT)
    source = tmp_path / "aapl.csv"
    make_bars("AAPL", start=dt.date(2026, 11, 2), days=3).write_csv(source)
    report = await import_files(store, check_files([source]), at=AT, chunk_rows=1000)
    assert report.counts.inserted == 3
    aapl = await store.read_bars("AAPL")
    assert aapl.height == 3
    statuses = {s.symbol: s for s in await store.symbol_statuses()}
    assert statuses["AAPL"].source == "file:aapl.csv"
    assert statuses["AAPL"].bar_count == 3
    assert statuses["MSFT"].source == SYNTHETIC
    assert await data_mode(store) == "simulated"
    assert await replace_synthetic(store, ["MSFT", "NOPE"]) == ["MSFT"]
    assert await data_mode(store) == "real"


async def test_a_watched_symbol_stays_watched_when_real_bars_replace_simulated_ones(
    store: Store, tmp_path: Path
) -> None:
    """The quickstart's import: simulated AAPL on the watchlist, then real (old) bars for it
    from a file. AAPL stays watched, so /status counts it stale."""
    await seed_if_empty(store, symbols=["AAPL"], years=1, today=TODAY, at=AT)
    await store.set_watched(["AAPL"], at=AT)
    source = tmp_path / "aapl.csv"
    make_bars("AAPL", start=dt.date(2026, 11, 2), days=3).write_csv(source)
    await import_files(store, check_files([source]), at=AT, chunk_rows=1000)
    assert await store.watched_symbols() == ["AAPL"]
    later = dt.datetime(2026, 12, 31, 23, tzinfo=dt.UTC)
    overview = await status_overview(store, now=later)
    assert overview.totals.stale == 1
    assert overview.stale == ("AAPL",)


def test_serve_without_key_shows_simulated_data(database_url: str) -> None:
    """No key, empty database: the API serves simulated bars and says so on / and /health."""
    settings = Settings(database_url=database_url, scheduler=False)
    with TestClient(create_app(settings)) as client:
        health = client.get("/health").json()
        assert health["data_mode"] == "simulated"
        assert "POLYGON_API_KEY" in health["notice"]
        root = client.get("/").json()
        assert root["data_mode"] == "simulated"
        assert "simulated" in root["notice"].lower()
        bars = client.get("/api/v1/historical/AAPL").json()
        assert bars["count"] > 1200
        frame = pl.DataFrame(bars["bars"])
        assert (frame["low"] <= frame["high"]).all()


def test_serve_with_key_does_not_simulate(database_url: str) -> None:
    """With a key set, an empty database stays empty (the backfill fills it)."""
    settings = Settings(
        database_url=database_url, polygon_api_key=SecretStr("pk_abcdef123456"), scheduler=False
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").json()["data_mode"] == "empty"
        assert client.get("/api/v1/historical/AAPL").status_code == 404


async def test_simulation_can_be_switched_off(database_url: str) -> None:
    """MARKETDATA_SIMULATE=false keeps an empty database empty."""
    with TestClient(
        create_app(Settings(database_url=database_url, simulate=False, scheduler=False))
    ) as client:
        assert client.get("/health").json()["data_mode"] == "empty"
    store = await open_store(database_url)
    try:
        assert await store.symbol_statuses() == []
    finally:
        await store.aclose()
