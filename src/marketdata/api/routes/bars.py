"""``GET /api/v1/historical/{symbol}``: a symbol's daily bars as JSON, CSV or Parquet.

The hot path builds no object per bar: the bars are read as columns, adjusted and flagged
with polars expressions, and written by polars (JSON, CSV) or Arrow (Parquet). Long results
continue with a cursor; every answer has an ``ETag`` (a hash of the body), so a client that
sends ``If-None-Match`` gets ``304 Not Modified`` when nothing changed.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import io
import json
from typing import Annotated, Literal

import numpy as np
import polars as pl
from fastapi import APIRouter, Depends, Path, Query, Request, Response

from marketdata.adjust import Adjustment
from marketdata.api.deps import SettingsDep, StoreDep
from marketdata.api.errors import problem_responses
from marketdata.api.schemas import BarsResponse
from marketdata.api.security import require_read
from marketdata.bars import VALUE_COLUMNS
from marketdata.errors import InputError
from marketdata.service.history import read_history
from marketdata.service.watchlist import Watchlist, not_stored
from marketdata.symbols import MAX_LENGTH, normalize_symbol
from marketdata.validation.rules import flag_names as rule_names

router = APIRouter(prefix="/api/v1", tags=["bars"], dependencies=[Depends(require_read)])

Format = Literal["json", "csv", "parquet"]
#: Every field a bar has, in order; ``fields=`` picks a subset (``date`` always comes first).
FIELDS = ("date", *VALUE_COLUMNS, "quality", "validated", "flags")
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
_ACCEPTED: dict[str, Format] = {
    "text/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/json": "json",
    "text/*": "csv",
    "application/*": "json",
    "*/*": "json",
}
#: Dates outside this range cannot be sessions we store; asking for them is a mistake.
EARLIEST, LATEST = dt.date(1900, 1, 1), dt.date(2100, 12, 31)
_EXAMPLE = {
    "symbol": "AAPL",
    "adjusted": "splits",
    "count": 1,
    "bars": [
        {
            "date": "2005-04-01",
            "open": 1.5032,
            "high": 1.5064,
            "low": 1.4489,
            "close": 1.4604,
            "volume": 642646396.0,
            "vwap": 1.469,
            "transactions": 82132,
            "quality": 1.0,
            "validated": True,
            "flags": [],
        }
    ],
    "next_cursor": None,
}


def negotiate(fmt: Format | None, accept: str | None) -> Format:
    """``format=`` when given, else the supported type ``Accept`` prefers (highest ``q``, then
    the order given; ``q=0`` never), else JSON.

    ``*/*`` and ``application/*`` mean JSON, ``text/*`` CSV. A header naming only types we
    do not serve gets JSON too (the documented default) rather than 406.
    """
    if fmt is not None:
        return fmt
    best: tuple[float, int, Format] | None = None
    for index, part in enumerate((accept or "").split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        chosen = _ACCEPTED.get(media.lower())
        if chosen is None:
            continue
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0  # a malformed weight is no preference
        if weight <= 0 or weight != weight:  # q=0 (or nan): not acceptable
            continue
        if best is None or weight > best[0]:
            best = (weight, index, chosen)
    return best[2] if best is not None else "json"


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header matches ``etag``: ``*``, or any of its
    comma-separated tags, compared weakly (``W/"x"`` matches ``"x"``, RFC 9110 §13.1.2)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(t.strip().removeprefix("W/") == etag for t in if_none_match.split(","))


def parse_fields(text: str | None) -> list[str]:
    """The fields asked for (``date`` always first); a clear error for unknown names."""
    if not text:
        return list(FIELDS)
    asked = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in asked if f not in FIELDS]
    if unknown:
        msg = f"unknown field(s) {', '.join(unknown)}: choose from {', '.join(FIELDS)}"
        raise InputError(msg)
    return ["date", *dict.fromkeys(f for f in asked if f != "date")]


def encode_cursor(after: dt.date) -> str:
    """An opaque cursor continuing after ``after``."""
    return base64.urlsafe_b64encode(json.dumps({"after": after.isoformat()}).encode()).decode()


def decode_cursor(cursor: str) -> dt.date:
    """The date a cursor continues after; :class:`InputError` if it is not one of ours."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)))
        after = dt.date.fromisoformat(data["after"])
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        after = None
    if after is None or not EARLIEST <= after <= LATEST:  # ours only name stored sessions
        raise InputError("invalid cursor: pass the next_cursor of a previous answer")
    return after


def with_flag_names(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with ``flags`` as the names of the rules set in it (a list column).

    Names are looked up once per distinct mask (a handful per series), not once per bar, and
    spread over the bars with numpy: polars' own unique/join cost ten times as much here.
    """
    masks = frame["flags"].to_numpy()
    distinct = np.unique(masks)
    table = pl.Series(
        "flags", [rule_names(int(m)) for m in distinct], pl.List(pl.String()), strict=True
    )
    return frame.with_columns(table.gather(np.searchsorted(distinct, masks)))


def render(
    frame: pl.DataFrame, fmt: Format, *, symbol: str, adjusted: str, cursor: str | None
) -> bytes:
    """The body in ``fmt`` (``frame`` already holds the chosen columns)."""
    if fmt == "csv":
        flat = frame.with_columns(pl.col("flags").list.join("|")) if "flags" in frame else frame
        return flat.write_csv().encode()
    if fmt == "parquet":
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        return buffer.getvalue()
    rows = frame.write_json() if frame.height else "[]"
    head = json.dumps({"symbol": symbol, "adjusted": adjusted, "count": frame.height})[:-1]
    tail = json.dumps(cursor)
    return f'{head}, "bars": {rows}, "next_cursor": {tail}}}'.encode()


@router.get(
    "/historical/{symbol}",
    response_model=BarsResponse,
    responses={
        200: {
            "content": {
                "application/json": {"example": _EXAMPLE},
                "text/csv": {"example": "date,open,high,low,close,volume\n2005-04-01,1.5032,…"},
                "application/vnd.apache.parquet": {"example": "(binary Parquet file)"},
            },
            "description": "Bars, oldest first; `next_cursor` continues a long result.",
        },
        304: {"description": "Not modified (the `If-None-Match` ETag still matches)."},
        **problem_responses(401, 403, 404, 422),
    },
)
async def historical(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    symbol: Annotated[str, Path(min_length=1, max_length=MAX_LENGTH, examples=["AAPL"])],
    start: Annotated[
        dt.date | None, Query(description="First session date (inclusive; default: the first).")
    ] = None,
    end: Annotated[
        dt.date | None, Query(description="Last session date (inclusive; default: the last).")
    ] = None,
    validated_only: Annotated[bool, Query(description="Only bars that passed validation.")] = False,
    min_quality: Annotated[
        float | None, Query(ge=0.0, le=1.0, description="Only bars scoring at least this.")
    ] = None,
    adjusted: Annotated[
        Adjustment,
        Query(
            description="`splits` (default, as Polygon's adjusted=true): split-adjusted prices "
            "and volume; `all`: also back-adjusted for cash dividends; `none`: raw bars as "
            "stored. Adjustment uses the stored splits and dividends at the time of the request."
        ),
    ] = "splits",
    fields: Annotated[
        str | None,
        Query(
            description=f"Comma-separated subset of {', '.join(FIELDS)} (date is always included).",
            examples=["close,volume"],
            max_length=200,
        ),
    ] = None,
    format: Annotated[  # the public parameter name
        Format | None,
        Query(
            description="json (default), csv or parquet; without it the Accept header decides "
            "(text/csv, application/vnd.apache.parquet)."
        ),
    ] = None,
    as_of: Annotated[
        dt.datetime | None,
        Query(
            description="The series as this service knew it then (ISO timestamp, UTC when no "
            "offset): bars stored later are absent, bars revised later show their old values."
        ),
    ] = None,
    cursor: Annotated[
        str | None,
        Query(
            description="Continue a long result: the `next_cursor` of the previous answer.",
            max_length=200,
        ),
    ] = None,
) -> Response:
    """Daily bars of a symbol over a date range, oldest first, with each bar's quality score,
    validation mark and flag names."""
    name = normalize_symbol(symbol)
    for label, day in (("start", start), ("end", end), ("as_of", as_of and as_of.date())):
        if day is not None and not EARLIEST <= day <= LATEST:
            raise InputError(f"{label} {day} is outside {EARLIEST} … {LATEST}")
    if start and end and start > end:
        raise InputError(f"start {start} is after end {end}")
    chosen = parse_fields(fields)
    fmt = negotiate(format, request.headers.get("accept"))
    if cursor is not None:
        after = decode_cursor(cursor) + dt.timedelta(days=1)
        start = max(start, after) if start else after
    when = as_of.replace(tzinfo=dt.UTC) if as_of and as_of.tzinfo is None else as_of
    frame = await read_history(
        store,
        name,
        start=start,
        end=end,
        adjusted=adjusted,
        validated_only=validated_only,
        min_quality=min_quality,
        as_of=when,
    )
    if frame.is_empty() and not await store.symbol_statuses([name]):
        config = Watchlist(symbols=settings.symbols, years=settings.backfill_years)
        raise await not_stored(store, config, name, at=dt.datetime.now(dt.UTC))
    limit = settings.api_max_rows
    following = None
    if frame.height > limit:
        frame = frame.head(limit)
        last = frame["date"][-1]
        assert isinstance(last, dt.date)  # a non-empty date column
        following = encode_cursor(last)
    out = with_flag_names(frame).select(chosen)
    body = render(out, fmt, symbol=name, adjusted=adjusted, cursor=following)
    etag = f'"{hashlib.sha1(body, usedforsecurity=False).hexdigest()}"'  # twice blake2b's speed
    # With keys required for reads, no shared cache may keep the answer (RFC 9111 §3.5).
    scope = "private, " if settings.require_key_for_reads else ""
    headers = {
        "ETag": etag,
        "Cache-Control": f"{scope}max-age=60, must-revalidate",
        "Vary": "Accept",
    }
    if following is not None:
        headers["X-Next-Cursor"] = following
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if fmt == "parquet":
        headers["Content-Disposition"] = f'attachment; filename="{name}.parquet"'
    return Response(content=body, media_type=MEDIA_TYPES[fmt], headers=headers)
