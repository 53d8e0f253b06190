"""The Yahoo Finance chart client: a second, independent source of daily bars to check ours against.

I/O only; what responses mean lives in :mod:`marketdata.providers.yahoo_parse`. Every request

- goes to ``GET /v8/finance/chart/{symbol}`` with ``period1``/``period2`` in Unix seconds,
- carries a browser-like ``User-Agent`` (Yahoo answers 429 to a library's default one),
- is retried with exponential backoff and jitter (stamina) on 429 (honouring ``Retry-After``),
  5xx, timeouts and connection errors, within a total deadline; other 4xx are final.

Yahoo's OHLC and volume are **split-adjusted** (not dividend-adjusted): compare them with our
bars read with ``adjusted="splits"``. Yahoo needs no key, so there is nothing secret to guard.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
import polars as pl
import stamina

from marketdata.errors import ProviderUnavailable, RateLimited
from marketdata.providers import yahoo_parse as parse
from marketdata.providers._http import get_json

#: Sent with every request; configurable per client.
USER_AGENT: Final = "Mozilla/5.0 (compatible; marketdata)"
_NEW_YORK: Final = ZoneInfo(parse.EXCHANGE_TZ)


def period_bounds(start: dt.date, end: dt.date) -> tuple[int, int]:
    """``period1``/``period2`` for the sessions [start, end]: New York midnights, in seconds.

    ``period2`` is the midnight after ``end``, so the 09:30 bar of ``end`` is inside.
    """
    if start > end:
        msg = f"start {start} is after end {end}"
        raise ValueError(msg)

    def midnight(day: dt.date) -> int:
        return int(dt.datetime(day.year, day.month, day.day, tzinfo=_NEW_YORK).timestamp())

    return midnight(start), midnight(end + dt.timedelta(days=1))


class YahooClient:
    """Async client for Yahoo's chart endpoint; one per process, shared by all tasks."""

    name = "yahoo"

    def __init__(
        self,
        *,
        base_url: str = "https://query2.finance.yahoo.com",
        timeout: float = 30.0,
        retry_deadline: float = 120.0,
        retry_attempts: int = 8,
        wait_initial: float = 1.0,
        wait_max: float = 30.0,
        user_agent: str = USER_AGENT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
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
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"YahooClient(base_url={self.base_url!r}, calls={self.calls})"

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # -- transport ---------------------------------------------------------------------

    @staticmethod
    def _retry_hook(exc: Exception) -> bool | float:
        """Retry transient failures; a 429's Retry-After sets the wait."""
        if isinstance(exc, RateLimited):
            return exc.retry_after if exc.retry_after is not None else True
        return isinstance(exc, ProviderUnavailable)

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        """GET ``path`` with retries; the decoded JSON object of a 200 answer."""
        async for attempt in stamina.retry_context(on=self._retry_hook, **self._retry):  # type: ignore[arg-type]
            with attempt:
                return await self._get_once(path, params)
        raise AssertionError("unreachable")  # pragma: no cover  # stamina raises or returns

    async def _get_once(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        self.calls += 1
        return await get_json(self._http, path, params, error_for=parse.error_for, vendor="Yahoo")

    # -- endpoints -----------------------------------------------------------------------

    async def chart(self, symbol: str, start: dt.date, end: dt.date) -> parse.Chart:
        """Daily chart of ``symbol`` for the sessions [start, end], with its splits and dividends.

        ``symbol`` is ours (``BRK.B``; Yahoo is asked for ``BRK-B``). Bars are split-adjusted
        (see the module docstring) and sorted by date; rows Yahoo sent with a null are left out.
        An unknown symbol raises :class:`~marketdata.errors.UpstreamNotFound`.
        """
        period1, period2 = period_bounds(start, end)
        path = f"/v8/finance/chart/{quote(parse.yahoo_symbol(symbol), safe='')}"
        params = {
            "period1": str(period1),
            "period2": str(period2),
            "interval": "1d",
            "events": "div,splits",
            "includeAdjustedClose": "true",
        }
        data = await self._get(path, params)
        got = parse.chart(data, symbol=symbol, path=path)
        inside = pl.col("date").is_between(start, end)
        return parse.Chart(
            bars=got.bars.filter(inside),
            adjusted_close=got.adjusted_close.filter(inside),
            splits=got.splits.filter(pl.col("execution_date").is_between(start, end)),
            dividends=got.dividends.filter(pl.col("ex_dividend_date").is_between(start, end)),
        )

    async def daily_bars(self, symbol: str, start: dt.date, end: dt.date) -> pl.DataFrame:
        """Split-adjusted bars (``BAR_SCHEMA``; vwap and transactions null) for [start, end]."""
        return (await self.chart(symbol, start, end)).bars


__all__ = ["USER_AGENT", "YahooClient", "period_bounds"]
