"""Yahoo Finance chart responses → frames and errors. Pure: no I/O, no clock.

Facts this module encodes about ``GET /v8/finance/chart/{symbol}?interval=1d``:

- success is ``{"chart": {"result": [one result], "error": null}}``; failure is ``{"chart":
  {"result": null, "error": {"code": …, "description": …}}}`` (HTTP 404 ``Not Found`` for an
  unknown symbol); a 429 or gateway error may come as plain text or HTML;
- a daily bar's ``timestamp`` is its session's 09:30 America/New_York open in Unix seconds (a
  session still trading carries its last trade's time). Both are converted with the time zone to
  the New York session date, never to a UTC date;
- a quote array holds ``null`` for a day Yahoo has no values for: such rows are dropped. The
  same session sent twice (a known quirk around the close) keeps its last row;
- ``open``, ``high``, ``low``, ``close`` and ``volume`` are split-adjusted, not
  dividend-adjusted; ``adjclose`` is split- and dividend-adjusted;
- ``events.splits`` are ``numerator``-for-``denominator`` (4:1 is numerator 4): our
  ``split_to``/``split_from``; ``events.dividends`` amounts are split-adjusted too;
- an empty range has no ``timestamp`` and an empty quote object;
- share classes are spelled with a dash (``BRK-B``) where Polygon and we use a dot (``BRK.B``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import polars as pl

from marketdata.bars import BAR_SCHEMA, DIVIDEND_SCHEMA, SPLIT_SCHEMA
from marketdata.errors import (
    MalformedResponse,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    UpstreamNotFound,
)

EXCHANGE_TZ: Final = "America/New_York"
QUOTE_FIELDS: Final = ("open", "high", "low", "close", "volume")
#: Statuses worth another try.
RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})

ADJUSTED_CLOSE_SCHEMA: Final[dict[str, pl.DataType]] = {
    "date": pl.Date(),
    "adjclose": pl.Float64(),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Chart:
    """One symbol's daily chart: split-adjusted bars and the actions Yahoo reported with them."""

    bars: pl.DataFrame  # BAR_SCHEMA, split-adjusted; vwap and transactions null
    adjusted_close: pl.DataFrame  # ADJUSTED_CLOSE_SCHEMA, split- and dividend-adjusted
    splits: pl.DataFrame  # SPLIT_SCHEMA
    dividends: pl.DataFrame  # DIVIDEND_SCHEMA; amounts split-adjusted, as Yahoo sends them


def yahoo_symbol(symbol: str) -> str:
    """Our symbol as Yahoo spells it: ``BRK.B`` → ``BRK-B``, and Polygon's preferred share
    ``BACpL`` → ``BAC-PL``."""
    return re.sub(r"(?<=[A-Z])p", "-P", symbol).replace(".", "-")


def _vendor_error(data: object) -> tuple[str | None, str | None]:
    """(code, description) of a ``chart.error`` object, if there is one."""
    chart = data.get("chart") if isinstance(data, dict) else None
    error = chart.get("error") if isinstance(chart, dict) else None
    if not isinstance(error, dict):
        return None, None
    code, description = error.get("code"), error.get("description")
    return (str(code) if code else None), (str(description) if description else None)


def error_for(
    status_code: int, body: bytes, *, path: str, retry_after: float | None
) -> ProviderError:
    """The typed error for a non-200 response (the caller decides whether to retry)."""
    try:
        code, vendor = _vendor_error(json.loads(body))
    except (ValueError, UnicodeDecodeError):
        code, vendor = None, None  # plain text "Too Many Requests" or an HTML gateway page
    detail = f": {vendor}" if vendor else ""
    kw: dict[str, Any] = {"path": path, "status_code": status_code, "vendor_message": vendor}
    if status_code == 404:
        return UpstreamNotFound(f"Yahoo has no such symbol{detail}", **kw)
    if status_code == 429:
        return RateLimited(f"rate limited by Yahoo{detail}", retry_after=retry_after, **kw)
    if status_code in RETRY_STATUSES or status_code >= 500:
        return ProviderUnavailable(f"Yahoo answered HTTP {status_code}{detail}", **kw)
    what = f" {code}" if code else ""
    return ProviderError(f"Yahoo answered HTTP {status_code}{what}{detail}", **kw)


def _object(value: object, where: str, *, path: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise MalformedResponse(f"{where} is not an object", path=path)
    return value


def _first(value: object, where: str, *, path: str) -> Mapping[str, Any]:
    if not isinstance(value, list) or not value:
        raise MalformedResponse(f"{where} is not a non-empty list", path=path)
    return _object(value[0], f"{where}[0]", path=path)


def _numbers(values: object, where: str, *, n: int, path: str) -> pl.Series:
    """A list of ``n`` numbers or nulls as Float64; anything else names its position."""
    if not isinstance(values, list):
        raise MalformedResponse(f"{where} is not a list", path=path)
    if len(values) != n:
        raise MalformedResponse(f"{where} has {len(values)} values for {n} timestamps", path=path)
    for i, value in enumerate(values):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise MalformedResponse(f"{where}[{i}] is not a number: {value!r:.40}", path=path)
    return pl.Series(values, dtype=pl.Float64)


def session_dates(seconds: pl.Series) -> pl.Series:
    """Unix seconds → the New York calendar date of each instant."""
    return (
        pl.from_epoch(seconds.cast(pl.Int64), time_unit="s")
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone(EXCHANGE_TZ)
        .dt.date()
    )


def chart(data: Mapping[str, Any], *, symbol: str, path: str) -> Chart:
    """The :class:`Chart` of a 200 answer; a ``chart.error`` in it raises as the vendor meant."""
    top = _object(data.get("chart"), "chart", path=path)
    code, description = _vendor_error(data)
    if code is not None or description is not None:
        detail = f": {description}" if description else ""
        if code == "Not Found":
            raise UpstreamNotFound(f"Yahoo has no such symbol{detail}", path=path)
        raise ProviderError(f"Yahoo answered {code or 'an error'}{detail}", path=path)
    result = _first(top.get("result"), "chart.result", path=path)
    where = "chart.result[0]"
    stamps = result.get("timestamp")
    if stamps is None:
        stamps = []
    n = len(stamps) if isinstance(stamps, list) else 0
    seconds = _numbers(stamps, f"{where}.timestamp", n=n, path=path)
    if seconds.is_null().any():
        raise MalformedResponse(f"{where}.timestamp holds null", path=path)
    indicators = _object(result.get("indicators"), f"{where}.indicators", path=path)
    quote = _first(indicators.get("quote"), f"{where}.indicators.quote", path=path)
    columns = {"date": session_dates(seconds)}
    for name in QUOTE_FIELDS:
        values = quote.get(name, [] if n == 0 else None)
        columns[name] = _numbers(values, f"{where}.indicators.quote[0].{name}", n=n, path=path)
    adjclose = indicators.get("adjclose")
    columns["adjclose"] = pl.Series([None] * n, dtype=pl.Float64)
    if adjclose is not None:
        inner = _first(adjclose, f"{where}.indicators.adjclose", path=path)
        values = inner.get("adjclose", [] if n == 0 else None)
        columns["adjclose"] = _numbers(
            values, f"{where}.indicators.adjclose[0].adjclose", n=n, path=path
        )
    frame = (
        pl.DataFrame(columns)
        .drop_nulls(list(QUOTE_FIELDS))
        .unique("date", keep="last", maintain_order=True)
        .sort("date")
    )
    bars = frame.select(
        pl.lit(symbol, pl.String).alias("symbol"),
        "date",
        *QUOTE_FIELDS,
        pl.lit(None, pl.Float64).alias("vwap"),
        pl.lit(None, pl.Int64).alias("transactions"),
    ).cast(BAR_SCHEMA)  # type: ignore[arg-type]  # polars accepts a schema mapping
    events = result.get("events") or {}
    _object(events, f"{where}.events", path=path)
    return Chart(
        bars=bars,
        adjusted_close=frame.select("date", "adjclose"),
        splits=_splits(events.get("splits"), symbol=symbol, where=f"{where}.events", path=path),
        dividends=_dividends(
            events.get("dividends"), symbol=symbol, where=f"{where}.events", path=path
        ),
    )


def _events(raw: object, fields: tuple[str, ...], *, where: str, path: str) -> dict[str, pl.Series]:
    """Event objects keyed by timestamp → one Float64 series per field, by date."""
    items = list(_object(raw, where, path=path).values()) if raw is not None else []
    for i, item in enumerate(items):
        _object(item, f"{where}[{i}]", path=path)
    out = {
        name: _numbers(
            [item.get(name) for item in items], f"{where}.*.{name}", n=len(items), path=path
        )
        for name in ("date", *fields)
    }
    for name, series in out.items():
        if series.is_null().any():
            raise MalformedResponse(f"{where}: an event lacks {name!r}", path=path)
    return out


def _splits(raw: object, *, symbol: str, where: str, path: str) -> pl.DataFrame:
    got = _events(raw, ("numerator", "denominator"), where=f"{where}.splits", path=path)
    return (
        pl.DataFrame(
            {
                "symbol": pl.Series([symbol] * len(got["date"]), dtype=pl.String),
                "execution_date": session_dates(got["date"]),
                "split_from": got["denominator"],
                "split_to": got["numerator"],
            }
        )
        .cast(SPLIT_SCHEMA)  # type: ignore[arg-type]  # schema mapping
        .sort("execution_date")
    )


def _dividends(raw: object, *, symbol: str, where: str, path: str) -> pl.DataFrame:
    got = _events(raw, ("amount",), where=f"{where}.dividends", path=path)
    n = len(got["date"])
    sent = {
        "symbol": pl.Series([symbol] * n, dtype=pl.String),
        "ex_dividend_date": session_dates(got["date"]),
        "cash_amount": got["amount"],
    }
    unknown = {
        c: pl.Series([None] * n, dtype=t) for c, t in DIVIDEND_SCHEMA.items() if c not in sent
    }
    return pl.DataFrame({**sent, **unknown}).select(list(DIVIDEND_SCHEMA)).sort("ex_dividend_date")
