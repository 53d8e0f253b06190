"""Polygon / Massive responses → frames and errors. Pure: no I/O, no clock.

Facts this module encodes (see ``shared/polygon/API_NOTES.md``):

- a range bar's ``t`` is 00:00 America/New_York in Unix ms; a grouped-daily bar's ``t`` is
  16:00 New York. Both are converted with the time zone, never by dividing by 86,400,000;
- an empty answer is a 200 with ``results`` missing or null;
- ``status`` is ``OK`` or ``DELAYED`` on success; errors carry their text in ``error``
  (401, 429) or ``message`` (403 ``NOT_AUTHORIZED``, 404 ``NOT_FOUND``);
- 403 ``NOT_AUTHORIZED`` whose message mentions "timeframe" is the plan's history window;
  any other 403 is an entitlement problem.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, Literal

import polars as pl

from marketdata.bars import BAR_SCHEMA, DIVIDEND_SCHEMA, SPLIT_SCHEMA
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

EXCHANGE_TZ: Final = "America/New_York"
OK_STATUSES: Final = frozenset({"OK", "DELAYED"})
#: Statuses worth another try: rate limits, server errors, gateway timeouts (and 499/413 as
#: the official client does).
RETRY_STATUSES: Final = frozenset({413, 429, 499, 500, 502, 503, 504})

Endpoint = Literal["range", "grouped"]

_AGG_FIELDS: Final = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume"}


def check_status(data: Mapping[str, Any], *, path: str) -> None:
    """Refuse a 200 whose ``status`` is not a success."""
    status = data.get("status")
    if status not in OK_STATUSES:
        message = data.get("message") or data.get("error")
        raise MalformedResponse(
            f"unexpected status {status!r}" + (f": {message}" if message else ""), path=path
        )


def error_for(
    status_code: int, body: bytes, *, path: str, retry_after: float | None
) -> ProviderError:
    """The typed error for a non-200 response (the caller decides whether to retry)."""
    vendor: str | None = None
    try:
        data = json.loads(body)
        if isinstance(data, dict):
            vendor = str(data.get("message") or data.get("error") or "") or None
    except (ValueError, UnicodeDecodeError):
        vendor = None  # e.g. an nginx HTML gateway page
    detail = f": {vendor}" if vendor else ""
    kw: dict[str, Any] = {"path": path, "status_code": status_code, "vendor_message": vendor}
    if status_code == 401:
        return AuthenticationFailed(f"the provider refused the API key{detail}", **kw)
    if status_code == 403:
        if vendor and "timeframe" in vendor.lower():
            return PlanTimeframe(f"your plan does not cover these dates{detail}", **kw)
        return PlanNotEntitled(f"your plan does not include this data{detail}", **kw)
    if status_code == 404:
        return UpstreamNotFound(f"not found upstream{detail}", **kw)
    if status_code == 429:
        return RateLimited(f"rate limited by the provider{detail}", retry_after=retry_after, **kw)
    if status_code in RETRY_STATUSES or status_code >= 500:
        return ProviderUnavailable(f"the provider answered HTTP {status_code}{detail}", **kw)
    return ProviderError(f"the provider answered HTTP {status_code}{detail}", **kw)


def _results(data: Mapping[str, Any], *, path: str) -> list[Any]:
    results = data.get("results")
    if results is None:
        return []
    if not isinstance(results, list):
        raise MalformedResponse("'results' is not a list", path=path)
    count = data.get("resultsCount")
    if isinstance(count, int) and not isinstance(count, bool) and count != len(results):
        raise MalformedResponse(
            f"resultsCount is {count} but {len(results)} results came", path=path
        )
    return results


def _require(
    frame: pl.DataFrame, raw: pl.DataFrame, fields: Mapping[str, str], *, path: str
) -> None:
    """Every required field present and of the right type in every row."""
    for source, target in fields.items():
        if source not in raw.columns:
            raise MalformedResponse(f"results lack the field {source!r}", path=path)
        bad = frame[target].is_null() & raw[source].is_not_null()
        missing = raw[source].is_null()
        if missing.any():
            row = int(missing.arg_max() or 0)
            raise MalformedResponse(f"results[{row}] lacks {source!r}", path=path)
        if bad.any():
            row = int(bad.arg_max() or 0)
            raise MalformedResponse(
                f"results[{row}].{source} is not a number: {raw[source][row]!r}", path=path
            )


def aggregates(
    data: Mapping[str, Any], *, endpoint: Endpoint, path: str, symbol: str | None = None
) -> pl.DataFrame:
    """Bars of a range (one ``symbol``) or grouped-daily response, as ``BAR_SCHEMA``.

    The session date comes from ``t`` converted to New York time: 00:00 for range bars, 16:00
    for grouped bars — both fall on the session's calendar date there.
    """
    check_status(data, path=path)
    results = _results(data, path=path)
    if not results:
        return pl.DataFrame(schema=BAR_SCHEMA)
    if not all(isinstance(r, dict) for r in results):
        raise MalformedResponse("results are not all objects", path=path)
    raw = pl.from_dicts(results, infer_schema_length=None, strict=False)
    fields = {**_AGG_FIELDS, "t": "t"}
    if endpoint == "grouped":
        fields["T"] = "symbol"
    for name in fields:
        if name not in raw.columns:
            raise MalformedResponse(f"results lack the field {name!r}", path=path)
    text = {c: raw[c].cast(pl.String, strict=False) for c in raw.columns}
    numbers: dict[str, pl.Series] = {
        c: text[c].cast(pl.Float64, strict=False)
        for c in ("o", "h", "l", "c", "v", "vw", "n", "t")
        if c in raw.columns
    }
    frame = pl.DataFrame(
        {
            "symbol": (
                raw["T"].cast(pl.String, strict=False)
                if endpoint == "grouped"
                else pl.Series([symbol] * raw.height, dtype=pl.String)
            ),
            "t": numbers["t"],
            **{target: numbers[src] for src, target in _AGG_FIELDS.items()},
            "vwap": numbers.get("vw", pl.Series([None] * raw.height, dtype=pl.Float64)),
            "transactions": numbers.get("n", pl.Series([None] * raw.height, dtype=pl.Float64)),
        }
    )
    _require(frame, raw, {**_AGG_FIELDS, "t": "t"}, path=path)
    if endpoint == "grouped":
        _require(frame, raw, {"T": "symbol"}, path=path)
    for opt, target in (("vw", "vwap"), ("n", "transactions")):
        if opt in raw.columns:
            bad = frame[target].is_null() & raw[opt].is_not_null()
            if bad.any():
                row = int(bad.arg_max() or 0)
                raise MalformedResponse(
                    f"results[{row}].{opt} is not a number: {raw[opt][row]!r}", path=path
                )
    return frame.select(
        pl.col("symbol"),
        pl.from_epoch(pl.col("t").cast(pl.Int64), time_unit="ms")
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone(EXCHANGE_TZ)
        .dt.date()
        .alias("date"),
        *(pl.col(c) for c in ("open", "high", "low", "close", "volume", "vwap")),
        pl.col("transactions").round().cast(pl.Int64),
    ).cast(BAR_SCHEMA)  # type: ignore[arg-type]  # polars accepts a schema mapping


def _dates(frame: pl.DataFrame, columns: tuple[str, ...]) -> list[pl.Expr]:
    return [
        (
            pl.col(c).cast(pl.String).str.to_date("%Y-%m-%d", strict=False)
            if c in frame.columns
            else pl.lit(None, pl.Date)
        ).alias(c)
        for c in columns
    ]


def splits(data: Mapping[str, Any], *, path: str) -> pl.DataFrame:
    """Splits of a ``/stocks/v1/splits`` or ``/v3/reference/splits`` page (``SPLIT_SCHEMA``)."""
    check_status(data, path=path)
    results = _results(data, path=path)
    if not results:
        return pl.DataFrame(schema=SPLIT_SCHEMA)
    raw = pl.from_dicts(results, infer_schema_length=None, strict=False)
    for field in ("ticker", "execution_date", "split_from", "split_to"):
        if field not in raw.columns or raw[field].is_null().any():
            raise MalformedResponse(f"splits lack {field!r}", path=path)
    frame = raw.select(
        pl.col("ticker").cast(pl.String).alias("symbol"),
        *_dates(raw, ("execution_date",)),
        pl.col("split_from").cast(pl.Float64, strict=False),
        pl.col("split_to").cast(pl.Float64, strict=False),
    )
    if frame.select(pl.any_horizontal(pl.all().is_null()).any()).item():
        raise MalformedResponse("a split has an unparsable date or ratio", path=path)
    return frame.cast(SPLIT_SCHEMA)  # type: ignore[arg-type]  # schema mapping


def dividends(data: Mapping[str, Any], *, path: str) -> pl.DataFrame:
    """Dividends of a ``/stocks/v1/dividends`` or ``/v3/reference/dividends`` page."""
    check_status(data, path=path)
    results = _results(data, path=path)
    if not results:
        return pl.DataFrame(schema=DIVIDEND_SCHEMA)
    raw = pl.from_dicts(results, infer_schema_length=None, strict=False)
    for field in ("ticker", "ex_dividend_date", "cash_amount"):
        if field not in raw.columns or raw[field].is_null().any():
            raise MalformedResponse(f"dividends lack {field!r}", path=path)
    kind = "dividend_type" if "dividend_type" in raw.columns else "distribution_type"
    frame = raw.select(
        pl.col("ticker").cast(pl.String).alias("symbol"),
        *_dates(raw, ("ex_dividend_date",)),
        pl.col("cash_amount").cast(pl.Float64, strict=False),
        *_dates(raw, ("declaration_date", "record_date", "pay_date")),
        (
            pl.col("frequency").cast(pl.Int64, strict=False)
            if "frequency" in raw.columns
            else pl.lit(None, pl.Int64)
        ).alias("frequency"),
        (pl.col(kind).cast(pl.String) if kind in raw.columns else pl.lit(None, pl.String)).alias(
            "dividend_type"
        ),
    )
    if frame.select(
        pl.any_horizontal(pl.col("ex_dividend_date", "cash_amount").is_null()).any()
    ).item():
        raise MalformedResponse("a dividend has an unparsable date or amount", path=path)
    return frame.cast(DIVIDEND_SCHEMA)  # type: ignore[arg-type]  # schema mapping
