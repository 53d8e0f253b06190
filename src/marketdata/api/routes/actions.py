"""``GET /api/v1/actions/{symbol}``: the stored splits and cash dividends of a symbol, the
corporate actions that adjusted reads apply."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import polars as pl
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from marketdata.api.deps import StoreDep
from marketdata.api.errors import problem_responses
from marketdata.api.security import require_read
from marketdata.errors import InputError, NotFound
from marketdata.symbols import MAX_LENGTH, normalize_symbol

router = APIRouter(prefix="/api/v1", tags=["actions"], dependencies=[Depends(require_read)])


class Split(BaseModel):
    """A stock split: ``split_from`` old shares became ``split_to`` new ones on the date."""

    execution_date: dt.date
    split_from: float
    split_to: float
    source: str = Field(description="Where it came from (provider or file).")


class Dividend(BaseModel):
    """A cash dividend, as the vendor reports it (not split-adjusted)."""

    ex_dividend_date: dt.date
    cash_amount: float
    declaration_date: dt.date | None
    record_date: dt.date | None
    pay_date: dt.date | None
    frequency: int | None = Field(description="Payments a year (0: one-off), when known.")
    dividend_type: str = Field(description="CD regular, SC special, …")
    source: str


class Actions(BaseModel):
    """Splits and dividends of a symbol in [start, end], oldest first."""

    symbol: str
    splits: list[Split]
    dividends: list[Dividend]


EXAMPLE = {
    "symbol": "AAPL",
    "splits": [
        {"execution_date": "2020-08-31", "split_from": 1.0, "split_to": 4.0, "source": "polygon"}
    ],
    "dividends": [
        {
            "ex_dividend_date": "2024-11-08",
            "cash_amount": 0.25,
            "declaration_date": "2024-10-31",
            "record_date": "2024-11-11",
            "pay_date": "2024-11-14",
            "frequency": 4,
            "dividend_type": "CD",
            "source": "polygon",
        }
    ],
}


@router.get(
    "/actions/{symbol}",
    response_model=Actions,
    responses={
        200: {"content": {"application/json": {"example": EXAMPLE}}},
        **problem_responses(401, 403, 404, 422),
    },
)
async def actions(
    store: StoreDep,
    symbol: Annotated[str, Path(min_length=1, max_length=MAX_LENGTH, examples=["AAPL"])],
    start: Annotated[dt.date | None, Query(description="First date (inclusive).")] = None,
    end: Annotated[dt.date | None, Query(description="Last date (inclusive).")] = None,
) -> Actions:
    """Stored splits and cash dividends of a symbol within [start, end] (the ones
    `adjusted=splits|all` reads apply)."""
    name = normalize_symbol(symbol)
    if start and end and start > end:
        raise InputError(f"start {start} is after end {end}")
    splits = _within(await store.read_splits([name]), "execution_date", start, end)
    dividends = _within(await store.read_dividends([name]), "ex_dividend_date", start, end)
    if splits.is_empty() and dividends.is_empty() and not await store.symbol_statuses([name]):
        raise NotFound(f"no bars or corporate actions stored for {name}")
    return Actions(
        symbol=name,
        splits=[Split(**row) for row in splits.drop("symbol").to_dicts()],
        dividends=[Dividend(**row) for row in dividends.drop("symbol").to_dicts()],
    )


def _within(
    frame: pl.DataFrame, column: str, start: dt.date | None, end: dt.date | None
) -> pl.DataFrame:
    """Rows of ``frame`` whose ``column`` lies in [start, end], by date."""
    if start is not None:
        frame = frame.filter(pl.col(column) >= start)
    if end is not None:
        frame = frame.filter(pl.col(column) <= end)
    return frame.sort(column)
