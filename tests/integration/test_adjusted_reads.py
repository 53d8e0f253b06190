"""Adjusted reads against the local Polygon-compatible server and through the REST API."""

from __future__ import annotations

import datetime as dt

import httpx
import polars as pl
import pytest
from fastapi.testclient import TestClient

from marketdata.api.app import create_app
from marketdata.service.actions import fetch_actions
from marketdata.service.history import read_history
from marketdata.service.quality import write_bars
from marketdata.settings import Settings
from marketdata.storage import Store
from tests.support.factories import AT
from tests.support.polygon import KEY, Upstream

START, END = dt.date(2016, 1, 4), dt.date(2026, 11, 20)


async def test_split_adjusted_reads_match_the_servers_adjusted_bars(
    store: Store, upstream: Upstream
) -> None:
    """Raw bars + splits fetched from the server, adjusted by us, equal its adjusted=true bars."""
    client = upstream.client()
    try:
        splits = await client.splits(None)
        symbols = sorted(set(splits["symbol"].to_list()))[:3]
        assert symbols, "the simulator should have split some symbol in ten years"
        for symbol in symbols:
            await write_bars(
                store, await client.daily_bars(symbol, START, END), source="polygon", at=AT
            )
        await fetch_actions(store, client, symbols, at=AT)
    finally:
        await client.aclose()
    async with httpx.AsyncClient(
        base_url=upstream.url, headers={"Authorization": f"Bearer {KEY}"}
    ) as http:
        for symbol in symbols:
            response = await http.get(
                f"/v2/aggs/ticker/{symbol}/range/1/day/{START}/{END}",
                params={"adjusted": "true", "limit": 50000},
            )
            theirs = response.json()["results"]
            ours = await read_history(store, symbol, adjusted="splits")
            assert ours.height == len(theirs)
            for field, key in (("open", "o"), ("close", "c"), ("volume", "v"), ("vwap", "vw")):
                assert ours[field].to_list() == pytest.approx(
                    [bar[key] for bar in theirs], rel=1e-12
                ), (symbol, field)


@pytest.fixture
def api(database_url: str) -> TestClient:
    """The API on a database holding AMZN-like raw bars around a 1:20 split (split known)."""
    settings = Settings(database_url=database_url, simulate=False, scheduler=False)
    client = TestClient(create_app(settings))
    return client


def test_api_adjusted_parameter(api: TestClient, database_url: str) -> None:
    """``adjusted`` defaults to splits; none gives raw; all adds dividends; junk is a 422."""
    import asyncio

    from marketdata.service.actions import store_actions
    from marketdata.storage import open_store

    days = [dt.date(2022, 6, 1), dt.date(2022, 6, 2), dt.date(2022, 6, 3), dt.date(2022, 6, 6)]
    raw = pl.DataFrame(
        {
            "symbol": ["AMZN"] * 4,
            "date": days,
            "open": [2400.0, 2480.0, 2440.0, 124.0],
            "high": [2420.0, 2500.0, 2460.0, 126.0],
            "low": [2380.0, 2460.0, 2420.0, 123.0],
            "close": [2400.0, 2480.0, 2440.0, 124.8],
            "volume": [1e6, 1e6, 1e6, 2e7],
            "vwap": [None] * 4,
            "transactions": [None] * 4,
        },
        schema_overrides={"vwap": pl.Float64, "transactions": pl.Int64},
    )

    async def load() -> None:
        store = await open_store(database_url)
        try:
            await write_bars(store, raw, source="test", at=AT)
            await store_actions(
                store,
                splits=pl.DataFrame(
                    {
                        "symbol": ["AMZN"],
                        "execution_date": [dt.date(2022, 6, 6)],
                        "split_from": [1.0],
                        "split_to": [20.0],
                    }
                ),
                dividends=pl.DataFrame(
                    {
                        "symbol": ["AMZN"],
                        "ex_dividend_date": [dt.date(2022, 6, 3)],
                        "cash_amount": [24.8],
                    }
                ),
                source="test",
                at=AT,
            )
        finally:
            await store.aclose()

    asyncio.run(load())
    with api:
        default = api.get("/api/v1/historical/AMZN").json()
        assert default["adjusted"] == "splits"
        assert [b["close"] for b in default["bars"]] == [120.0, 124.0, 122.0, 124.8]
        assert default["bars"][0]["volume"] == 2e7
        raw_body = api.get("/api/v1/historical/AMZN", params={"adjusted": "none"}).json()
        assert [b["close"] for b in raw_body["bars"]] == [2400.0, 2480.0, 2440.0, 124.8]
        everything = api.get(
            "/api/v1/historical/AMZN", params={"adjusted": "all", "start": "2022-06-01"}
        ).json()
        # the dividend of 24.80 on a 2480.00 close (1 %) scales the two bars before its ex-date
        assert [b["close"] for b in everything["bars"]] == pytest.approx(
            [118.8, 122.76, 122.0, 124.8]
        )
        bad = api.get("/api/v1/historical/AMZN", params={"adjusted": "yes"})
        assert bad.status_code == 422
