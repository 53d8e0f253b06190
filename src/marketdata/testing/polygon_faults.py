"""The fake Polygon server's switchable misbehaviour, and how it bends successful answers.

:class:`Faults` holds the switches (change them while the server runs).
:mod:`marketdata.testing.polygon_server` checks the request-level ones (auth aside: rate
limits, 5xx, plan windows, slow or held answers) before it answers; the functions here apply
the data-level ones: :func:`plant_bad_bars` to the simulated bars, :func:`success_response` to
a successful body (malformed JSON, wrong types, a missing field, an unknown status).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Final

import polars as pl
from starlette.responses import Response

from marketdata.testing.polygon_wire import json_response

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


def plant_bad_bars(
    frame: pl.DataFrame, bad_bars: dict[str, list[tuple[dt.date, str]]]
) -> pl.DataFrame:
    """Plant the configured bad bars (``{symbol: [(day, kind), …]}``, kinds of
    :data:`BAD_BAR_KINDS`) in ``frame``."""
    for symbol, plants in bad_bars.items():
        for day, kind in plants:
            hit = (pl.col("symbol") == symbol) & (pl.col("date") == day)
            if kind == "high_below_low":
                frame = frame.with_columns(
                    pl.when(hit).then(pl.col("low")).otherwise(pl.col("high")).alias("high"),
                    pl.when(hit).then(pl.col("high")).otherwise(pl.col("low")).alias("low"),
                )
            elif kind == "negative_price":
                frame = frame.with_columns(
                    pl.when(hit).then(-pl.col("close")).otherwise(pl.col("close")).alias("close")
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


def success_response(faults: Faults, data: dict[str, Any]) -> Response:
    """A successful body as JSON, with the malformed-answer faults applied (and counted)."""
    kind = faults.malformed
    if kind is not None and faults.malformed_count is not None:
        faults.malformed_count -= 1
        if faults.malformed_count <= 0:
            faults.malformed, faults.malformed_count = None, None
    if kind is None:
        return json_response(data)
    if kind == "invalid_json":
        return Response(b"<html>oops</html>", media_type="application/json")
    if kind == "truncated_json":
        body = json.dumps(data).encode()
        return Response(body[: max(1, len(body) // 2)], media_type="application/json")
    if kind == "bad_status":
        return json_response({**data, "status": "WEIRD"})
    results = data.get("results") or []
    if results and kind == "wrong_types":
        results[0] = {**results[0], "o": "not-a-number"}
    if results and kind == "missing_field":
        results[0] = {k: v for k, v in results[0].items() if k != "c"}
    return json_response(data)
