"""/api/v1/historical/{symbol}: fields, formats, as_of, cursors, ETags and flags (both backends)."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator

import polars as pl
import pytest
from fastapi.testclient import TestClient

from marketdata.api.app import create_app
from marketdata.providers.simulator import MarketSimulator
from marketdata.service.quality import write_bars
from marketdata.settings import Settings
from marketdata.storage import open_store

T1 = dt.datetime(2025, 1, 6, 22, 0, tzinfo=dt.UTC)
T2 = T1 + dt.timedelta(days=1)
T3 = T2 + dt.timedelta(days=1)
BARS = MarketSimulator(seed=11).bars(["AAPL"], dt.date(2024, 1, 2), dt.date(2024, 12, 31))
REVISED = dt.date(2024, 6, 3)
BROKEN = dt.date(2024, 9, 4)
LATE = dt.date(2025, 1, 2)


@pytest.fixture
async def history(database_url: str) -> str:
    """AAPL for 2024 written at T1; one bar revised and one broken at T2; a bar added at T3."""
    store = await open_store(database_url)
    try:
        await write_bars(store, BARS, source="first", at=T1)
        changed = BARS.filter(pl.col("date").is_in([REVISED, BROKEN])).with_columns(
            pl.when(pl.col("date") == REVISED)
            .then(pl.col("close") * 1.01)
            .otherwise(pl.col("close"))
            .alias("close"),
            pl.when(pl.col("date") == BROKEN)
            .then(pl.col("low") * 0.5)
            .otherwise(pl.col("high"))
            .alias("high"),
        )
        await write_bars(store, changed, source="second", at=T2)
        late = MarketSimulator(seed=11).bars(["AAPL"], LATE, LATE)
        await write_bars(store, late, source="third", at=T3)
    finally:
        await store.aclose()
    return database_url


@pytest.fixture
def api(history: str) -> Iterator[TestClient]:
    """The app over that history, 100 bars per answer."""
    settings = Settings(database_url=history, simulate=False, scheduler=False, api_max_rows=100)
    with TestClient(create_app(settings)) as client:
        yield client


def _all_pages(api: TestClient, url: str) -> list[dict[str, object]]:
    bars: list[dict[str, object]] = []
    cursor = None
    for _ in range(20):
        page = api.get(url, params={"cursor": cursor} if cursor else {}).json()
        bars.extend(page["bars"])
        cursor = page["next_cursor"]
        if cursor is None:
            return bars
    raise AssertionError("cursor never ended")


def test_cursor_pages_add_up_to_the_whole_series(api: TestClient) -> None:
    """Past 100 bars a cursor continues; the pages together are every bar once, in order."""
    first = api.get("/api/v1/historical/AAPL?adjusted=none")
    assert first.json()["count"] == 100
    assert first.headers["x-next-cursor"] == first.json()["next_cursor"]
    bars = _all_pages(api, "/api/v1/historical/AAPL?adjusted=none")
    assert [b["date"] for b in bars] == [d.isoformat() for d in (*BARS["date"], LATE)]
    assert api.get("/api/v1/historical/AAPL?cursor=nonsense").status_code == 422


def test_fields_pick_columns_and_flags_name_rules(api: TestClient) -> None:
    """fields= keeps date plus the asked columns; a broken bar lists its rules by name."""
    body = api.get(
        "/api/v1/historical/AAPL",
        params={"fields": "close,flags", "start": BROKEN.isoformat(), "end": BROKEN.isoformat()},
    ).json()
    (bar,) = body["bars"]
    assert set(bar) == {"date", "close", "flags"}
    assert "high_below_low" in bar["flags"]
    clean = api.get("/api/v1/historical/AAPL?start=2024-01-02&end=2024-01-02").json()["bars"][0]
    assert clean["flags"] == []
    unknown = api.get("/api/v1/historical/AAPL?fields=close,colour")
    assert unknown.status_code == 422
    assert "colour" in unknown.json()["detail"]


def test_csv_and_parquet_carry_the_same_bars(api: TestClient) -> None:
    """format= and Accept give CSV and Parquet with the same values as JSON."""
    query = "start=2024-03-01&end=2024-03-28&adjusted=none"
    as_json = pl.DataFrame(api.get(f"/api/v1/historical/AAPL?{query}").json()["bars"])
    by_param = api.get(f"/api/v1/historical/AAPL?{query}&format=csv")
    assert by_param.headers["content-type"].startswith("text/csv")
    by_accept = api.get(f"/api/v1/historical/AAPL?{query}", headers={"Accept": "text/csv"})
    assert by_accept.content == by_param.content
    csv = pl.read_csv(io.BytesIO(by_param.content), try_parse_dates=True)
    assert csv["close"].to_list() == as_json["close"].to_list()
    parquet = api.get(
        f"/api/v1/historical/AAPL?{query}", headers={"Accept": "application/vnd.apache.parquet"}
    )
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    table = pl.read_parquet(io.BytesIO(parquet.content))
    assert table["close"].to_list() == as_json["close"].to_list()
    assert table["volume"].to_list() == as_json["volume"].to_list()
    assert api.get(f"/api/v1/historical/AAPL?{query}&format=xml").status_code == 422


def test_as_of_shows_what_was_known_then(api: TestClient) -> None:
    """Before T2 the revised bar has its old close and the late bar is absent; after T3 the
    current values; before T1 nothing."""
    day = REVISED.isoformat()
    original = BARS.filter(pl.col("date") == REVISED)["close"][0]

    def close_at(as_of: str) -> float:
        url = f"/api/v1/historical/AAPL?adjusted=none&start={day}&end={day}&as_of={as_of}"
        return float(api.get(url).json()["bars"][0]["close"])

    assert close_at("2025-01-07T12:00:00Z") == original
    assert close_at("2025-01-07T12:00:00") == original  # no offset: UTC
    assert close_at("2025-01-09T12:00:00Z") == pytest.approx(original * 1.01, rel=1e-15)
    late = LATE.isoformat()
    before = api.get(f"/api/v1/historical/AAPL?start={late}&as_of=2025-01-07T12:00:00Z").json()
    assert before["count"] == 0
    after = api.get(f"/api/v1/historical/AAPL?start={late}&as_of=2025-01-09T12:00:00Z").json()
    assert after["count"] == 1
    empty = api.get("/api/v1/historical/AAPL?as_of=2025-01-01T00:00:00Z").json()
    assert empty["count"] == 0
    assert api.get("/api/v1/historical/AAPL?as_of=yesterday").status_code == 422


def test_etag_gives_304_until_the_data_changes(api: TestClient) -> None:
    """The same request with If-None-Match is 304; another adjustment has another ETag."""
    url = "/api/v1/historical/AAPL?start=2024-03-01&end=2024-03-28"
    first = api.get(url)
    etag = first.headers["etag"]
    assert first.headers["cache-control"].startswith("max-age=")
    again = api.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    other = api.get(url + "&adjusted=none", headers={"If-None-Match": etag})
    assert other.status_code == 200
    assert other.headers["etag"] != etag or other.content == first.content


@pytest.mark.parametrize(
    "query",
    [
        "start=2024-05-01&end=2024-04-01",
        "start=1800-01-01",
        "end=2200-01-01",
        "start=2024-13-01",
        "min_quality=1.5",
        "adjusted=sometimes",
    ],
)
def test_bad_queries_are_4xx(api: TestClient, query: str) -> None:
    """Impossible ranges, unparsable dates and out-of-range parameters never reach a 500."""
    response = api.get(f"/api/v1/historical/AAPL?{query}")
    assert 400 <= response.status_code < 500
    assert response.json()["detail"]


def test_malformed_and_unknown_symbols(api: TestClient) -> None:
    """A malformed symbol is a 4xx; an unknown one a 404; lower case finds the symbol."""
    assert api.get("/api/v1/historical/AA$").status_code == 422
    assert api.get("/api/v1/historical/ZZZZ").status_code == 404
    assert api.get("/api/v1/historical/aapl?start=2024-01-02&end=2024-01-05").json()["count"] == 4


async def test_polygon_preferred_symbols_are_case_sensitive(database_url: str) -> None:
    """AMpB (Polygon's AM preferred B) and AMPB are two stocks: each path serves its own bars,
    on /api/v1 and on the Polygon-compatible route; all-lower-case `ampb` means AMPB."""
    store = await open_store(database_url)
    try:
        preferred = BARS.head(3).with_columns(pl.lit("AMpB").alias("symbol"))
        common = BARS.head(3).with_columns(pl.lit("AMPB").alias("symbol"), pl.col("close") + 1)
        await write_bars(store, preferred, source="first", at=T1)
        await write_bars(store, common, source="first", at=T1)
    finally:
        await store.aclose()
    settings = Settings(database_url=database_url, simulate=False, scheduler=False)
    with TestClient(create_app(settings)) as client:
        for path, symbol, frame in (
            ("AMpB", "AMpB", preferred),
            ("AMPB", "AMPB", common),
            ("ampb", "AMPB", common),
        ):
            body = client.get(f"/api/v1/historical/{path}?adjusted=none").json()
            assert body["symbol"] == symbol
            assert [b["close"] for b in body["bars"]] == frame["close"].to_list()
        day = BARS["date"][0].isoformat()
        polygon = client.get(f"/v2/aggs/ticker/AMpB/range/1/day/{day}/{day}").json()
        assert polygon["ticker"] == "AMpB"
        assert [r["c"] for r in polygon["results"]] == preferred["close"].head(1).to_list()
