"""The Polygon.io / Massive REST client: daily bars, grouped daily, splits, dividends.

I/O only; what responses mean lives in :mod:`marketdata.providers.polygon_parse`. Every request

- carries the key as ``Authorization: Bearer`` (never in a URL, a log line or an error),
- waits for its turn at the shared :class:`~marketdata.providers.ratelimit.RateLimiter`,
- is retried with exponential backoff and jitter (stamina) on 429 (honouring ``Retry-After``),
  5xx, timeouts and connection errors, within a total deadline; other 4xx are final,
- follows ``next_url`` by its path and query only, against our own base URL.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import polars as pl
import stamina

from marketdata.bars import BAR_SCHEMA, DIVIDEND_SCHEMA, SPLIT_SCHEMA
from marketdata.errors import (
    AuthenticationFailed,
    MalformedResponse,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    UpstreamNotFound,
)
from marketdata.providers import polygon_parse as parse
from marketdata.providers._http import get_json
from marketdata.providers.ratelimit import RateLimiter

log = logging.getLogger(__name__)

#: Max base bars per aggregates page (the vendor's maximum; the default 5000 truncates).
AGGS_LIMIT: Final = 50_000
#: Page size for splits and dividends.
REFERENCE_LIMIT: Final = 1_000
#: Safety stop for runaway pagination.
MAX_PAGES: Final = 10_000


class PolygonClient:
    """Async client for the endpoints marketdata uses; one per process, shared by all tasks."""

    name = "polygon"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = "https://api.massive.com",
        calls_per_minute: float = 5,
        timeout: float = 30.0,
        retry_deadline: float = 300.0,
        retry_attempts: int = 10,
        wait_initial: float = 1.0,
        wait_max: float = 60.0,
        aggs_limit: int = AGGS_LIMIT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not api_key:
            msg = "no API key: set POLYGON_API_KEY (or MASSIVE_API_KEY)"
            raise AuthenticationFailed(msg)
        self.base_url = base_url.rstrip("/")
        self.limiter = RateLimiter(calls_per_minute)
        self.aggs_limit = aggs_limit
        self.calls = 0
        self._retry = {
            "timeout": retry_deadline,
            "attempts": retry_attempts,
            "wait_initial": wait_initial,
            "wait_max": wait_max,
            "wait_jitter": wait_initial,
        }
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"PolygonClient(base_url={self.base_url!r}, calls={self.calls})"

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # -- transport ---------------------------------------------------------------------

    def _retry_hook(self, exc: Exception) -> bool | float:
        """Retry transient failures; a 429's Retry-After sets the wait and pauses everyone."""
        if isinstance(exc, RateLimited):
            if exc.retry_after is not None:
                self.limiter.pause(exc.retry_after)
                return exc.retry_after
            return True
        return isinstance(exc, ProviderUnavailable)

    async def _get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """GET ``path`` with retries; the decoded JSON object of a 200 answer."""
        async for attempt in stamina.retry_context(on=self._retry_hook, **self._retry):  # type: ignore[arg-type]
            with attempt:
                return await self._get_once(path, params)
        raise AssertionError("unreachable")  # pragma: no cover  # stamina raises or returns

    async def _get_once(self, path: str, params: dict[str, str] | None) -> dict[str, Any]:
        await self.limiter.acquire()
        self.calls += 1
        return await get_json(
            self._http, path, params, error_for=parse.error_for, vendor="the provider"
        )

    async def _pages(self, path: str, params: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
        """Every page of a paginated endpoint: (path, data) pairs, following ``next_url``."""
        pages = []
        next_path: str | None = path
        next_params: dict[str, str] | None = params
        while next_path is not None:
            data = await self._get(next_path, next_params)
            pages.append((next_path, data))
            if len(pages) > MAX_PAGES:
                raise MalformedResponse("pagination does not end", path=path)
            next_path, next_params = _follow(data.get("next_url"), path=next_path)
        return pages

    # -- endpoints -----------------------------------------------------------------------

    async def daily_bars(self, symbol: str, start: dt.date, end: dt.date) -> pl.DataFrame:
        """Raw daily bars of ``symbol`` for [start, end], every page, sorted by date.

        If the vendor truncated the range (a page read the maximum of base bars and no
        ``next_url`` follows), the rest is requested again from the day after the last bar.
        """
        frames = []
        begin = start
        while begin <= end:
            path = f"/v2/aggs/ticker/{quote(symbol, safe='')}/range/1/day/{begin}/{end}"
            params = {"adjusted": "false", "sort": "asc", "limit": str(self.aggs_limit)}
            truncated = False
            for page_path, data in await self._pages(path, params):
                if data.get("adjusted") not in (None, False):
                    raise MalformedResponse(
                        "asked for adjusted=false, got adjusted bars", path=page_path
                    )
                frames.append(
                    parse.aggregates(data, endpoint="range", path=page_path, symbol=symbol)
                )
                truncated = _query_count(data) >= self.aggs_limit and not data.get("next_url")
            if not truncated or not frames or frames[-1].is_empty():
                break
            last = frames[-1]["date"].max()
            assert isinstance(last, dt.date)  # a non-empty date column
            begin = last + dt.timedelta(days=1)
        if not frames:
            return pl.DataFrame(schema=BAR_SCHEMA)
        # As sent: a duplicated or odd bar is validation's to flag, not the client's to hide.
        bars = pl.concat(frames)
        return bars.filter(pl.col("date").is_between(start, end))

    async def grouped_daily(self, session: dt.date) -> pl.DataFrame:
        """Raw bars of every US stock for one session (one call, no pagination)."""
        path = f"/v2/aggs/grouped/locale/us/market/stocks/{session}"
        data = await self._get(path, {"adjusted": "false"})
        if data.get("adjusted") not in (None, False):
            raise MalformedResponse("asked for adjusted=false, got adjusted bars", path=path)
        return parse.aggregates(data, endpoint="grouped", path=path)

    async def splits(
        self, symbols: Sequence[str] | None = None, *, since: dt.date | None = None
    ) -> pl.DataFrame:
        """Splits from ``/stocks/v1/splits``, or the deprecated ``/v3/reference/splits``."""
        return await self._reference("splits", "execution_date", symbols, since)

    async def dividends(
        self, symbols: Sequence[str] | None = None, *, since: dt.date | None = None
    ) -> pl.DataFrame:
        """Dividends from ``/stocks/v1/dividends``, or the deprecated v3 endpoint."""
        return await self._reference("dividends", "ex_dividend_date", symbols, since)

    async def _reference(
        self, kind: str, date_field: str, symbols: Sequence[str] | None, since: dt.date | None
    ) -> pl.DataFrame:
        parser = parse.splits if kind == "splits" else parse.dividends
        schema = SPLIT_SCHEMA if kind == "splits" else DIVIDEND_SCHEMA
        params = {"limit": str(REFERENCE_LIMIT)}
        if since is not None:
            params[f"{date_field}.gte"] = since.isoformat()
        try:
            v1 = dict(params)
            if symbols:
                v1["ticker.any_of"] = ",".join(symbols)
            pages = await self._pages(f"/stocks/v1/{kind}", v1)
        except UpstreamNotFound:
            log.info("/stocks/v1/%s not available, using /v3/reference/%s", kind, kind)
            pages = []
            targets: list[str | None] = list(symbols) if symbols else [None]
            for symbol in targets:
                v3 = dict(params, **({"ticker": symbol} if symbol else {}))
                pages += await self._pages(f"/v3/reference/{kind}", v3)
        frames = [parser(data, path=p) for p, data in pages]
        frame = pl.concat(frames) if frames else pl.DataFrame(schema=schema)
        if symbols:
            frame = frame.filter(pl.col("symbol").is_in(list(symbols)))
        return frame.unique(keep="last").sort("symbol", date_field)


def _query_count(data: dict[str, Any]) -> int:
    value = data.get("queryCount")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _follow(next_url: object, *, path: str) -> tuple[str | None, dict[str, str] | None]:
    """Path and query of a ``next_url`` (its host is ignored: our base URL and key stay put)."""
    if next_url is None or next_url == "":
        return None, None
    if not isinstance(next_url, str):
        raise MalformedResponse("next_url is not a string", path=path)
    parts = urlsplit(next_url)
    if not parts.path.startswith("/"):
        raise MalformedResponse(f"next_url has no path: {next_url[:80]!r}", path=path)
    query = {
        k: v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() != "apikey"
    }
    return parts.path, query


__all__ = ["PolygonClient", "ProviderError"]
