"""Historical bars of one symbol."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import polars as pl
from fastapi import APIRouter, Path, Query, Response

from marketdata.adjust import Adjustment
from marketdata.api.deps import StoreDep
from marketdata.api.schemas import BarsResponse, ErrorBody
from marketdata.bars import MAX_SYMBOL_LENGTH, VALUE_COLUMNS
from marketdata.errors import InputError, NotFound
from marketdata.service.history import read_history

router = APIRouter(prefix="/api/v1", tags=["bars"])

_FIELDS = ("date", *VALUE_COLUMNS, "quality", "validated")


@router.get(
    "/historical/{symbol}",
    response_model=BarsResponse,
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def historical(
    store: StoreDep,
    symbol: Annotated[str, Path(min_length=1, max_length=MAX_SYMBOL_LENGTH, examples=["AAPL"])],
    start: Annotated[dt.date | None, Query(description="First session date (inclusive).")] = None,
    end: Annotated[dt.date | None, Query(description="Last session date (inclusive).")] = None,
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
) -> Response:
    """Daily bars of a symbol over a date range, oldest first."""
    if start and end and start > end:
        raise InputError(f"start {start} is after end {end}")
    if not await store.symbol_statuses([symbol]):
        raise NotFound(f"no bars stored for {symbol}")
    frame = await read_history(
        store,
        symbol,
        start=start,
        end=end,
        adjusted=adjusted,
        validated_only=validated_only,
        min_quality=min_quality,
    )
    rows = frame.select(_FIELDS).write_json() if frame.height else "[]"
    body = (
        f'{{"symbol":{_json_str(symbol)},"adjusted":"{adjusted}",'
        f'"count":{frame.height},"bars":{rows}}}'
    )
    return Response(content=body, media_type="application/json")


def _json_str(value: str) -> str:
    return pl.Series([value]).to_frame("s").write_json()[6:-2]
