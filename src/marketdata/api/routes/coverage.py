"""``GET /api/v1/coverage``: per symbol and month, sessions, bars stored and bars validated."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from marketdata import calendar
from marketdata.api.deps import SettingsDep, StoreDep
from marketdata.api.errors import problem_responses
from marketdata.api.routes.status import decode_cursor, encode_cursor
from marketdata.api.security import require_read
from marketdata.errors import InputError
from marketdata.service import coverage as service
from marketdata.symbols import parse_symbol_list

router = APIRouter(prefix="/api/v1", tags=["coverage"], dependencies=[Depends(require_read)])

#: Most symbols one answer covers (a heat map wider than this helps nobody).
MAX_SYMBOLS = 200


class MonthCell(BaseModel):
    """One symbol in one month."""

    month: str = Field(pattern=r"^\d{4}-\d{2}$", description="The month, YYYY-MM.")
    sessions: int = Field(
        ge=0,
        description="XNYS sessions of the month in [start, end], from the symbol's first stored "
        "session on.",
    )
    present: int = Field(ge=0, description="Of those, sessions with a stored bar.")
    valid: int = Field(ge=0, description="Of those, bars that passed validation.")


class SymbolCoverage(BaseModel):
    """A symbol's stored range and its months, oldest first."""

    symbol: str
    first_date: dt.date | None = Field(description="First stored session.")
    last_date: dt.date | None = Field(description="Last stored session.")
    months: list[MonthCell]


class CoverageResponse(BaseModel):
    """Monthly coverage of the symbols (one page of them) over [start, end]."""

    start: dt.date
    end: dt.date = Field(description="Last date counted: at most the last completed session.")
    months: list[str] = Field(description="Every month (YYYY-MM) in the range that has sessions.")
    symbols: list[SymbolCoverage] = Field(description="This page's symbols, by name.")
    symbols_total: int = Field(
        ge=0, description="Symbols the question covers on every page (stored, or named)."
    )
    truncated: bool = Field(
        description="True when symbols remain after this page: pass `next_cursor` as `cursor`."
    )
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the symbols after this page; null on the last page."
    )

    @classmethod
    def of(cls, found: service.Coverage) -> CoverageResponse:
        """From the service's value."""
        return cls(
            start=found.start,
            end=found.end,
            months=list(found.months),
            symbols=[
                SymbolCoverage(
                    symbol=s.symbol,
                    first_date=s.first_date,
                    last_date=s.last_date,
                    months=[MonthCell.model_validate(m, from_attributes=True) for m in s.months],
                )
                for s in found.symbols
            ],
            symbols_total=found.symbols_total,
            truncated=found.truncated,
            next_cursor=encode_cursor(found.next_after) if found.next_after else None,
        )


EXAMPLE = {
    "start": "2024-11-01",
    "end": "2024-12-31",
    "months": ["2024-11", "2024-12"],
    "symbols": [
        {
            "symbol": "MSFT",
            "first_date": "2021-11-24",
            "last_date": "2026-11-23",
            "months": [
                {"month": "2024-11", "sessions": 20, "present": 20, "valid": 20},
                {"month": "2024-12", "sessions": 21, "present": 20, "valid": 19},
            ],
        }
    ],
    "symbols_total": 1,
    "truncated": False,
    "next_cursor": None,
}


@router.get(
    "/coverage",
    response_model=CoverageResponse,
    responses={
        200: {"content": {"application/json": {"example": EXAMPLE}}},
        **problem_responses(401, 403, 404, 422),
    },
)
async def coverage(
    store: StoreDep,
    settings: SettingsDep,
    symbols: Annotated[
        str | None,
        Query(
            description=f"Comma-separated symbols (default: every stored symbol; at most "
            f"{MAX_SYMBOLS} named).",
            examples=["AAPL,MSFT"],
            max_length=4000,
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_SYMBOLS, description="Symbols in one answer, by name.")
    ] = MAX_SYMBOLS,
    cursor: Annotated[
        str | None,
        Query(max_length=200, description="Continue after the `next_cursor` of an answer."),
    ] = None,
    start: Annotated[
        dt.date | None,
        Query(description="First date (default: the symbols' first stored session)."),
    ] = None,
    end: Annotated[
        dt.date | None,
        Query(description="Last date (default and at most: the last completed session)."),
    ] = None,
) -> CoverageResponse:
    """Per symbol and month: XNYS sessions, sessions with a stored bar and bars that passed
    validation, so months with holes or bad bars stand out.

    Sessions are counted from each symbol's first stored one up to the last completed session
    (a later `end` is clamped to it, so future months are absent, not holes; a `start` after
    it is a 422). One answer holds at most `limit` symbols, by name: when more remain,
    `truncated` is true, `symbols_total` says how many there are, and `next_cursor`, passed
    as `cursor`, continues after the last one.
    """
    names = parse_symbol_list(symbols) if symbols else None
    if names is not None and len(names) > MAX_SYMBOLS:
        raise InputError(f"at most {MAX_SYMBOLS} symbols at a time, got {len(names)}")
    today = calendar.last_completed_session(
        dt.datetime.now(dt.UTC), delay=dt.timedelta(minutes=settings.backfill_delay_minutes)
    )
    found = await service.coverage(
        store,
        names or None,
        start=start,
        end=end,
        today=today,
        limit=limit,
        after=decode_cursor(cursor) if cursor is not None else None,
    )
    return CoverageResponse.of(found)
