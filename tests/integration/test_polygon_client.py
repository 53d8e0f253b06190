"""The real Polygon client against a Polygon-like server over a real socket."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging

import polars as pl
import pytest

from marketdata.errors import (
    AuthenticationFailed,
    MalformedResponse,
    PlanNotEntitled,
    PlanTimeframe,
    ProviderUnavailable,
    RateLimited,
)
from marketdata.providers.polygon import PolygonClient
from marketdata.providers.simulator import DEFAULT_SYMBOLS
from tests.support.polygon import KEY, TODAY, Upstream, client, upstream

__all__ = ["client", "upstream"]


def assert_no_key_leak(up: Upstream) -> None:
    """Every request carried the Bearer key, and no URL ever held it."""
    assert up.server.requests
    for seen in up.server.requests:
        assert seen.authorization == f"Bearer {KEY}"
        assert KEY not in seen.url
        assert "apikey" not in seen.url.lower()


async def test_range_follows_every_page(upstream: Upstream, client: PolygonClient) -> None:
    """Five years in pages of 100 come back whole, equal to the simulator's raw bars."""
    upstream.server.faults.page_size = 100
    start, end = dt.date(2021, 1, 1), dt.date(2025, 12, 31)
    bars = await client.daily_bars("AAPL", start, end)
    expected = upstream.server.simulator.bars(["AAPL"], start, end)
    assert bars.equals(expected)
    assert bars.height > 1200
    pages = [r for r in upstream.server.requests if "/range/" in r.path]
    assert len(pages) == -(-bars.height // 100)
    assert all("adjusted=false" in r.query or "cursor=" in r.query for r in pages)
    assert_no_key_leak(upstream)


async def test_next_url_host_is_ignored(upstream: Upstream, client: PolygonClient) -> None:
    """A next_url naming the vendor's host is followed by path against our base URL only."""
    upstream.server.faults.page_size = 50
    upstream.server.faults.next_url_host = "https://api.massive.com"
    bars = await client.daily_bars("MSFT", dt.date(2025, 1, 1), dt.date(2025, 6, 30))
    assert bars.height > 100
    assert len(upstream.server.requests) >= 3


async def test_fifteen_symbols_five_years_with_429s_and_pages(upstream: Upstream) -> None:
    """The 'done when' run: 15 symbols × 5 years, paginated, through a 429 storm, no leak."""
    faults = upstream.server.faults
    faults.page_size = 400
    faults.throttle_next = 6
    faults.retry_after = 0.05
    polygon = upstream.client()
    try:
        start, end = dt.date(2021, 11, 20), TODAY
        frames = await asyncio.gather(*(polygon.daily_bars(s, start, end) for s in DEFAULT_SYMBOLS))
    finally:
        await polygon.aclose()
    expected = upstream.server.simulator.bars(list(DEFAULT_SYMBOLS), start, end)
    assert pl.concat(frames).sort("symbol", "date").equals(expected.sort("symbol", "date"))
    statuses = [r.status for r in upstream.server.requests]
    assert statuses.count(429) == 6
    assert polygon.calls == len(statuses)
    assert_no_key_leak(upstream)


async def test_pacing_keeps_under_the_vendor_limit(upstream: Upstream) -> None:
    """With the limiter at the vendor's rate, the server never answers 429 and starts are spaced."""
    faults = upstream.server.faults
    faults.rate_limit, faults.rate_window = 4, 1.0
    faults.page_size = 20
    polygon = upstream.client(calls_per_minute=240)  # 4 per second, like the server's limit
    try:
        await asyncio.gather(
            polygon.daily_bars("AAPL", dt.date(2025, 9, 1), dt.date(2025, 10, 31)),
            polygon.daily_bars("MSFT", dt.date(2025, 9, 1), dt.date(2025, 10, 31)),
        )
    finally:
        await polygon.aclose()
    seen = upstream.server.requests
    assert len(seen) >= 6
    assert all(r.status == 200 for r in seen)
    gaps = [b.at - a.at for a, b in itertools.pairwise(seen)]
    assert min(gaps) >= 0.25 - 0.02  # 60 / 240 s between starts (socket jitter allowed)


async def test_retry_after_is_honoured(upstream: Upstream, client: PolygonClient) -> None:
    """After a 429 with Retry-After, the next call comes no sooner than asked."""
    upstream.server.faults.throttle_next = 2
    upstream.server.faults.retry_after = 0.3
    bars = await client.daily_bars("AAPL", dt.date(2025, 1, 1), dt.date(2025, 1, 31))
    assert bars.height > 15
    first, second, third = upstream.server.requests[:3]
    assert (first.status, second.status, third.status) == (429, 429, 200)
    assert second.at - first.at >= 0.3
    assert third.at - second.at >= 0.3


async def test_rate_limit_past_the_deadline_is_rate_limited(upstream: Upstream) -> None:
    """A 429 storm longer than the retry deadline surfaces as RateLimited."""
    upstream.server.faults.throttle_next = 10_000
    polygon = upstream.client(retry_deadline=0.3)
    try:
        with pytest.raises(RateLimited) as info:
            await polygon.daily_bars("AAPL", dt.date(2025, 1, 1), dt.date(2025, 1, 31))
    finally:
        await polygon.aclose()
    assert "/v2/aggs/ticker/AAPL" in str(info.value)
    assert len(upstream.server.requests) >= 2


async def test_server_errors_are_retried(upstream: Upstream, client: PolygonClient) -> None:
    """Two HTML 502 gateway pages, then the data."""
    upstream.server.faults.fail_next = 2
    bars = await client.daily_bars("AAPL", dt.date(2025, 3, 1), dt.date(2025, 3, 31))
    assert bars.height == 21
    assert [r.status for r in upstream.server.requests] == [502, 502, 200]


async def test_random_server_errors_are_absorbed(upstream: Upstream, client: PolygonClient) -> None:
    """A 30 % 5xx rate still yields complete, correct data."""
    upstream.server.faults.error_rate = 0.3
    upstream.server.faults.page_size = 60
    start, end = dt.date(2024, 1, 1), dt.date(2025, 12, 31)
    bars = await client.daily_bars("NVDA", start, end)
    assert bars.equals(upstream.server.simulator.bars(["NVDA"], start, end))
    assert any(r.status >= 500 for r in upstream.server.requests)


async def test_timeouts_surface_as_unavailable(upstream: Upstream) -> None:
    """A server slower than the timeout, past the deadline, is ProviderUnavailable."""
    upstream.server.faults.slow_seconds = 0.5
    polygon = upstream.client(timeout=0.1, retry_deadline=0.4)
    try:
        with pytest.raises(ProviderUnavailable, match="did not answer in time"):
            await polygon.grouped_daily(dt.date(2025, 3, 3))
    finally:
        await polygon.aclose()


@pytest.mark.parametrize(
    ("setup", "error", "words"),
    [
        (
            {"plan_start": dt.date(2024, 11, 20)},
            PlanTimeframe,
            "doesn't include this data timeframe",
        ),
        ({"not_entitled": True}, PlanNotEntitled, "not entitled"),
    ],
)
async def test_plan_errors_are_not_retried(
    upstream: Upstream,
    client: PolygonClient,
    setup: dict[str, object],
    error: type[Exception],
    words: str,
) -> None:
    """403s carry the vendor's message, are typed, and cost exactly one call."""
    for name, value in setup.items():
        setattr(upstream.server.faults, name, value)
    with pytest.raises(error) as info:
        await client.daily_bars("TSLA", dt.date(2019, 1, 1), dt.date(2019, 12, 31))
    assert words in str(info.value)
    assert len(upstream.server.requests) == 1
    if error is PlanNotEntitled:
        assert not isinstance(info.value, PlanTimeframe)


async def test_future_dates_are_a_timeframe_error(client: PolygonClient) -> None:
    """Asking past the last session is a plan timeframe error, like the vendor's."""
    with pytest.raises(PlanTimeframe):
        await client.grouped_daily(TODAY + dt.timedelta(days=3))


async def test_wrong_key_is_authentication_failed_without_the_key(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    """401 is final, and neither the error, its repr nor the logs show the key."""
    caplog.set_level(logging.DEBUG)
    wrong = "pk_WRONG_0123456789abcdef"
    polygon = upstream.client(api_key=wrong)
    try:
        with pytest.raises(AuthenticationFailed) as info:
            await polygon.daily_bars("AAPL", dt.date(2025, 1, 1), dt.date(2025, 1, 31))
    finally:
        await polygon.aclose()
    assert "Unknown API Key" in str(info.value)
    for text in (str(info.value), repr(info.value), repr(polygon), caplog.text):
        assert wrong not in text
    assert len(upstream.server.requests) == 1


def test_missing_key_is_refused_before_any_call() -> None:
    """No key, no client: the message says which variable to set."""
    with pytest.raises(AuthenticationFailed, match="POLYGON_API_KEY"):
        PolygonClient(api_key="")


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("invalid_json", "not valid JSON"),
        ("truncated_json", "not valid JSON"),
        ("wrong_types", "is not a number"),
        ("missing_field", "lacks 'c'"),
        ("bad_status", "unexpected status 'WEIRD'"),
    ],
)
async def test_malformed_answers_name_the_path(
    upstream: Upstream, client: PolygonClient, kind: str, words: str
) -> None:
    """A broken answer is a MalformedResponse naming the URL path, not a crash deeper down."""
    upstream.server.faults.malformed = kind
    with pytest.raises(MalformedResponse) as info:
        await client.daily_bars("AAPL", dt.date(2025, 1, 1), dt.date(2025, 1, 31))
    assert words in str(info.value)
    assert "/v2/aggs/ticker/AAPL/range/1/day/2025-01-01/2025-01-31" in str(info.value)


async def test_empty_answers_are_empty_frames(client: PolygonClient) -> None:
    """Unknown tickers, weekends and holidays give empty frames, not errors."""
    assert (await client.daily_bars("NOSUCH", dt.date(2025, 1, 1), dt.date(2025, 1, 31))).is_empty()
    assert (await client.grouped_daily(dt.date(2025, 12, 25))).is_empty()
    assert (await client.grouped_daily(dt.date(2025, 1, 4))).is_empty()


async def test_grouped_daily_matches_per_symbol_bars(
    upstream: Upstream, client: PolygonClient
) -> None:
    """The 16:00 stamps of grouped bars land on the same session date as range bars."""
    session = dt.date(2024, 3, 11)  # first Monday of daylight saving time
    grouped = await client.grouped_daily(session)
    assert set(grouped["symbol"]) == set(DEFAULT_SYMBOLS)
    assert grouped["date"].unique().to_list() == [session]
    ranged = await client.daily_bars("AAPL", session, session)
    assert grouped.filter(pl.col("symbol") == "AAPL").equals(ranged)


async def test_silent_truncation_is_detected_and_completed(upstream: Upstream) -> None:
    """A page cut at the limit with no next_url is continued from the day after its last bar."""
    upstream.server.faults.silent_truncation = True
    polygon = upstream.client(aggs_limit=100)
    start, end = dt.date(2024, 1, 1), dt.date(2025, 12, 31)
    try:
        bars = await polygon.daily_bars("AMZN", start, end)
    finally:
        await polygon.aclose()
    assert bars.equals(upstream.server.simulator.bars(["AMZN"], start, end))
    assert len(upstream.server.requests) == -(-bars.height // 100) + (bars.height % 100 == 0)


@pytest.mark.parametrize("v1", [True, False])
async def test_splits_and_dividends_with_fallback(upstream: Upstream, v1: bool) -> None:
    """/stocks/v1 is used when present, /v3/reference otherwise; pages are followed."""
    upstream.server.faults.v1_reference = v1
    polygon = upstream.client()
    try:
        splits = await polygon.splits(list(DEFAULT_SYMBOLS))
        dividends = await polygon.dividends(["AAPL", "MSFT"], since=dt.date(2015, 1, 1))
    finally:
        await polygon.aclose()
    sim = upstream.server.simulator
    expected_splits = sim.splits(list(DEFAULT_SYMBOLS), dt.date(2000, 1, 1), TODAY)
    assert splits.sort("symbol", "execution_date").equals(
        expected_splits.sort("symbol", "execution_date")
    )
    expected_div = sim.dividends(["AAPL", "MSFT"], dt.date(2015, 1, 1), TODAY)
    assert dividends.select("symbol", "ex_dividend_date", "cash_amount").equals(
        expected_div.select("symbol", "ex_dividend_date", "cash_amount").sort(
            "symbol", "ex_dividend_date"
        )
    )
    paths = {r.path for r in upstream.server.requests}
    assert ("/stocks/v1/splits" in paths) is True
    assert ("/v3/reference/splits" in paths) is (not v1)
    assert_no_key_leak(upstream)


async def test_bad_bars_come_through_as_sent(upstream: Upstream, client: PolygonClient) -> None:
    """Injected bad bars reach the caller untouched: flagging them is validation's job."""
    day = dt.date(2025, 3, 12)
    upstream.server.faults.bad_bars = {
        "AAPL": [(day, "high_below_low"), (dt.date(2025, 3, 13), "nan_price")],
        "MSFT": [(day, "duplicate_session"), (dt.date(2025, 3, 14), "missing_session")],
        "NVDA": [(day, "negative_price"), (dt.date(2025, 3, 13), "zero_volume")],
    }
    start, end = dt.date(2025, 3, 10), dt.date(2025, 3, 14)
    aapl = await client.daily_bars("AAPL", start, end)
    hit = aapl.filter(pl.col("date") == day).row(0, named=True)
    assert hit["high"] < hit["low"]
    nan_open = aapl.filter(pl.col("date") == dt.date(2025, 3, 13))["open"][0]
    assert nan_open != nan_open  # NaN survives the JSON round trip
    msft = await client.daily_bars("MSFT", start, end)
    assert msft["date"].to_list().count(day) == 2
    assert dt.date(2025, 3, 14) not in msft["date"].to_list()
    nvda = await client.daily_bars("NVDA", start, end)
    assert nvda.filter(pl.col("date") == day)["close"][0] < 0
    assert nvda.filter(pl.col("date") == dt.date(2025, 3, 13))["volume"][0] == 0.0
