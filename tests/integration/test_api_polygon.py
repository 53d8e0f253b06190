"""The Polygon-compatible aggregates endpoint on both backends: same bars as v1, Polygon's
shape, ``next_url`` pagination, Polygon error bodies, and real Polygon clients against it."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from massive import RESTClient  # type: ignore[import-untyped]  # ships no type information
from massive.exceptions import BadResponse  # type: ignore[import-untyped]
from pydantic import SecretStr

from marketdata.api.app import create_app
from marketdata.bars import VALUE_COLUMNS
from marketdata.providers.polygon import PolygonClient
from marketdata.providers.simulator import MarketSimulator
from marketdata.service.quality import write_bars
from marketdata.settings import Settings
from marketdata.storage import open_store
from marketdata.testing import serve_in_thread
from tests.support.factories import AT

START, END = dt.date(2022, 1, 3), dt.date(2023, 12, 29)  # 501 sessions
SYMBOLS = ("AAPL", "MSFT", "BRK.B")
#: AAPL splits 4-for-1 on this date; a dividend (ignored by adjusted=true) comes before it.
SPLIT_DAY = dt.date(2023, 3, 1)
#: MSFT's bar of this day has no VWAP and no trade count.
BARE_DAY = dt.date(2022, 6, 15)
NEW_YORK = ZoneInfo("America/New_York")
ROUTE = "/v2/aggs/ticker/{}/range/1/day/{}/{}"
PAGES_MAX = 50  # safety stop when following next_url
READ_KEY = "md_read_5c1e7a"


@pytest.fixture
async def seeded(database_url: str) -> str:
    """A database with two years of simulated raw bars of three symbols, a split and a
    dividend of AAPL, and one MSFT bar without VWAP and trade count."""
    bars = MarketSimulator(seed=7).bars(list(SYMBOLS), START, END)
    bare = (pl.col("symbol") == "MSFT") & (pl.col("date") == BARE_DAY)
    bars = bars.with_columns(
        pl.when(bare).then(None).otherwise(pl.col("vwap")).alias("vwap"),
        pl.when(bare).then(None).otherwise(pl.col("transactions")).alias("transactions"),
    )
    store = await open_store(database_url)
    try:
        await write_bars(store, bars, source="test", at=AT)
        await store.upsert_splits(
            pl.DataFrame(
                {
                    "symbol": ["AAPL"],
                    "execution_date": [SPLIT_DAY],
                    "split_from": [1.0],
                    "split_to": [4.0],
                }
            ),
            source="test",
            at=AT,
        )
        await store.upsert_dividends(
            pl.DataFrame(
                {
                    "symbol": ["AAPL"],
                    "ex_dividend_date": [dt.date(2022, 8, 5)],
                    "cash_amount": [0.5],
                }
            ),
            source="test",
            at=AT,
        )
    finally:
        await store.aclose()
    return database_url


def _app(database_url: str) -> FastAPI:
    return create_app(Settings(database_url=database_url, simulate=False, scheduler=False))


@pytest.fixture
def api(seeded: str) -> Iterator[TestClient]:
    """The app on the seeded database, lifespan running."""
    with TestClient(_app(seeded)) as test_client:
        yield test_client


def _day(t: int) -> dt.date:
    return dt.datetime.fromtimestamp(t / 1000, tz=NEW_YORK).date()


def _midnight_ms(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), tzinfo=NEW_YORK).timestamp() * 1000)


def _follow(api: TestClient, url: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every result of a query, following ``next_url``; and how many pages it took."""
    results: list[dict[str, Any]] = []
    pages = 0
    next_url: str | None = url
    while next_url is not None:
        response = api.get(next_url, params=params if pages == 0 else None)
        assert response.status_code == 200, response.text
        body = response.json()
        results += body.get("results", [])
        assert body["resultsCount"] == body["queryCount"] == len(body.get("results", []))
        next_url = body.get("next_url")
        pages += 1
        assert pages < PAGES_MAX, "pagination does not end"
    return results, pages


@pytest.mark.parametrize(("adjusted", "v1_adjusted"), [("true", "splits"), ("false", "none")])
@pytest.mark.parametrize("symbol", SYMBOLS)
def test_same_bars_as_v1(api: TestClient, symbol: str, adjusted: str, v1_adjusted: str) -> None:
    """Every bar's values equal /api/v1/historical's (splits for true, none for false)."""
    ours = api.get(ROUTE.format(symbol, START, END), params={"adjusted": adjusted}).json()
    v1 = api.get(f"/api/v1/historical/{symbol}", params={"adjusted": v1_adjusted}).json()
    assert ours["adjusted"] is (adjusted == "true")
    assert ours["resultsCount"] == len(v1["bars"]) == 501
    for agg, bar in zip(ours["results"], v1["bars"], strict=True):
        assert _day(agg["t"]).isoformat() == bar["date"]
        assert agg["t"] == _midnight_ms(dt.date.fromisoformat(bar["date"]))
        for key, field in (("o", "open"), ("h", "high"), ("l", "low"), ("c", "close")):
            assert agg[key] == bar[field], (bar["date"], field)
        assert agg["v"] == bar["volume"]
        assert agg.get("vw") == bar["vwap"]
        assert agg.get("n") == bar["transactions"]


def test_adjusted_true_is_split_adjusted_only(api: TestClient) -> None:
    """adjusted=true (the default) puts AAPL's pre-split bars in post-split units and leaves
    dividends alone, as Polygon does: it equals v1's ``splits``, not ``all``."""
    url = ROUTE.format("AAPL", "2023-02-27", "2023-03-01")
    raw = api.get(url, params={"adjusted": "false"}).json()["results"]
    adjusted = api.get(url).json()["results"]
    assert [a["c"] for a in adjusted] == [raw[0]["c"] / 4.0, raw[1]["c"] / 4.0, raw[2]["c"]]
    assert [a["v"] for a in adjusted] == [raw[0]["v"] * 4.0, raw[1]["v"] * 4.0, raw[2]["v"]]
    first = api.get(ROUTE.format("AAPL", START, START)).json()["results"][0]
    v1 = {
        how: api.get("/api/v1/historical/AAPL", params={"adjusted": how}).json()["bars"][0]
        for how in ("splits", "all")
    }
    assert first["c"] == v1["splits"]["close"] != v1["all"]["close"]


def test_response_shape(api: TestClient) -> None:
    """Polygon's fields in Polygon's order; vw/n left out when null; no next_url on one page."""
    response = api.get(ROUTE.format("MSFT", "2022-06-14", "2022-06-16"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == [
        "ticker",
        "queryCount",
        "resultsCount",
        "adjusted",
        "results",
        "status",
        "request_id",
        "count",
    ]
    assert (body["ticker"], body["status"], body["adjusted"]) == ("MSFT", "OK", True)
    assert body["queryCount"] == body["resultsCount"] == body["count"] == 3
    assert len(body["request_id"]) == 32
    int(body["request_id"], 16)
    full, bare, _ = body["results"]
    assert list(full) == ["v", "vw", "o", "c", "h", "l", "t", "n"]
    assert list(bare) == ["v", "o", "c", "h", "l", "t"]
    # 2022-06-15 00:00 EDT is 04:00 UTC
    assert bare["t"] == 1655265600000
    assert isinstance(full["n"], int)
    assert isinstance(full["v"], float)


def test_t_is_new_york_midnight_across_dst(api: TestClient) -> None:
    """``t`` is 05:00 UTC in winter and 04:00 UTC in summer, as Polygon's daily bars."""
    body = api.get(ROUTE.format("AAPL", "2022-03-11", "2022-03-14")).json()
    stamps = [dt.datetime.fromtimestamp(r["t"] / 1000, tz=dt.UTC) for r in body["results"]]
    assert [(s.date(), s.hour) for s in stamps] == [
        (dt.date(2022, 3, 11), 5),
        (dt.date(2022, 3, 14), 4),
    ]


def test_dates_as_milliseconds_and_lower_case_ticker(api: TestClient) -> None:
    """``from``/``to`` in Unix ms (New York date) and a lower-case ticker give the same bars."""
    by_date = api.get(ROUTE.format("BRK.B", "2023-05-01", "2023-05-31")).json()
    late_on_first = _midnight_ms(dt.date(2023, 5, 1)) + 23 * 3_600_000  # 23:00 New York
    by_ms = api.get(ROUTE.format("brk.b", late_on_first, _midnight_ms(dt.date(2023, 5, 31))))
    assert by_ms.status_code == 200
    assert by_ms.json()["ticker"] == "BRK.B"
    assert by_ms.json()["results"] == by_date["results"]


@pytest.mark.parametrize("adjusted", ["true", "false"])
@pytest.mark.parametrize("sort", ["asc", "desc"])
def test_pagination_follows_next_url(api: TestClient, sort: str, adjusted: str) -> None:
    """limit=100 over 501 bars: six pages via next_url, together equal to the unpaged answer."""
    url = ROUTE.format("AAPL", START, END)
    whole = api.get(url, params={"sort": sort, "adjusted": adjusted, "limit": 50000}).json()
    assert "next_url" not in whole
    paged, pages = _follow(
        api, url, sort=sort, adjusted=adjusted, limit=100, apiKey="secret-key-123"
    )
    assert pages == 6
    assert paged == whole["results"]
    stamps = [r["t"] for r in paged]
    assert stamps == sorted(stamps, reverse=sort == "desc")


def test_next_url_is_ours_and_carries_no_key(api: TestClient) -> None:
    """next_url: our base URL, the range narrowed to the unsent bars, a cursor, never the key."""
    url = ROUTE.format("AAPL", START, END)
    body = api.get(url, params={"limit": 2, "apiKey": "secret-key-123"}).json()
    next_url = urlsplit(body["next_url"])
    assert (next_url.scheme, next_url.netloc) == ("http", "testserver")
    third = _midnight_ms(dt.date(2022, 1, 5))
    assert next_url.path == ROUTE.format("AAPL", third, END)
    assert next_url.query.startswith("cursor=")
    assert "secret" not in body["next_url"]
    cursor = next_url.query.removeprefix("cursor=")
    decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    assert decoded == "adjusted=true&limit=2&sort=asc"
    desc = api.get(url, params={"limit": 2, "sort": "desc"}).json()
    assert urlsplit(desc["next_url"]).path == ROUTE.format(
        "AAPL", START, _midnight_ms(dt.date(2023, 12, 27))
    )


def test_explicit_parameters_override_the_cursor(api: TestClient) -> None:
    """A parameter sent beside the cursor wins over the one the cursor carries."""
    first = api.get(ROUTE.format("AAPL", START, END), params={"limit": 2}).json()
    second = api.get(first["next_url"], params={"limit": 3}).json()
    assert second["resultsCount"] == 3
    assert urlsplit(second["next_url"]).query == "cursor=" + base64.urlsafe_b64encode(
        b"adjusted=true&limit=3&sort=asc"
    ).decode().rstrip("=")


@pytest.mark.parametrize(
    "path",
    [
        ROUTE.format("ZZZZ", START, END),  # nothing stored
        ROUTE.format("AAPL", "2019-01-01", "2019-12-31"),  # before the data
        ROUTE.format("AAPL", "2023-01-10", "2023-01-09"),  # from after to
        ROUTE.format("AAPL", "2022-01-01", "2022-01-02"),  # a weekend
    ],
)
def test_no_bars_is_200_without_results(api: TestClient, path: str) -> None:
    """As Polygon: 200, status OK, resultsCount and queryCount 0, no results, count or
    next_url."""
    response = api.get(path)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"ticker", "queryCount", "resultsCount", "adjusted", "status", "request_id"}
    assert (body["status"], body["queryCount"], body["resultsCount"]) == ("OK", 0, 0)


@pytest.mark.parametrize(
    ("path", "query", "says"),
    [
        ("/v2/aggs/ticker/AAPL/range/1/minute/2022-01-03/2022-01-31", "", "1/day"),
        ("/v2/aggs/ticker/AAPL/range/5/day/2022-01-03/2022-01-31", "", "1/day"),
        ("/v2/aggs/ticker/AAPL/range/x/day/2022-01-03/2022-01-31", "", "multiplier"),
        ("/v2/aggs/ticker/AAPL/range/1/day/2022-13-01/2022-01-31", "", "from"),
        ("/v2/aggs/ticker/AAPL/range/1/day/2022-01-03/Jan-31", "", "to"),
        ("/v2/aggs/ticker/AAPL/range/1/day/2022-01-03/99999999999999999999", "", "to"),
        ("/v2/aggs/ticker/AA$/range/1/day/2022-01-03/2022-01-31", "", "symbol"),
        ("/v2/aggs/ticker/AAPL/range/1/day/2022-01-03/2022-01-31", "sort=up", "sort"),
        ("/v2/aggs/ticker/AAPL/range/1/day/2022-01-03/2022-01-31", "limit=0", "limit"),
        ("/v2/aggs/ticker/AAPL/range/1/day/2022-01-03/2022-01-31", "adjusted=maybe", "adjusted"),
        ("/v2/aggs/ticker/AAPL/range/1/day/2022-01-03/2022-01-31", "cursor=%21%21", "cursor"),
        ("/v2/aggs/ticker/AAPL/range/1/day/2022-01-03/2022-01-31", "cursor=bGltaXQ9MA", "cursor"),
    ],
)
def test_bad_requests_are_polygon_400s(api: TestClient, path: str, query: str, says: str) -> None:
    """Unusable input is a 400 with Polygon's error body naming the problem."""
    response = api.get(f"{path}?{query}" if query else path)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"status", "request_id", "error"}
    assert body["status"] == "ERROR"
    assert says in body["error"]


def test_reads_behind_a_key_answer_polygon_401s(seeded: str) -> None:
    """With keys required for reads, no key is a 401 in Polygon's shape with a Bearer
    challenge, and the key as ``Authorization: Bearer`` (what Polygon clients send) works."""
    settings = Settings(
        database_url=seeded,
        simulate=False,
        scheduler=False,
        api_keys=(SecretStr(READ_KEY),),
        require_key_for_reads=True,
    )
    url = ROUTE.format("AAPL", "2022-01-03", "2022-01-31")
    with TestClient(create_app(settings)) as api:
        refused = api.get(url)
        wrong = api.get(url, headers={"Authorization": "Bearer not-a-key"})
        allowed = api.get(url, headers={"Authorization": f"Bearer {READ_KEY}"})
    for response in (refused, wrong):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["status"] == "ERROR"
        assert READ_KEY not in response.text
    assert allowed.status_code == 200
    assert allowed.json()["resultsCount"] == 20


def test_openapi_documents_the_route_with_examples(api: TestClient) -> None:
    """Summary, a description saying Polygon, and an example on every documented response."""
    spec = api.get("/openapi.json").json()
    operation = spec["paths"]["/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}"]
    get = operation["get"]
    assert get["summary"]
    assert "Polygon" in get["description"]
    assert set(get["responses"]) == {"200", "400", "default"}
    for answer in get["responses"].values():
        assert answer["content"]["application/json"]["example"]
    assert get["responses"]["200"]["content"]["application/json"]["example"]["results"]


# -- real Polygon clients over a real socket ------------------------------------------------


@pytest.fixture
def served(seeded: str) -> Iterator[str]:
    """The app on the seeded database on a 127.0.0.1 socket (lifespan on); its base URL."""
    with serve_in_thread(_app(seeded), lifespan=True) as url:
        yield url


@pytest.mark.parametrize("aggs_limit", [50_000, 60])
async def test_our_polygon_client_reads_our_raw_bars(
    served: str, seeded: str, aggs_limit: int
) -> None:
    """PolygonClient pointed at us returns exactly the stored raw bars, across pages too."""
    client = PolygonClient(api_key="x", base_url=served, calls_per_minute=0, aggs_limit=aggs_limit)
    try:
        bars = {s: await client.daily_bars(s, START, END) for s in SYMBOLS}
    finally:
        await client.aclose()
    assert client.calls == len(SYMBOLS) * (1 if aggs_limit > 501 else 9)  # ⌈501 / 60⌉ = 9
    store = await open_store(seeded)
    try:
        for symbol, got in bars.items():
            stored = await store.read_bars(symbol)
            assert got["symbol"].unique().to_list() == [symbol]
            assert got.drop("symbol").equals(stored.select("date", *VALUE_COLUMNS)), symbol
    finally:
        await store.aclose()


def test_official_polygon_client_works_unchanged(served: str, api: TestClient) -> None:
    """The official client (massive, formerly polygon-api-client) lists every bar through our
    next_url pages, raw and adjusted, equal to v1's bars; an unknown ticker lists nothing."""
    client = RESTClient(api_key="x", base=served, retries=0)
    try:
        for adjusted, v1_adjusted in ((False, "none"), (True, "splits")):
            aggs = list(
                client.list_aggs("AAPL", 1, "day", START, END, adjusted=adjusted, limit=120)
            )
            v1 = api.get("/api/v1/historical/AAPL", params={"adjusted": v1_adjusted}).json()
            assert [(a.timestamp, a.open, a.close, a.volume, a.vwap) for a in aggs] == [
                (
                    _midnight_ms(dt.date.fromisoformat(b["date"])),
                    b["open"],
                    b["close"],
                    b["volume"],
                    b["vwap"],
                )
                for b in v1["bars"]
            ]
        few = client.get_aggs("MSFT", 1, "day", "2022-06-14", "2022-06-16", sort="desc")
        assert [a.vwap is None for a in few] == [False, True, False]
        assert list(client.list_aggs("ZZZZ", 1, "day", START, END)) == []
    finally:
        client.client.clear()


def test_official_client_sees_polygon_errors(served: str) -> None:
    """A minute request is refused with a 400 the official client reports as BadResponse."""
    client = RESTClient(api_key="x", base=served, retries=0)
    try:
        with pytest.raises(BadResponse, match="1/day"):
            client.get_aggs("AAPL", 1, "minute", START, END)
    finally:
        client.client.clear()


async def test_concurrent_clients_page_independently(served: str) -> None:
    """Three clients paging at once each get every bar (paging keeps no server state)."""

    async def height(symbol: str) -> int:
        client = PolygonClient(api_key="x", base_url=served, calls_per_minute=0, aggs_limit=45)
        try:
            return (await client.daily_bars(symbol, START, END)).height
        finally:
            await client.aclose()

    assert await asyncio.gather(*(height(s) for s in SYMBOLS)) == [501, 501, 501]
