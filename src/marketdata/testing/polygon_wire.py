"""The Polygon/Massive wire format the fake server answers in: bodies, errors, cursors, rows.

Pure builders shared by :mod:`marketdata.testing.polygon_server`: JSON responses and the
vendor's error bodies and messages, request ids, path dates and millisecond timestamps,
``next_url`` cursors, and the result rows of aggregates and of splits and dividends.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import secrets
from typing import Any, Final
from zoneinfo import ZoneInfo

import polars as pl
from starlette.responses import Response

NEW_YORK: Final = ZoneInfo("America/New_York")
NOT_ENTITLED = (
    "You are not entitled to this data. Please upgrade your plan at https://polygon.io/pricing"
)
TIMEFRAME = (
    "Your plan doesn't include this data timeframe. Please upgrade your plan at "
    "https://polygon.io/pricing"
)
RATE_LIMITED = (
    "You've exceeded the maximum requests per minute, please wait or upgrade your "
    "subscription to continue. https://polygon.io/pricing"
)
GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def json_response(
    data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """``data`` as compact JSON (NaN written as the vendor can)."""
    body = json.dumps(data, allow_nan=True, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def error(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    """The vendor's error body for 400/401/429/5xx: ``{"status": "ERROR", "error": …}``."""
    return json_response(
        {"status": "ERROR", "request_id": request_id(), "error": text}, status, headers
    )


def request_id() -> str:
    """A fresh ``request_id``, shaped like the vendor's."""
    return secrets.token_hex(16)


def parse_day(value: str) -> dt.date:
    """A path date: ``YYYY-MM-DD`` or Unix milliseconds (New York date)."""
    if value.isdigit():
        instant = dt.datetime.fromtimestamp(int(value) / 1000, tz=dt.UTC)
        return instant.astimezone(NEW_YORK).date()
    return dt.date.fromisoformat(value)


def ms(day: dt.date, hour: int) -> int:
    """Unix milliseconds of ``hour``:00 New York time on ``day``."""
    return int(dt.datetime(day.year, day.month, day.day, hour, tzinfo=NEW_YORK).timestamp() * 1000)


def encode_cursor(params: dict[str, str]) -> str:
    """The ``cursor`` query parameter of a ``next_url``: the query to resume with."""
    return base64.urlsafe_b64encode(json.dumps(params).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, str]:
    """The query a ``cursor`` from :func:`encode_cursor` carries."""
    padded = cursor + "=" * (-len(cursor) % 4)
    return dict(json.loads(base64.urlsafe_b64decode(padded)))


def bar_results(frame: pl.DataFrame, *, hour: int, grouped: bool) -> list[dict[str, Any]]:
    """Aggregates ``results`` rows; ``grouped`` ones carry the ticker (``T``)."""
    rows = []
    for r in frame.iter_rows(named=True):
        item: dict[str, Any] = {
            "v": r["volume"],
            "vw": r["vwap"],
            "o": r["open"],
            "c": r["close"],
            "h": r["high"],
            "l": r["low"],
            "t": ms(r["date"], hour),
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


def reference_row(row: dict[str, Any], kind: str, version: str) -> dict[str, Any]:
    """A split or dividend as ``/v3/reference/*`` or (``version`` v1) ``/stocks/v1/*`` shows it."""
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
        iso["distribution_type"] = "recurring" if iso.pop("dividend_type") == "CD" else "special"
        iso["currency"] = "USD"
        iso["id"] = f"D{abs(hash((iso['ticker'], iso['ex_dividend_date']))):x}"
    return {k: v for k, v in iso.items() if v is not None}
