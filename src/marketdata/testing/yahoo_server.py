"""Yahoo's daily chart endpoint, served by the fake Polygon from the same simulated market.

``GET /v8/finance/chart/{symbol}`` answers in Yahoo's JSON shape: sessions stamped 09:30 New
York in Unix seconds, split-adjusted OHLCV, a split- and dividend-adjusted ``adjclose``, and the
simulator's splits and dividends as ``events``; an unknown symbol gets Yahoo's 404 body. Prices
are rounded to float32 and volumes to integers, as Yahoo's are.

The adjustments are computed here, on their own, and never with :mod:`marketdata.adjust`: a
cross-check of our adjusted reads against this endpoint then tests two implementations, not one.

Differences can be planted (:class:`YahooPlants`): replaced values (``None`` plants a null, as
Yahoo sends for a day it lacks), omitted sessions, 429s, gateway errors and malformed bodies.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
from starlette.requests import Request
from starlette.responses import Response

from marketdata.bars import empty_dividends
from marketdata.providers.simulator import ORIGIN, MarketSimulator

NEW_YORK: Final = "America/New_York"
QUOTE: Final = ("open", "high", "low", "close", "volume")
MALFORMED_KINDS: Final = frozenset({"invalid_json", "wrong_types", "ragged"})
_GATEWAY_HTML: Final = b"<html><head><title>502 Bad Gateway</title></head><body></body></html>"
_TABLE: Final = {
    "date": pl.Date(),
    "stamp": pl.Int64(),
    **dict.fromkeys((*QUOTE, "adjclose"), pl.Float64()),
}


@dataclass
class YahooPlants:
    """Differences and faults planted in the Yahoo answers; change the fields while it runs."""

    #: (symbol, session) → {field: value as served}: ``open`` … ``volume`` or ``adjclose``,
    #: in Yahoo's split-adjusted units; ``None`` serves a null.
    changes: dict[tuple[str, dt.date], dict[str, float | None]] = field(default_factory=dict)
    omit: set[tuple[str, dt.date]] = field(default_factory=set)  # sessions left out entirely
    throttle_next: int = 0  # the next N requests answer 429 (plain text, as Yahoo does)
    fail_next: int = 0  # the next N requests answer 502 (an HTML gateway page)
    malformed: str | None = None  # one of MALFORMED_KINDS, for every answer while set


class ChartConfig(Protocol):
    """What the endpoint reads from its server's configuration."""

    symbols: tuple[str, ...]
    today: dt.date
    yahoo: YahooPlants


def _factors(dates: np.ndarray, events: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per date: the product of ``values`` of the events strictly after it."""
    out = np.ones(len(dates))
    for day, value in zip(events, values, strict=True):
        out[dates < day] *= value
    return out


def yahoo_history(
    bars: pl.DataFrame, splits: pl.DataFrame, dividends: pl.DataFrame
) -> pl.DataFrame:
    """Raw bars of one symbol → date, split-adjusted OHLCV and ``adjclose``, as Yahoo computes.

    ``adjclose`` multiplies the split-adjusted close by ``1 − dividend / previous close`` for
    every later ex-date (both in split-adjusted units). Pass every later split and dividend.
    """
    dates = bars["date"].to_numpy()
    split_days = splits["execution_date"].to_numpy()
    ratio = (splits["split_from"] / splits["split_to"]).to_numpy()
    price = _factors(dates, split_days, ratio)
    adjusted = bars.select(
        "date",
        *(pl.col(c) * pl.Series(price) for c in ("open", "high", "low", "close")),
        pl.col("volume") / pl.Series(price),
    )
    ex = dividends["ex_dividend_date"].to_numpy()
    amount = dividends["cash_amount"].to_numpy() * _factors(ex, split_days, ratio)
    closes = adjusted["close"].to_numpy()
    before = np.searchsorted(dates, ex, side="left") - 1  # the session before each ex-date
    usable = before >= 0
    factor = 1.0 - amount[usable] / closes[before[usable]]
    scale = _factors(dates, ex[usable], factor)
    return adjusted.with_columns((pl.col("close") * pl.Series(scale)).alias("adjclose"))


def _stamp(column: str) -> pl.Expr:
    """A date column → the 09:30 New York open of that day in Unix seconds."""
    return (
        (pl.col(column).cast(pl.Datetime("us")) + pl.duration(hours=9, minutes=30))
        .dt.replace_time_zone(NEW_YORK)
        .dt.epoch("s")
    )


def _date_of(seconds: int) -> dt.date:
    """The New York calendar date of a Unix instant."""
    return dt.datetime.fromtimestamp(seconds, tz=ZoneInfo(NEW_YORK)).date()


def _json(data: dict[str, Any], status: int = 200) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json")


def _error(status: int, code: str, description: str) -> Response:
    return _json(
        {"chart": {"result": None, "error": {"code": code, "description": description}}}, status
    )


class YahooChart:
    """The endpoint: ``endpoint`` is its Starlette handler, ``table`` the data it serves."""

    def __init__(self, simulator: MarketSimulator, config: ChartConfig) -> None:
        self.simulator = simulator
        self.config = config

    @property
    def plants(self) -> YahooPlants:
        """The planted differences and faults (mutable)."""
        return self.config.yahoo

    def table(self, symbol: str, start: dt.date, end: dt.date) -> pl.DataFrame:
        """Rows served for [start, end]: date, ``stamp``, OHLCV and adjclose, plants applied."""
        today = self.config.today
        lo = max(start, ORIGIN)
        bars = self.simulator.bars([symbol], lo, today) if lo <= today else pl.DataFrame()
        if bars.is_empty():
            return pl.DataFrame(schema=_TABLE)
        history = yahoo_history(
            bars,
            self.simulator.splits([symbol], ORIGIN, today),
            self.simulator.dividends([symbol], lo, today),
        ).with_columns(
            *(
                pl.col(c).cast(pl.Float32).cast(pl.Float64)
                for c in ("open", "high", "low", "close")
            ),
            pl.col("adjclose").cast(pl.Float32).cast(pl.Float64),
            pl.col("volume").round(),
        )
        rows = history.filter(pl.col("date").is_between(start, end))
        omitted = [day for s, day in self.plants.omit if s == symbol]
        rows = rows.filter(~pl.col("date").is_in(omitted))
        for (s, day), values in self.plants.changes.items():
            if s != symbol:
                continue
            hit = pl.col("date") == day
            rows = rows.with_columns(
                pl.when(hit).then(pl.lit(v, pl.Float64)).otherwise(pl.col(c)).alias(c)
                for c, v in values.items()
            )
        return rows.select("date", _stamp("date").alias("stamp"), *QUOTE, "adjclose")

    def _events(self, symbol: str, start: dt.date, end: dt.date) -> dict[str, Any]:
        today = self.config.today
        splits = self.simulator.splits([symbol], ORIGIN, today)
        last = min(end, today)
        dividends = (
            self.simulator.dividends([symbol], start, last) if start <= last else empty_dividends()
        )
        later = _factors(
            dividends["ex_dividend_date"].to_numpy(),
            splits["execution_date"].to_numpy(),
            (splits["split_from"] / splits["split_to"]).to_numpy(),
        )
        shown = splits.filter(pl.col("execution_date").is_between(start, end))
        split_rows = shown.with_columns(_stamp("execution_date").alias("stamp")).iter_rows(
            named=True
        )
        div_rows = dividends.with_columns(
            (pl.col("cash_amount") * pl.Series(later)).alias("amount"),
            _stamp("ex_dividend_date").alias("stamp"),
        ).iter_rows(named=True)
        return {
            "dividends": {
                str(r["stamp"]): {"amount": r["amount"], "date": r["stamp"]} for r in div_rows
            },
            "splits": {
                str(r["stamp"]): {
                    "date": r["stamp"],
                    "numerator": r["split_to"],
                    "denominator": r["split_from"],
                    "splitRatio": f"{r['split_to']:g}:{r['split_from']:g}",
                }
                for r in split_rows
            },
        }

    async def endpoint(self, request: Request) -> Response:
        """``GET /v8/finance/chart/{symbol}``."""
        plants = self.plants
        if plants.throttle_next > 0:
            plants.throttle_next -= 1
            return Response(b"Too Many Requests\r\n", status_code=429, media_type="text/plain")
        if plants.fail_next > 0:
            plants.fail_next -= 1
            return Response(_GATEWAY_HTML, status_code=502, media_type="text/html")
        symbol = request.path_params["symbol"]
        if symbol not in self.config.symbols:
            symbol = symbol.replace("-", ".")  # Yahoo's BRK-B is the simulator's BRK.B
        query = request.query_params
        if query.get("interval", "1d") != "1d":
            return _error(400, "Bad Request", "this server serves interval=1d only")
        try:
            period1, period2 = int(query["period1"]), int(query["period2"])
            start, end = _date_of(period1), _date_of(period2)
        except (KeyError, ValueError, OverflowError, OSError):
            return _error(400, "Bad Request", "period1 and period2 must be Unix seconds")
        if period1 > period2:
            return _error(400, "Bad Request", "Invalid input - start date cannot be after end date")
        if symbol not in self.config.symbols:
            return _error(404, "Not Found", "No data found, symbol may be delisted")
        rows = self.table(symbol, start, end).filter(
            (pl.col("stamp") >= period1) & (pl.col("stamp") < period2)
        )
        return self._answer(symbol, rows, self._events(symbol, start, end), query.get("events", ""))

    def _answer(
        self, symbol: str, rows: pl.DataFrame, events: dict[str, Any], wanted: str
    ) -> Response:
        today = self.config.today
        noon = dt.datetime(today.year, today.month, today.day, 12, tzinfo=ZoneInfo(NEW_YORK))
        offset = noon.utcoffset()
        gmtoffset = int(offset.total_seconds()) if offset is not None else 0
        result: dict[str, Any] = {
            "meta": {
                "currency": "USD",
                "symbol": symbol,
                "exchangeName": "NMS",
                "instrumentType": "EQUITY",
                "gmtoffset": gmtoffset,
                "timezone": "EST" if gmtoffset == -18_000 else "EDT",
                "exchangeTimezoneName": NEW_YORK,
                "dataGranularity": "1d",
            },
            "indicators": {"quote": [{}], "adjclose": [{}]},
        }
        if rows.height:
            result["timestamp"] = rows["stamp"].to_list()
            quote = {c: rows[c].to_list() for c in QUOTE}
            quote["volume"] = rows["volume"].cast(pl.Int64).to_list()
            result["indicators"] = {
                "quote": [quote],
                "adjclose": [{"adjclose": rows["adjclose"].to_list()}],
            }
        chosen = {
            k: v
            for k, v in events.items()
            if v
            and (("div" in wanted and k == "dividends") or ("split" in wanted and k == "splits"))
        }
        if chosen:
            result["events"] = chosen
        kind = self.plants.malformed
        if kind == "invalid_json":
            return Response(b"<html>oops</html>", media_type="application/json")
        if kind in ("wrong_types", "ragged") and rows.height:
            close = result["indicators"]["quote"][0]["close"]
            if kind == "wrong_types":
                close[0] = "n/a"
            else:
                close.pop()
        return _json({"chart": {"result": [result], "error": None}})
