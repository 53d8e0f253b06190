"""/api/v1/status, /symbols, /backfill and /quality on both backends, against the fake Polygon."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from marketdata import calendar
from marketdata.api.app import create_app
from marketdata.providers.simulator import MarketSimulator
from marketdata.service.quality import write_bars
from marketdata.settings import Settings
from marketdata.storage import open_store
from tests.support.factories import AT
from tests.support.polygon import KEY, Upstream

WRITE_KEY = "write-key-0123456789"
AUTH = {"X-API-Key": WRITE_KEY}


def _settings(database_url: str, market: Upstream) -> Settings:
    return Settings(
        database_url=database_url,
        simulate=False,
        scheduler=False,
        symbols=("AAPL", "MSFT"),
        backfill_years=1,
        polygon_api_key=KEY,
        polygon_base_url=market.url,
        polygon_calls_per_minute=0,
        api_keys=(WRITE_KEY,),
    )


@pytest.fixture
def api(database_url: str, market: Upstream) -> Iterator[TestClient]:
    """The app on an empty database, backfilling from the wall-clock fake Polygon."""
    with TestClient(create_app(_settings(database_url, market))) as client:
        yield client


def _finished(api: TestClient, run_id: int) -> dict[str, Any]:
    """Follow a run's progress until it ends (bounded)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body: dict[str, Any] = api.get(f"/api/v1/backfill/{run_id}").json()
        if body["status"] != "running":
            return body
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


def test_backfill_through_the_api(api: TestClient) -> None:
    """POST /backfill answers 202 with a run id; progress, history and status follow it."""
    response = api.post("/api/v1/backfill", json={}, headers=AUTH)
    assert response.status_code == 202
    run_id = response.json()["run_id"]
    assert response.headers["location"] == f"/api/v1/backfill/{run_id}"
    run = _finished(api, run_id)
    assert run["status"] == "succeeded"
    assert run["trigger"] == "api"
    assert [s["symbol"] for s in run["symbols"]] == ["AAPL", "MSFT"]
    assert run["symbols_done"] == run["symbols_total"] == 2
    assert run["inserted"] > 480
    history = api.get("/api/v1/backfill").json()
    assert [r["id"] for r in history] == [run_id]
    status = api.get("/api/v1/status").json()
    assert status["symbols"] == 2
    assert status["bars"] == run["inserted"]
    assert status["stale_symbols"] == []
    assert {s["symbol"]: s["fresh"] for s in status["per_symbol"]} == {"AAPL": True, "MSFT": True}
    assert status["backfill"]["last_run"]["id"] == run_id
    assert status["backfill"]["calls_today"] == run["calls"] > 0
    assert status["backfill"]["scheduler_running"] is False


def test_status_of_an_empty_watchlist_database(api: TestClient) -> None:
    """Nothing stored yet: the watched symbols are listed as stale with no bars."""
    status = api.get("/api/v1/status").json()
    assert status["bars"] == 0
    assert status["validation_rate"] is None
    assert status["stale_symbols"] == ["AAPL", "MSFT"]
    assert status["backfill"]["last_run"] is None
    session = calendar.last_completed_session(dt.datetime.now(dt.UTC), delay=dt.timedelta(hours=1))
    assert status["last_completed_session"] == session.isoformat()


def test_add_and_remove_a_symbol(api: TestClient) -> None:
    """POST /symbols watches and starts its backfill; DELETE stops watching (bars kept)."""
    response = api.post("/api/v1/symbols", json={"symbol": "nvda", "years": 1}, headers=AUTH)
    assert response.status_code == 202
    added = response.json()
    assert (added["symbol"], added["years"]) == ("NVDA", 1)
    run = _finished(api, added["run_id"])
    assert [s["symbol"] for s in run["symbols"]] == ["NVDA"]
    listed = {s["symbol"]: s for s in api.get("/api/v1/symbols").json()}
    assert set(listed) == {"AAPL", "MSFT", "NVDA"}
    assert listed["NVDA"]["origin"] == "user"
    assert listed["NVDA"]["bars"] > 240
    removed = api.delete("/api/v1/symbols/NVDA", headers=AUTH).json()
    assert removed == {"symbol": "NVDA", "removed": True, "purged_bars": 0}
    assert "NVDA" not in {s["symbol"] for s in api.get("/api/v1/symbols").json()}
    purged = api.delete("/api/v1/symbols/NVDA?purge=true", headers=AUTH).json()
    assert purged["purged_bars"] > 240
    missing = api.delete("/api/v1/symbols/ZZZZ", headers=AUTH)
    assert missing.status_code == 404
    assert "not on the watchlist" in missing.json()["detail"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"symbol": "AA$"}, "invalid symbol"),
        ({"symbol": ""}, "symbol"),
        ({"symbol": "AAPL", "years": 0}, "years"),
    ],
)
def test_bad_symbols_are_refused(api: TestClient, body: dict[str, Any], fragment: str) -> None:
    """A malformed symbol or depth is a 4xx naming the problem; nothing is started."""
    response = api.post("/api/v1/symbols", json=body, headers=AUTH)
    assert response.status_code in (400, 422)
    assert fragment in str(response.json())
    assert api.get("/api/v1/backfill").json() == []


def test_backfill_request_is_checked(api: TestClient) -> None:
    """start with years, or start after end, is refused before anything runs."""
    both = api.post("/api/v1/backfill", json={"start": "2024-01-02", "years": 2}, headers=AUTH)
    assert both.status_code == 422
    backwards = api.post(
        "/api/v1/backfill", json={"start": "2024-02-01", "end": "2024-01-01"}, headers=AUTH
    )
    assert backwards.status_code == 422
    assert api.get("/api/v1/backfill/999").status_code == 404


async def test_quality_lists_log_and_gaps(database_url: str, market: Upstream) -> None:
    """The validation log and missing sessions of a symbol with a planted bad bar and hole."""
    bars = MarketSimulator(seed=3).bars(["AAPL"], dt.date(2024, 1, 2), dt.date(2024, 6, 28))
    hole = dt.date(2024, 3, 5)
    bad = dt.date(2024, 4, 10)
    import polars as pl

    bars = bars.filter(pl.col("date") != hole).with_columns(
        pl.when(pl.col("date") == bad)
        .then(pl.col("low") * 0.5)
        .otherwise(pl.col("high"))
        .alias("high")
    )
    store = await open_store(database_url)
    try:
        await write_bars(store, bars, source="test", at=AT)
    finally:
        await store.aclose()
    with TestClient(create_app(_settings(database_url, market))) as api:
        body = api.get("/api/v1/quality/aapl?start=2024-03-01&end=2024-04-30").json()
        assert body["symbol"] == "AAPL"
        assert body["gaps"] == [{"start": "2024-03-05", "end": "2024-03-05", "sessions": 1}]
        rules = {e["rule"] for e in body["log"] if e["date"] == bad.isoformat()}
        assert "high_below_low" in rules or "high_below_open_close" in rules
        assert all("2024-03-01" <= e["date"] <= "2024-04-30" for e in body["log"])
        assert sum(body["rules"].values()) >= 1
        unknown = api.get("/api/v1/quality/MSFT")
        assert unknown.status_code == 404
        assert "on the watchlist" in unknown.json()["detail"]
        backwards = api.get("/api/v1/quality/AAPL?start=2024-05-01&end=2024-04-01")
        assert backwards.status_code == 422
