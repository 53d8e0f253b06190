"""Vendor responses → frames and typed errors: real samples and tables of cases."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from marketdata.errors import (
    AuthenticationFailed,
    MalformedResponse,
    PlanNotEntitled,
    PlanTimeframe,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    UpstreamNotFound,
)
from marketdata.providers import polygon_parse as parse
from marketdata.providers._http import decode

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "polygon"


def sample(name: str) -> dict[str, Any]:
    """A real response copied from the vendor's client repository."""
    return dict(json.loads((SAMPLES / name).read_text()))


def test_range_sample_parses_exactly() -> None:
    """AAPL 2005-04-01..04: midnight-New-York stamps become those session dates (EST and EDT)."""
    bars = parse.aggregates(
        sample("v2_aggs_ticker_AAPL_range_1_day_2005-04-01_2005-04-04.json"),
        endpoint="range",
        path="/v2/aggs/ticker/AAPL/range/1/day/2005-04-01/2005-04-04",
        symbol="AAPL",
    )
    assert bars.rows() == [
        ("AAPL", dt.date(2005, 4, 1), 1.5032, 1.5064, 1.4489, 1.4604, 642646396.0, 1.469, 82132),
        ("AAPL", dt.date(2005, 4, 4), 1.4639, 1.4754, 1.4343, 1.4675, 578172308.0, 1.4589, 65543),
    ]


def test_grouped_sample_uses_the_16_00_stamp() -> None:
    """The grouped row's 20:00 UTC (16:00 New York) stamp is that day's session."""
    bars = parse.aggregates(
        sample("v2_aggs_grouped_locale_us_market_stocks_2005-04-04_adjusted_true.json"),
        endpoint="grouped",
        path="/v2/aggs/grouped/locale/us/market/stocks/2005-04-04",
    )
    assert bars.rows() == [
        ("GIK", dt.date(2020, 10, 14), 9.99, 10.02, 9.9, 10.02, 895345.0, 9.9979, 96)
    ]


def test_prev_sample_16_00_stamp() -> None:
    """The prev-day sample is stamped 16:00 New York too: 2022-04-26."""
    bars = parse.aggregates(
        sample("v2_aggs_ticker_AAPL_prev.json"), endpoint="grouped", path="/prev"
    )
    assert bars["date"].to_list() == [dt.date(2022, 4, 26)]


def test_splits_sample() -> None:
    """The v3 splits sample: ratios as floats, dates as dates, reverse splits kept."""
    splits = parse.splits(sample("v3_reference_splits.json"), path="/v3/reference/splits")
    assert splits.height == 10
    assert splits.row(0) == ("GOOGL", dt.date(2022, 7, 18), 1.0, 20.0)
    assert ("BRW", dt.date(2022, 5, 20), 2.0, 1.0) in splits.rows()


def test_dividends_sample() -> None:
    """The v3 dividends sample: amounts, all four dates, frequency and type."""
    dividends = parse.dividends(
        sample("v3_reference_dividends.json"), path="/v3/reference/dividends"
    )
    assert dividends.height == 10
    assert dividends.row(0) == (
        "CSSEN",
        dt.date(2025, 6, 12),
        0.59375,
        dt.date(2020, 9, 9),
        dt.date(2025, 6, 15),
        dt.date(2025, 6, 30),
        4,
        "CD",
    )


@pytest.mark.parametrize(
    "data",
    [
        {
            "ticker": "AAMC",
            "queryCount": 0,
            "resultsCount": 0,
            "adjusted": True,
            "status": "OK",
            "request_id": "x",
        },
        {"ticker": "X", "results": None, "status": "OK"},
        {"ticker": "X", "results": [], "status": "DELAYED"},
    ],
)
def test_empty_answers_are_valid(data: dict[str, Any]) -> None:
    """Missing, null or empty results are an empty frame."""
    assert parse.aggregates(data, endpoint="range", path="/p", symbol="X").is_empty()


def test_exponent_volume_and_missing_optionals() -> None:
    """v in exponent notation parses; absent vw and n are null."""
    data = {
        "status": "OK",
        "results": [{"o": 1, "h": 2, "l": 0.5, "c": 1.5, "v": 1.029145e06, "t": 1112331600000}],
    }
    bars = parse.aggregates(data, endpoint="range", path="/p", symbol="X")
    assert bars.row(0)[6:] == (1029145.0, None, None)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"status": "ERROR", "error": "boom"}, "unexpected status 'ERROR': boom"),
        ({"status": "OK", "results": {"o": 1}}, "'results' is not a list"),
        (
            {
                "status": "OK",
                "resultsCount": 2,
                "results": [{"o": 1, "h": 1, "l": 1, "c": 1, "v": 1, "t": 1}],
            },
            "resultsCount is 2",
        ),
        (
            {"status": "OK", "results": [{"o": 1, "h": 1, "l": 1, "v": 1, "t": 1}]},
            "lack the field 'c'",
        ),
        (
            {"status": "OK", "results": [{"o": "x", "h": 1, "l": 1, "c": 1, "v": 1, "t": 1}]},
            "results[0].o is not a number",
        ),
        (
            {
                "status": "OK",
                "results": [{"o": 1, "h": 1, "l": 1, "c": 1, "v": 1, "t": 1, "vw": "?"}],
            },
            "results[0].vw is not a number",
        ),
        ({"status": "OK", "results": [1, 2]}, "not all objects"),
    ],
)
def test_malformed_aggregates(data: dict[str, Any], words: str) -> None:
    """Every malformed shape is a MalformedResponse naming the path."""
    with pytest.raises(MalformedResponse) as info:
        parse.aggregates(data, endpoint="range", path="/v2/x", symbol="X")
    assert words in str(info.value)
    assert "/v2/x" in str(info.value)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"<html>502</html>", "not valid JSON"),
        (b'{"a": ', "not valid JSON"),
        (b"[1]", "not a JSON object"),
    ],
)
def test_decode_rejects_non_objects(body: bytes, words: str) -> None:
    """Bodies that are not JSON objects are refused."""
    with pytest.raises(MalformedResponse, match=words):
        decode(body, path="/p")


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, b'{"status":"ERROR","error":"API Key was not provided"}', AuthenticationFailed),
        (401, b'{"status":"ERROR","error":"Unknown API Key"}', AuthenticationFailed),
        (
            403,
            b'{"status":"NOT_AUTHORIZED","message":"Your plan doesn\'t include this timeframe."}',
            PlanTimeframe,
        ),
        (
            403,
            b'{"status":"NOT_AUTHORIZED","message":"You are not entitled to this data."}',
            PlanNotEntitled,
        ),
        (404, b'{"status":"NOT_FOUND","message":"Data not found."}', UpstreamNotFound),
        (
            429,
            b'{"status":"ERROR","error":"You\'ve exceeded the maximum requests per minute"}',
            RateLimited,
        ),
        (500, b'{"status":"ERROR","error":"x"}', ProviderUnavailable),
        (502, b"<html><center>nginx</center></html>", ProviderUnavailable),
        (504, b"", ProviderUnavailable),
        (400, b'{"status":"ERROR","error":"bad date"}', ProviderError),
    ],
)
def test_error_classification(status: int, body: bytes, error: type[ProviderError]) -> None:
    """HTTP status plus body → the typed error, carrying the vendor's message and the path."""
    exc = parse.error_for(status, body, path="/v2/aggs/x", retry_after=None)
    assert type(exc) is error
    assert exc.status_code == status
    assert exc.path == "/v2/aggs/x"
    if body.startswith(b"{"):
        assert exc.vendor_message
        assert exc.vendor_message in str(exc)


def test_retry_after_travels_with_rate_limits() -> None:
    """A 429's Retry-After seconds are kept for the retry hook."""
    exc = parse.error_for(429, b"{}", path="/p", retry_after=7.0)
    assert isinstance(exc, RateLimited)
    assert exc.retry_after == 7.0
