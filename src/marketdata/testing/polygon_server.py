"""A local server that behaves like Polygon.io / Massive, for tests and offline demos.

It serves the endpoints marketdata's client uses, in the vendor's JSON shapes (``status``,
``request_id``, ``resultsCount``, ``next_url`` pagination, error bodies), from the market
simulator's data, and can be told to misbehave the ways the real API does: 429s, plan windows,
5xx (including HTML gateway pages), slow answers, malformed JSON, small pages, silent
truncation and bad bars. Every request is recorded so tests can assert on what was sent.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import math
import random
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final
from zoneinfo import ZoneInfo

import polars as pl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from marketdata.bars import BAR_SCHEMA
from marketdata.providers.simulator import DEFAULT_SYMBOLS, MarketSimulator
from marketdata.testing.yahoo_server import YahooChart, YahooPlants

NEW_YORK: Final = ZoneInfo("America/New_York")
ORIGIN: Final = dt.date(2000, 1, 1)
BAD_BAR_KINDS: Final = frozenset(
    {
        "high_below_low",
        "negative_price",
        "nan_price",
        "zero_volume",
        "duplicate_session",
        "missing_session",
    }
)
MALFORMED_KINDS: Final = frozenset(
    {"invalid_json", "truncated_json", "wrong_types", "missing_field", "bad_status"}
)
_NOT_ENTITLED = (
    "You are not entitled to this data. Please upgrade your plan at https://polygon.io/pricing"
)
_TIMEFRAME = (
    "Your plan doesn't include this data timeframe. Please upgrade your plan at "
    "https://polygon.io/pricing"
)
_RATE_LIMITED = (
    "You've exceeded the maximum requests per minute, please wait or upgrade your "
    "subscription to continue. https://polygon.io/pricing"
)
_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


@dataclass
class Faults:
    """Switchable misbehaviour; change the fields while the server runs."""

    rate_limit: int | None = None  # calls allowed per ``rate_window`` seconds, then 429
    rate_window: float = 60.0
    retry_after: float | None = None  # seconds sent in Retry-After on 429 (None: no header)
    throttle_next: int = 0  # the next N data requests answer 429
    plan_start: dt.date | None = None  # 403 "timeframe" for dates before this
    not_entitled: bool = False  # 403 "not entitled" for every data request
    error_rate: float = 0.0  # share of requests answered with a 5xx
    fail_next: int = 0  # the next N data requests answer 502 (an HTML gateway page)
    slow_seconds: float = 0.0  # delay before every answer
    malformed: str | None = None  # one of MALFORMED_KINDS for successful answers …
    malformed_count: int | None = None  # … every one (None) or only the next N
    page_size: int | None = None  # results per page (forces pagination)
    silent_truncation: bool = False  # cut at ``limit`` with no next_url, as the vendor can
    bad_bars: dict[str, list[tuple[dt.date, str]]] = field(default_factory=dict)
    v1_reference: bool = True  # False: /stocks/v1/* answer 404 (older deployments)
    status_text: str = "OK"  # "DELAYED" is also a success
    next_url_host: str | None = None  # host in next_url (None: this server's own)
    hold_after: int | None = None  # data requests after the first N wait until ``release``
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class FakePolygonConfig:
    """What the server holds and who may call it."""

    api_key: str | None = None  # None: any non-empty key is accepted
    seed: int = 0
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    today: dt.date = field(default_factory=lambda: dt.date(2026, 11, 20))
    faults: Faults = field(default_factory=Faults)
    yahoo: YahooPlants = field(default_factory=YahooPlants)  # plants in the Yahoo endpoint


@dataclass(slots=True)
class RecordedRequest:
    """One request as the server saw it (recorded on arrival; status set before answering)."""

    at: float  # time.monotonic() on arrival
    method: str
    path: str
    query: str
    url: str
    authorization: str | None
    status: int = 0


def _json(
    data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps(data, allow_nan=True, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    """The vendor's error body for 400/401/429/5xx: ``{"status": "ERROR", "error": …}``."""
    return _json({"status": "ERROR", "request_id": _request_id(), "error": text}, status, headers)


def _request_id() -> str:
    return secrets.token_hex(16)


def _parse_day(value: str) -> dt.date:
    """A path date: ``YYYY-MM-DD`` or Unix milliseconds (New York date)."""
    if value.isdigit():
        instant = dt.datetime.fromtimestamp(int(value) / 1000, tz=dt.UTC)
        return instant.astimezone(NEW_YORK).date()
    return dt.date.fromisoformat(value)


def _ms(day: dt.date, hour: int) -> int:
    return int(dt.datetime(day.year, day.month, day.day, hour, tzinfo=NEW_YORK).timestamp() * 1000)


def _encode_cursor(params: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(params).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, str]:
    padded = cursor + "=" * (-len(cursor) % 4)
    return dict(json.loads(base64.urlsafe_b64decode(padded)))


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
        self.app.add_middleware(_Recorder, owner=self)

    def wait_for_requests(self, count: int, *, timeout: float = 60.0) -> bool:
        """Block until ``count`` requests have arrived (False on timeout)."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.requests) >= count, timeout=timeout)

    def _notify(self) -> None:
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
            return _error(401, "API Key was not provided")
        if self.config.api_key is not None and key != self.config.api_key:
            return _error(401, "Unknown API Key")
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
            return _error(429, _RATE_LIMITED, headers)
        if faults.fail_next > 0:
            faults.fail_next -= 1
            return Response(_GATEWAY_HTML, status_code=502, media_type="text/html")
        if faults.error_rate and self._random.random() < faults.error_rate:
            status = self._random.choice([500, 502, 503, 504])
            if status == 502:
                return Response(_GATEWAY_HTML, status_code=502, media_type="text/html")
            return _error(status, "Internal error")
        if faults.not_entitled:
            return _json(
                {"status": "NOT_AUTHORIZED", "request_id": _request_id(), "message": _NOT_ENTITLED},
                403,
            )
        for day in days:
            if day > self.config.today or (faults.plan_start and day < faults.plan_start):
                return _json(
                    {
                        "status": "NOT_AUTHORIZED",
                        "request_id": _request_id(),
                        "message": _TIMEFRAME,
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

    def _finish(self, data: dict[str, Any]) -> Response:
        """Apply malformed-answer faults to a successful body."""
        faults = self.faults
        kind = faults.malformed
        if kind is not None and faults.malformed_count is not None:
            faults.malformed_count -= 1
            if faults.malformed_count <= 0:
                faults.malformed, faults.malformed_count = None, None
        if kind is None:
            return _json(data)
        if kind == "invalid_json":
            return Response(b"<html>oops</html>", media_type="application/json")
        if kind == "truncated_json":
            body = json.dumps(data).encode()
            return Response(body[: max(1, len(body) // 2)], media_type="application/json")
        if kind == "bad_status":
            return _json({**data, "status": "WEIRD"})
        results = data.get("results") or []
        if results and kind == "wrong_types":
            results[0] = {**results[0], "o": "not-a-number"}
        if results and kind == "missing_field":
            results[0] = {k: v for k, v in results[0].items() if k != "c"}
        return _json(data)

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
        return self._inject(self.simulator.bars(list(symbols), lo, hi))

    def _inject(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Plant the configured bad bars."""
        for symbol, plants in self.faults.bad_bars.items():
            for day, kind in plants:
                hit = (pl.col("symbol") == symbol) & (pl.col("date") == day)
                if kind == "high_below_low":
                    frame = frame.with_columns(
                        pl.when(hit).then(pl.col("low")).otherwise(pl.col("high")).alias("high"),
                        pl.when(hit).then(pl.col("high")).otherwise(pl.col("low")).alias("low"),
                    )
                elif kind == "negative_price":
                    frame = frame.with_columns(
                        pl.when(hit)
                        .then(-pl.col("close"))
                        .otherwise(pl.col("close"))
                        .alias("close")
                    )
                elif kind == "nan_price":
                    frame = frame.with_columns(
                        pl.when(hit).then(float("nan")).otherwise(pl.col("open")).alias("open")
                    )
                elif kind == "zero_volume":
                    frame = frame.with_columns(
                        pl.when(hit).then(0.0).otherwise(pl.col("volume")).alias("volume")
                    )
                elif kind == "duplicate_session":
                    frame = pl.concat([frame, frame.filter(hit)]).sort("symbol", "date")
                elif kind == "missing_session":
                    frame = frame.filter(~hit)
        return frame

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

    @staticmethod
    def _results(frame: pl.DataFrame, *, hour: int, grouped: bool) -> list[dict[str, Any]]:
        rows = []
        for r in frame.iter_rows(named=True):
            item: dict[str, Any] = {
                "v": r["volume"],
                "vw": r["vwap"],
                "o": r["open"],
                "c": r["close"],
                "h": r["high"],
                "l": r["low"],
                "t": _ms(r["date"], hour),
                "n": r["transactions"],
            }
            if grouped:
                item = {"T": r["symbol"], **item}
            if item["vw"] is None or (isinstance(item["vw"], float) and math.isnan(item["vw"])):
                item.pop("vw")
            if item["n"] is None:
                item.pop("n")
            rows.append(item)
        return rows

    async def _range(self, request: Request) -> Response:
        p = request.path_params
        query = dict(request.query_params)
        if "cursor" in query:
            query = {**_decode_cursor(query.pop("cursor")), **query}
        try:
            start, end = _parse_day(p["start"]), _parse_day(p["end"])
        except ValueError:
            return _error(400, "Could not parse the date")
        if p["multiplier"] != "1" or p["timespan"] != "day":
            served = f"{p['multiplier']}/{p['timespan']}"
            return _error(400, f"this server serves 1/day aggregates only, not {served}")
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
            "request_id": _request_id(),
        }
        if shown.height:
            data["results"] = self._results(shown, hour=0, grouped=False)
            data["count"] = shown.height
        more = frame.height > page
        if more and self.faults.silent_truncation and page == limit:
            data["queryCount"] = limit
            more = False
        if more:
            following = frame.row(page, named=True)["date"]
            cursor = _encode_cursor(
                {
                    "adjusted": str(adjusted).lower(),
                    "sort": query.get("sort", "asc"),
                    "limit": str(limit),
                }
            )
            path = f"/v2/aggs/ticker/{ticker}/range/1/day/{_ms(following, 0)}/{p['end']}"
            data["next_url"] = self._next_url(request, path, {"cursor": cursor})
        return self._finish(data)

    async def _grouped(self, request: Request) -> Response:
        try:
            day = dt.date.fromisoformat(request.path_params["day"])
        except ValueError:
            return _error(400, "Could not parse the date")
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
            "request_id": _request_id(),
        }
        if frame.height:
            data["results"] = self._results(frame, hour=16, grouped=True)
            data["count"] = frame.height
        return self._finish(data)

    # -- corporate actions ---------------------------------------------------------------------

    async def _reference(self, request: Request, kind: str, version: str) -> Response:
        if version == "v1" and not self.faults.v1_reference:
            return _json(
                {"status": "NOT_FOUND", "request_id": _request_id(), "message": "Not found"}, 404
            )
        query = dict(request.query_params)
        offset = 0
        if "cursor" in query:
            decoded = _decode_cursor(query.pop("cursor"))
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
        results = [self._reference_row(r, kind, version) for r in page.iter_rows(named=True)]
        data: dict[str, Any] = {"status": "OK", "request_id": _request_id()}
        if results:
            data["results"] = results
        if offset + limit < frame.height:
            cursor = _encode_cursor({**query, "offset": str(offset + limit)})
            data["next_url"] = self._next_url(request, request.url.path, {"cursor": cursor})
        return self._finish(data)

    @staticmethod
    def _reference_row(row: dict[str, Any], kind: str, version: str) -> dict[str, Any]:
        iso = {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in row.items()}
        iso["ticker"] = iso.pop("symbol")
        if kind == "splits":
            if version == "v1":
                iso["adjustment_type"] = (
                    "forward_split" if row["split_to"] > row["split_from"] else "reverse_split"
                )
                iso["id"] = f"S{abs(hash((iso['ticker'], iso['execution_date']))):x}"
            return iso
        if version == "v1":
            iso["distribution_type"] = (
                "recurring" if iso.pop("dividend_type") == "CD" else "special"
            )
            iso["currency"] = "USD"
            iso["id"] = f"D{abs(hash((iso['ticker'], iso['ex_dividend_date']))):x}"
        return {k: v for k, v in iso.items() if v is not None}

    async def _splits_v1(self, request: Request) -> Response:
        return await self._reference(request, "splits", "v1")

    async def _splits_v3(self, request: Request) -> Response:
        return await self._reference(request, "splits", "v3")

    async def _dividends_v1(self, request: Request) -> Response:
        return await self._reference(request, "dividends", "v1")

    async def _dividends_v3(self, request: Request) -> Response:
        return await self._reference(request, "dividends", "v3")


class _Recorder:
    """ASGI middleware that appends every request and its status to ``owner.requests``."""

    def __init__(self, app: Any, owner: FakePolygon) -> None:
        self.app = app
        self.owner = owner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        query = scope.get("query_string", b"").decode()
        path = scope.get("path", "")
        record = RecordedRequest(
            at=time.monotonic(),
            method=scope.get("method", "GET"),
            path=path,
            query=query,
            url=f"{path}?{query}" if query else path,
            authorization=headers.get(b"authorization", b"").decode() or None,
        )
        self.owner.requests.append(record)
        self.owner._notify()  # the middleware is part of the server

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                record.status = int(message["status"])
            await send(message)

        await self.app(scope, receive, capture)
