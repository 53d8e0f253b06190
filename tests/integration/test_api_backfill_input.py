"""``POST /api/v1/backfill`` refuses ranges it cannot fetch anything for, and the 404 of a
watched symbol without bars names its last backfill error; on both backends."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from marketdata.api.app import create_app
from marketdata.service.backfill import Target
from marketdata.service.runs import backfiller
from marketdata.settings import Settings
from marketdata.storage import open_store
from tests.support.polygon import KEY, Upstream

WRITE_KEY = "write-key-0123456789"
AUTH = {"X-API-Key": WRITE_KEY}
#: Saturday after the fake Polygon's last session (Friday 2026-11-20).
NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)


def _settings(database_url: str, upstream: Upstream, **overrides: Any) -> Settings:
    return Settings(
        database_url=database_url,
        simulate=False,
        scheduler=False,
        backfill_years=1,
        polygon_api_key=KEY,
        polygon_base_url=upstream.url,
        polygon_calls_per_minute=0,
        api_keys=(WRITE_KEY,),
        **overrides,
    )


@pytest.fixture
def api(database_url: str, upstream: Upstream) -> Iterator[TestClient]:
    """The app on an empty database."""
    with TestClient(create_app(_settings(database_url, upstream))) as client:
        yield client


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        pytest.param(
            {"start": "2030-01-01"},
            ["start 2030-01-01 is after the last completed session"],
            id="start-in-the-future",
        ),
        pytest.param(
            {"start": "2030-01-01", "end": "2030-02-01"},
            ["start 2030-01-01 is after the last completed session"],
            id="range-in-the-future",
        ),
        pytest.param(
            {"start": "2024-01-06", "end": "2024-01-07"},
            ["no XNYS session from 2024-01-06 to 2024-01-07"],
            id="only-a-weekend",
        ),
        pytest.param(
            {"start": "2024-02-01", "end": "2024-01-01"},
            ["start 2024-02-01 is after end 2024-01-01"],
            id="end-before-start",
        ),
    ],
)
def test_a_backfill_that_can_fetch_nothing_is_refused(
    api: TestClient, body: dict[str, str], fragments: list[str]
) -> None:
    """A range after the last completed session, without any session, or swapped: 422
    problem+json saying why, and no run is started."""
    answer = api.post("/api/v1/backfill", json=body, headers=AUTH)
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["error"] == "InputError"
    for fragment in fragments:
        assert fragment in problem["detail"]
    assert api.get("/api/v1/backfill").json() == []


async def test_the_404_of_a_watched_symbol_names_its_last_backfill_error(
    database_url: str, upstream: Upstream
) -> None:
    """NFLX is watched but the vendor has no bars for it: once a backfill failed, the 404 of
    /historical and /quality says so with the stored error, not only "the next backfill
    fetches it"."""
    settings = _settings(database_url, upstream, symbols=("NFLX",))
    with TestClient(create_app(settings)) as api:
        before = api.get("/api/v1/historical/NFLX").json()["detail"]
    assert before == "no bars stored for NFLX: it is on the watchlist; the next backfill fetches it"
    store = await open_store(database_url)
    try:
        outcome = await backfiller(store, settings, clock=lambda: NOW).run(Target())
    finally:
        await store.aclose()
    error = outcome.progress.failures["NFLX"]
    assert "polygon has no bars for NFLX" in error
    with TestClient(create_app(settings)) as api:
        for path in ("/api/v1/historical/NFLX", "/api/v1/quality/NFLX"):
            answer = api.get(path)
            assert answer.status_code == 404
            detail = answer.json()["detail"]
            assert detail.startswith("no bars stored for NFLX: it is on the watchlist")
            assert f"its last backfill failed: {error}" in detail
        assert "failed" not in api.get("/api/v1/historical/ZZZZ").json()["detail"]
