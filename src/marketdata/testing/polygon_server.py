"""A local server that behaves like Polygon.io / Massive, for tests and offline demos.

It serves the endpoints marketdata's client uses, in the vendor's JSON shapes (``status``,
``request_id``, ``resultsCount``, ``next_url`` pagination, error bodies), from the market
simulator's data, and can be told to misbehave the ways the real API does: 429s, plan windows,
5xx (including HTML gateway pages), slow answers, malformed JSON, small pages, silent
truncation and bad bars. Every request is recorded so tests can assert on what was sent.

This module holds the server, its routes and its request-level checks; the response shapes
are built in :mod:`marketdata.testing.polygon_wire`, the switchable faults and the data-level
ones live in :mod:`marketdata.testing.polygon_faults`, and requests are recorded by
:mod:`marketdata.testing.polygon_recording` (their public names are re-exported here).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

import polars as pl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from marketdata.bars import BAR_SCHEMA
from marketdata.providers.simulator import DEFAULT_SYMBOLS, MarketSimulator
from marketdata.testing.polygon_faults import (
    BAD_BAR_KINDS,
    MALFORMED_KINDS,
    Faults,
    plant_bad_bars,
    success_response,
)
from marketdata.testing.polygon_recording import RecordedRequest, RequestRecorder
from marketdata.testing.polygon_wire import (
    GATEWAY_HTML,
    NEW_YORK,
    NOT_ENTITLED,
    RATE_LIMITED,
    TIMEFRAME,
    bar_results,
    decode_cursor,
    encode_cursor,
    error,
    json_response,
    ms,
    parse_day,
    reference_row,
    request_id,
)
from marketdata.testing.yahoo_server import YahooChart, YahooPlants

#: Re-exported: tests and ``marketdata fake-polygon`` import the server's vocabulary from here.
__all__ = [
    "BAD_BAR_KINDS",
    "MALFORMED_KINDS",
    "NEW_YORK",
    "ORIGIN",
    "FakePolygon",
    "FakePolygonConfig",
    "Faults",
    "RecordedRequest",
]

ORIGIN: Final = dt.date(2000, 1, 1)


@dataclass
class FakePolygonConfig:
    """What the server holds and who may call it."""

    api_key: str | None = None  # None: any non-empty key is accepted
    seed: int = 0
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    today: dt.date = field(default_factory=lambda: dt.date(2026, 11, 20))
    faults: Faults = field(default_factory=Faults)
    yahoo: YahooPlants = field(default_factory=YahooPlants)  # plants in the Yahoo endpoint


class FakePolygon:
    """The server: ``FakePolygon(config).app`` is an ASGI app; ``requests`` records calls."""

    def __init__(self, config: FakePolygonConfig | None = None) -> None:
        self.config = config or FakePolygonConfig()
        self.simulator = MarketSimulator(seed=self.config.seed)
        self.requests: list[RecordedRequest] = []
        self._arrived = threading.Condition()
        self._data_requests = 0
        self._recent: deque[float] = deque()
        self._random = random.Random(self.config.seed)  # noqa: S311  # fault injection, not crypto
        self.yahoo = YahooChart(self.simulator, self.config)  # /v8/finance/chart, same market
        self.app = Starlette(
            routes=[
                Route(
                    "/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{start}/{end}",
                    self._range,
                ),
                Route("/v2/aggs/grouped/locale/us/market/stocks/{day}", self._grouped),
                Route("/v3/reference/splits", self._splits_v3),
                Route("/v3/reference/dividends", self._dividends_v3),
                Route("/stocks/v1/splits", self._splits_v1),
                Route("/stocks/v1/dividends", self._dividends_v1),
                Route("/v8/finance/chart/{symbol}", self.yahoo.endpoint),
            ]
        )
        self.app.add_middleware(RequestRecorder, on_arrival=self._record)

    def wait_for_requests(self, count: int, *, timeout: float = 60.0) -> bool:
        """Block until ``count`` requests have arrived (False on timeout)."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.requests) >= count, timeout=timeout)

    def _record(self, request: RecordedRequest) -> None:
        """Keep a request that arrived, and wake :meth:`wait_for_requests`."""
        self.requests.append(request)
        with self._arrived:
            self._arrived.notify_all()

    @property
    def faults(self) -> Faults:
        """The switchable faults (mutable)."""
        return self.config.faults

    # -- shared checks ---------------------------------------------------------------------

    async def _gate(self, request: Request, *, days: tuple[dt.date, ...] = ()) -> Response | None:
        """Auth, rate limit, injected faults and plan checks, in the vendor's order."""
        key = None
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        key = key or request.query_params.get("apiKey")
        if not key:
            return error(401, "API Key was not provided")
        if self.config.api_key is not None and key != self.config.api_key:
            return error(401, "Unknown API Key")
        faults = self.faults
        self._data_requests += 1
        if faults.hold_after is not None and self._data_requests > faults.hold_after:
            await asyncio.to_thread(faults.release.wait)  # until the test releases it
        if faults.slow_seconds:
            await asyncio.sleep(faults.slow_seconds)
        if self._throttled(faults):
            headers = (
                {"Retry-After": f"{faults.retry_after:g}"}
                if faults.retry_after is not None
                else None
            )
            return error(429, RATE_LIMITED, headers)
        if faults.fail_next > 0:
            faults.fail_next -= 1
            return Response(GATEWAY_HTML, status_code=502, media_type="text/html")
        if faults.error_rate and self._random.random() < faults.error_rate:
            status = self._random.choice([500, 502, 503, 504])
            if status == 502:
                return Response(GATEWAY_HTML, status_code=502, media_type="text/html")
            return error(status, "Internal error")
        if faults.not_entitled:
            return json_response(
                {"status": "NOT_AUTHORIZED", "request_id": request_id(), "message": NOT_ENTITLED},
                403,
            )
        for day in days:
            if day > self.config.today or (faults.plan_start and day < faults.plan_start):
                return json_response(
                    {
                        "status": "NOT_AUTHORIZED",
                        "request_id": request_id(),
                        "message": TIMEFRAME,
                    },
                    403,
                )
        return None

    def _throttled(self, faults: Faults) -> bool:
        if faults.throttle_next > 0:
            faults.throttle_next -= 1
            return True
        if faults.rate_limit is None:
            return False
        now = time.monotonic()
        while self._recent and self._recent[0] <= now - faults.rate_window:
            self._recent.popleft()
        if len(self._recent) >= faults.rate_limit:
            return True
        self._recent.append(now)
        return False

    def _next_url(self, request: Request, path: str, params: dict[str, str]) -> str:
        host = self.faults.next_url_host or str(request.base_url).rstrip("/")
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"{host}{path}?{query}"

    # -- bars ------------------------------------------------------------------------------

    def _bars(
        self, symbols: tuple[str, ...] | list[str], start: dt.date, end: dt.date
    ) -> pl.DataFrame:
        lo, hi = max(start, ORIGIN), min(end, self.config.today)
        if lo > hi:
            return pl.DataFrame(schema=BAR_SCHEMA)
        return plant_bad_bars(self.simulator.bars(list(symbols), lo, hi), self.faults.bad_bars)

    def _adjust(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Split-adjust as the vendor's ``adjusted=true`` does (splits only, no dividends)."""
        if frame.is_empty():
            return frame
        splits = self.simulator.splits(
            frame["symbol"].unique().to_list(), ORIGIN, self.config.today
        )
        factor = pl.lit(1.0)
        for symbol, day, split_from, split_to in splits.iter_rows():
            before = (pl.col("symbol") == symbol) & (pl.col("date") < day)
            factor = factor * pl.when(before).then(split_from / split_to).otherwise(1.0)
        return frame.with_columns(
            *(pl.col(c) * factor for c in ("open", "high", "low", "close", "vwap")),
            pl.col("volume") / factor,
        )

    async def _range(self, request: Request) -> Response:
        p = request.path_params
        query = dict(request.query_params)
        if "cursor" in query:
            query = {**decode_cursor(query.pop("cursor")), **query}
        try:
            start, end = parse_day(p["start"]), parse_day(p["end"])
        except ValueError:
            return error(400, "Could not parse the date")
        if p["multiplier"] != "1" or p["timespan"] != "day":
            served = f"{p['multiplier']}/{p['timespan']}"
            return error(400, f"this server serves 1/day aggregates only, not {served}")
        if blocked := await self._gate(request, days=(start, end)):
            return blocked
        ticker = p["ticker"]
        adjusted = query.get("adjusted", "true").lower() != "false"
        limit = min(int(query.get("limit", "5000")), 50_000)
        frame = (
            self._bars([ticker], start, end) if ticker in self.config.symbols else pl.DataFrame()
        )
        if adjusted and not frame.is_empty():
            frame = self._adjust(frame)
        if query.get("sort", "asc") == "desc" and not frame.is_empty():
            frame = frame.reverse()
        page = min(limit, self.faults.page_size or limit)
        shown = frame.head(page) if not frame.is_empty() else frame
        data: dict[str, Any] = {
            "ticker": ticker,
            "queryCount": shown.height,
            "resultsCount": shown.height,
            "adjusted": adjusted,
            "status": self.faults.status_text,
            "request_id": request_id(),
        }
        if shown.height:
            data["results"] = bar_results(shown, hour=0, grouped=False)
            data["count"] = shown.height
        more = frame.height > page
        if more and self.faults.silent_truncation and page == limit:
            data["queryCount"] = limit
            more = False
        if more:
            following = frame.row(page, named=True)["date"]
            cursor = encode_cursor(
                {
                    "adjusted": str(adjusted).lower(),
                    "sort": query.get("sort", "asc"),
                    "limit": str(limit),
                }
            )
            path = f"/v2/aggs/ticker/{ticker}/range/1/day/{ms(following, 0)}/{p['end']}"
            data["next_url"] = self._next_url(request, path, {"cursor": cursor})
        return success_response(self.faults, data)

    async def _grouped(self, request: Request) -> Response:
        try:
            day = dt.date.fromisoformat(request.path_params["day"])
        except ValueError:
            return error(400, "Could not parse the date")
        if blocked := await self._gate(request, days=(day,)):
            return blocked
        adjusted = request.query_params.get("adjusted", "true").lower() != "false"
        frame = self._bars(self.config.symbols, day, day)
        if adjusted:
            frame = self._adjust(frame)
        data: dict[str, Any] = {
            "queryCount": frame.height,
            "resultsCount": frame.height,
            "adjusted": adjusted,
            "status": self.faults.status_text,
            "request_id": request_id(),
        }
        if frame.height:
            data["results"] = bar_results(frame, hour=16, grouped=True)
            data["count"] = frame.height
        return success_response(self.faults, data)

    # -- corporate actions ---------------------------------------------------------------------

    async def _reference(self, request: Request, kind: str, version: str) -> Response:
        if version == "v1" and not self.faults.v1_reference:
            return json_response(
                {"status": "NOT_FOUND", "request_id": request_id(), "message": "Not found"}, 404
            )
        query = dict(request.query_params)
        offset = 0
        if "cursor" in query:
            decoded = decode_cursor(query.pop("cursor"))
            offset = int(decoded.pop("offset", "0"))
            query = {**decoded, **query}
        if blocked := await self._gate(request):
            return blocked
        date_field = "execution_date" if kind == "splits" else "ex_dividend_date"
        symbols = list(self.config.symbols)
        if "ticker" in query:
            symbols = [s for s in symbols if s == query["ticker"]]
        if "ticker.any_of" in query:
            wanted = set(query["ticker.any_of"].split(","))
            symbols = [s for s in symbols if s in wanted]
        lo, hi = ORIGIN, self.config.today
        frame = (self.simulator.splits if kind == "splits" else self.simulator.dividends)(
            symbols, lo, hi
        )
        for op, test in (("gte", "ge"), ("gt", "gt"), ("lte", "le"), ("lt", "lt")):
            if value := query.get(f"{date_field}.{op}"):
                bound = dt.date.fromisoformat(value)
                frame = frame.filter(getattr(pl.col(date_field), f"__{test}__")(bound))
        if value := query.get(date_field):
            frame = frame.filter(pl.col(date_field) == dt.date.fromisoformat(value))
        frame = frame.sort(date_field, descending=query.get("order", "desc") == "desc")
        limit = min(int(query.get("limit", "10")), 1000)
        page = frame.slice(offset, limit)
        results = [reference_row(r, kind, version) for r in page.iter_rows(named=True)]
        data: dict[str, Any] = {"status": "OK", "request_id": request_id()}
        if results:
            data["results"] = results
        if offset + limit < frame.height:
            cursor = encode_cursor({**query, "offset": str(offset + limit)})
            data["next_url"] = self._next_url(request, request.url.path, {"cursor": cursor})
        return success_response(self.faults, data)

    async def _splits_v1(self, request: Request) -> Response:
        return await self._reference(request, "splits", "v1")

    async def _splits_v3(self, request: Request) -> Response:
        return await self._reference(request, "splits", "v3")

    async def _dividends_v1(self, request: Request) -> Response:
        return await self._reference(request, "dividends", "v1")

    async def _dividends_v3(self, request: Request) -> Response:
        return await self._reference(request, "dividends", "v3")
