"""Yahoo chart responses → frames and typed errors: the real shape, nulls, dates, garbage."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import polars as pl
import pytest

from marketdata.bars import BAR_SCHEMA, DIVIDEND_SCHEMA, SPLIT_SCHEMA
from marketdata.errors import (
    MalformedResponse,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    UpstreamNotFound,
)
from marketdata.providers import yahoo_parse as parse
from marketdata.providers._http import decode
from marketdata.providers.yahoo import period_bounds

PATH = "/v8/finance/chart/AAPL"

#: 09:30 New York on 2024-03-08 (EST, 14:30 UTC) and 2024-03-11 (EDT, 13:30 UTC), around the
#: March DST change, and 2024-11-01 (EDT) / 2024-11-04 (EST) around the November one.
MAR_08, MAR_11, NOV_01, NOV_04 = 1709908200, 1710163800, 1730467800, 1730730600
#: The brief's real-shaped answer: 2024-01-02, a dividend and AAPL's 2020 4-for-1 split.
JAN_02 = 1704205800


def answer(**quote: list[Any]) -> dict[str, Any]:
    """A real-shaped chart answer for three sessions; ``quote`` replaces arrays."""
    arrays: dict[str, list[Any]] = {
        "open": [187.15, 184.22, 182.15],
        "high": [188.44, 185.88, 183.09],
        "low": [183.89, 183.43, 180.88],
        "close": [185.64, 184.25, 181.91],
        "volume": [82488700, 58414500, 71983600],
        **quote,
    }
    return {
        "chart": {
            "result": [
                {
                    "meta": {
                        "currency": "USD",
                        "symbol": "AAPL",
                        "exchangeTimezoneName": "America/New_York",
                        "gmtoffset": -18000,
                    },
                    "timestamp": [JAN_02, JAN_02 + 86400, JAN_02 + 2 * 86400],
                    "events": {
                        "dividends": {"1707489000": {"amount": 0.24, "date": 1707489000}},
                        "splits": {
                            "1598880600": {
                                "date": 1598880600,
                                "numerator": 4.0,
                                "denominator": 1.0,
                                "splitRatio": "4:1",
                            }
                        },
                    },
                    "indicators": {
                        "quote": [arrays],
                        "adjclose": [{"adjclose": [184.73, 183.35, 181.02]}],
                    },
                }
            ],
            "error": None,
        }
    }


def test_real_shape_parses_exactly() -> None:
    """Bars in BAR_SCHEMA (vwap, transactions null), adjclose beside them, events as frames."""
    chart = parse.chart(answer(), symbol="AAPL", path=PATH)
    assert chart.bars.schema == pl.Schema(BAR_SCHEMA)
    assert chart.bars.rows() == [
        ("AAPL", dt.date(2024, 1, 2), 187.15, 188.44, 183.89, 185.64, 82488700.0, None, None),
        ("AAPL", dt.date(2024, 1, 3), 184.22, 185.88, 183.43, 184.25, 58414500.0, None, None),
        ("AAPL", dt.date(2024, 1, 4), 182.15, 183.09, 180.88, 181.91, 71983600.0, None, None),
    ]
    assert chart.adjusted_close["adjclose"].to_list() == [184.73, 183.35, 181.02]
    assert chart.splits.schema == pl.Schema(SPLIT_SCHEMA)
    assert chart.splits.rows() == [("AAPL", dt.date(2020, 8, 31), 1.0, 4.0)]
    assert chart.dividends.schema == pl.Schema(DIVIDEND_SCHEMA)
    assert chart.dividends.select("symbol", "ex_dividend_date", "cash_amount").rows() == [
        ("AAPL", dt.date(2024, 2, 9), 0.24)
    ]


@pytest.mark.parametrize("field", ["open", "high", "low", "close", "volume"])
def test_a_null_in_any_quote_array_drops_that_day(field: str) -> None:
    """Yahoo's null for a day removes the day, whichever array holds it."""
    values = answer()["chart"]["result"][0]["indicators"]["quote"][0][field]
    values[1] = None
    chart = parse.chart(answer(**{field: values}), symbol="AAPL", path=PATH)
    assert chart.bars["date"].to_list() == [dt.date(2024, 1, 2), dt.date(2024, 1, 4)]
    assert chart.adjusted_close["date"].to_list() == [dt.date(2024, 1, 2), dt.date(2024, 1, 4)]


def test_a_null_adjclose_keeps_the_bar() -> None:
    """adjclose is extra: its null does not remove the split-adjusted bar."""
    data = answer()
    data["chart"]["result"][0]["indicators"]["adjclose"][0]["adjclose"][0] = None
    chart = parse.chart(data, symbol="AAPL", path=PATH)
    assert chart.bars.height == 3
    assert chart.adjusted_close["adjclose"].to_list() == [None, 183.35, 181.02]


@pytest.mark.parametrize(
    ("stamp", "day"),
    [
        (MAR_08, dt.date(2024, 3, 8)),  # EST: 14:30 UTC
        (MAR_11, dt.date(2024, 3, 11)),  # EDT: 13:30 UTC
        (NOV_01, dt.date(2024, 11, 1)),  # EDT
        (NOV_04, dt.date(2024, 11, 4)),  # EST
        (NOV_04 + 6 * 3600 + 30 * 60, dt.date(2024, 11, 4)),  # 16:00 live-bar stamp
        (1719878400, dt.date(2024, 7, 1)),  # 20:00 New York is already July 2 in UTC
        (MAR_08 - 9 * 3600 - 30 * 60, dt.date(2024, 3, 8)),  # midnight New York
        (MAR_08 - 9 * 3600 - 31 * 60, dt.date(2024, 3, 7)),  # a minute before it
    ],
)
def test_timestamps_become_new_york_dates(stamp: int, day: dt.date) -> None:
    """Stamps convert with the time zone on both sides of each DST change, never as UTC."""
    assert parse.session_dates(pl.Series([stamp])).to_list() == [day]
    data = answer()
    result = data["chart"]["result"][0]
    result["timestamp"] = [stamp]
    result["indicators"] = {"quote": [{k: [1.0] for k in parse.QUOTE_FIELDS}]}
    assert parse.chart(data, symbol="AAPL", path=PATH).bars["date"].to_list() == [day]


def test_a_session_sent_twice_keeps_its_last_row() -> None:
    """The 09:30 row and a later live row of the same day: the later one wins."""
    data = answer()
    data["chart"]["result"][0]["timestamp"] = [JAN_02, JAN_02 + 3600, JAN_02 + 86400]
    chart = parse.chart(data, symbol="AAPL", path=PATH)
    assert chart.bars["date"].to_list() == [dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
    assert chart.bars["close"].to_list() == [184.25, 181.91]


def test_an_empty_range_is_an_empty_frame() -> None:
    """No timestamp and an empty quote object: no rows, the usual columns."""
    data = {
        "chart": {
            "result": [
                {"meta": {"symbol": "AAPL"}, "indicators": {"quote": [{}], "adjclose": [{}]}}
            ],
            "error": None,
        }
    }
    chart = parse.chart(data, symbol="AAPL", path=PATH)
    assert chart.bars.is_empty()
    assert chart.bars.schema == pl.Schema(BAR_SCHEMA)
    assert chart.splits.is_empty()
    assert chart.dividends.is_empty()


NOT_FOUND = {
    "chart": {
        "result": None,
        "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"},
    }
}


def test_unknown_symbol_404_body() -> None:
    """The 404 body is UpstreamNotFound carrying Yahoo's description and the path."""
    error = parse.error_for(404, json.dumps(NOT_FOUND).encode(), path=PATH, retry_after=None)
    assert isinstance(error, UpstreamNotFound)
    assert error.vendor_message == "No data found, symbol may be delisted"
    assert error.path == PATH
    assert str(error) == (
        "Yahoo has no such symbol: No data found, symbol may be delisted (/v8/finance/chart/AAPL)"
    )
    with pytest.raises(UpstreamNotFound, match="symbol may be delisted"):
        parse.chart(NOT_FOUND, symbol="AAPL", path=PATH)


@pytest.mark.parametrize(
    ("status", "body", "kind", "words"),
    [
        (429, b"Too Many Requests\r\n", RateLimited, "rate limited by Yahoo"),
        (500, b"", ProviderUnavailable, "HTTP 500"),
        (502, b"<html><title>502 Bad Gateway</title></html>", ProviderUnavailable, "HTTP 502"),
        (503, b"{}", ProviderUnavailable, "HTTP 503"),
        (
            400,
            json.dumps(
                {"chart": {"result": None, "error": {"code": "Bad Request", "description": "Bad"}}}
            ).encode(),
            ProviderError,
            "HTTP 400 Bad Request: Bad",
        ),
        (401, b'{"finance":{"error":{"code":"Unauthorized"}}}', ProviderError, "HTTP 401"),
    ],
)
def test_error_statuses(status: int, body: bytes, kind: type[ProviderError], words: str) -> None:
    """Each status becomes the error class its retry policy needs, with the path."""
    error = parse.error_for(status, body, path=PATH, retry_after=2.0)
    assert type(error) is kind
    assert words in str(error)
    assert PATH in str(error)
    if isinstance(error, RateLimited):
        assert error.retry_after == 2.0


def _broken(edit: str) -> dict[str, Any]:
    data = copy.deepcopy(answer())
    result = data["chart"]["result"][0]
    quote = result["indicators"]["quote"][0]
    if edit == "no chart":
        return {"finance": {}}
    if edit == "empty result":
        data["chart"]["result"] = []
    elif edit == "no indicators":
        del result["indicators"]
    elif edit == "no quote":
        result["indicators"]["quote"] = []
    elif edit == "ragged":
        quote["close"] = quote["close"][:2]
    elif edit == "string":
        quote["open"][2] = "n/a"
    elif edit == "bool":
        quote["volume"][0] = True
    elif edit == "missing array":
        del quote["low"]
    elif edit == "null timestamp":
        result["timestamp"][1] = None
    elif edit == "timestamp not a list":
        result["timestamp"] = "1704205800"
    elif edit == "events not an object":
        result["events"] = ["splits"]
    elif edit == "split lacks numerator":
        del result["events"]["splits"]["1598880600"]["numerator"]
    elif edit == "dividend amount text":
        result["events"]["dividends"]["1707489000"]["amount"] = "0.24"
    return data


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        ("no chart", "chart is not an object"),
        ("empty result", "chart.result is not a non-empty list"),
        ("no indicators", "chart.result[0].indicators is not an object"),
        ("no quote", "indicators.quote is not a non-empty list"),
        ("ragged", "quote[0].close has 2 values for 3 timestamps"),
        ("string", "quote[0].open[2] is not a number: 'n/a'"),
        ("bool", "quote[0].volume[0] is not a number: True"),
        ("missing array", "quote[0].low is not a list"),
        ("null timestamp", "timestamp holds null"),
        ("timestamp not a list", "timestamp is not a list"),
        ("events not an object", "events is not an object"),
        ("split lacks numerator", "an event lacks 'numerator'"),
        ("dividend amount text", "dividends.*.amount[0] is not a number"),
    ],
)
def test_garbage_is_malformed_and_names_the_path(edit: str, words: str) -> None:
    """Every malformed shape is MalformedResponse saying where, with the request path."""
    with pytest.raises(MalformedResponse) as info:
        parse.chart(_broken(edit), symbol="AAPL", path=PATH)
    assert words in str(info.value)
    assert info.value.path == PATH


@pytest.mark.parametrize(
    ("body", "words"),
    [(b"<html>oops</html>", "not valid JSON"), (b"[1, 2]", "not a JSON object")],
)
def test_undecodable_bodies(body: bytes, words: str) -> None:
    """A body that is not a JSON object is MalformedResponse."""
    with pytest.raises(MalformedResponse, match=words):
        decode(body, path=PATH)


def test_symbols_and_periods() -> None:
    """BRK.B is asked for as BRK-B; a range's period runs from New York midnight to the next."""
    assert parse.yahoo_symbol("BRK.B") == "BRK-B"
    assert parse.yahoo_symbol("AAPL") == "AAPL"
    assert parse.yahoo_symbol("BACpL") == "BAC-PL"  # Polygon's preferred L of BAC
    assert period_bounds(dt.date(2024, 3, 8), dt.date(2024, 3, 8)) == (
        MAR_08 - 9 * 3600 - 30 * 60,
        MAR_08 - 9 * 3600 - 30 * 60 + 86400,
    )
    first, last = period_bounds(dt.date(2024, 3, 8), dt.date(2024, 3, 11))
    assert last - first == 4 * 86400 - 3600  # the DST night is an hour short
    with pytest.raises(ValueError, match="after end"):
        period_bounds(dt.date(2024, 3, 9), dt.date(2024, 3, 8))
