"""``GET /api/v1/quality/{symbol}``: what validation found, and which sessions are missing."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import polars as pl
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from marketdata.api.deps import SettingsDep, StoreDep
from marketdata.api.errors import problem_responses
from marketdata.api.security import require_read
from marketdata.errors import InputError
from marketdata.service.quality import symbol_gaps
from marketdata.service.watchlist import Watchlist, not_stored
from marketdata.symbols import MAX_LENGTH, normalize_symbol

router = APIRouter(prefix="/api/v1", tags=["quality"], dependencies=[Depends(require_read)])


class LogEntry(BaseModel):
    """One rule that fired on one bar."""

    date: dt.date
    rule: str
    severity: str = Field(description="hard (not validated), soft (scored down) or info.")
    value: float | None = Field(description="What was measured.")
    threshold: float | None = Field(description="The limit it was measured against.")


class Gap(BaseModel):
    """Consecutive missing sessions."""

    start: dt.date
    end: dt.date
    sessions: int


class Quality(BaseModel):
    """A symbol's validation log and missing sessions over a date range."""

    symbol: str
    start: dt.date | None
    end: dt.date | None
    rules: dict[str, int] = Field(description="Bars each rule fired on, in the range.")
    log: list[LogEntry]
    gaps: list[Gap]


async def _known(store: StoreDep, settings: SettingsDep, symbol: str) -> None:
    statuses = await store.symbol_statuses([symbol])
    if statuses and statuses[0].bar_count:
        return
    config = Watchlist(symbols=settings.symbols, years=settings.backfill_years)
    raise await not_stored(store, config, symbol, at=dt.datetime.now(dt.UTC))


EXAMPLE = {
    "symbol": "MSFT",
    "start": "2024-01-01",
    "end": "2024-12-31",
    "rules": {"high_below_low": 1},
    "log": [
        {
            "date": "2024-12-16",
            "rule": "high_below_low",
            "severity": "hard",
            "value": 64.7955,
            "threshold": 65.45,
        }
    ],
    "gaps": [{"start": "2024-07-03", "end": "2024-07-05", "sessions": 2}],
}


@router.get(
    "/quality/{symbol}",
    response_model=Quality,
    responses={
        200: {"content": {"application/json": {"example": EXAMPLE}}},
        **problem_responses(401, 403, 404, 422),
    },
)
async def quality(
    store: StoreDep,
    settings: SettingsDep,
    symbol: Annotated[str, Path(min_length=1, max_length=MAX_LENGTH, examples=["AAPL"])],
    start: Annotated[dt.date | None, Query(description="First session (inclusive).")] = None,
    end: Annotated[dt.date | None, Query(description="Last session (inclusive).")] = None,
) -> Quality:
    """The validation log (rule, severity, measured value, threshold) and the missing-session
    ranges of a symbol, within [start, end]."""
    name = normalize_symbol(symbol)
    if start and end and start > end:
        raise InputError(f"start {start} is after end {end}")
    await _known(store, settings, name)
    log = await store.read_validation_log(name, start=start, end=end)
    counts = log.group_by("rule").agg(pl.col("date").n_unique().alias("n")).sort("rule")
    return Quality(
        symbol=name,
        start=start,
        end=end,
        rules={str(r): int(n) for r, n in counts.iter_rows()},
        log=[LogEntry(**row) for row in log.select(list(LogEntry.model_fields)).to_dicts()],
        gaps=[
            Gap(start=g.start, end=g.end, sessions=g.sessions)
            for g in await symbol_gaps(store, name, start=start, end=end)
        ],
    )
