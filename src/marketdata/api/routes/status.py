"""``GET /api/v1/status``: the original plan's status page, from the maintained summaries."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from marketdata.api.deps import SchedulerDep, SettingsDep, StoreDep
from marketdata.api.errors import problem_responses
from marketdata.api.schemas import RUN_EXAMPLE, BackfillSummary
from marketdata.api.security import require_read
from marketdata.service.scheduler import BACKFILL_JOB
from marketdata.service.simulated import data_mode
from marketdata.service.status import SymbolFreshness, service_status
from marketdata.service.watchlist import Watchlist

router = APIRouter(prefix="/api/v1", tags=["status"], dependencies=[Depends(require_read)])


class SymbolState(BaseModel):
    """One symbol's coverage and freshness."""

    symbol: str
    watched: bool = Field(description="On the watchlist (kept current by the backfill).")
    first_date: dt.date | None
    last_date: dt.date | None = Field(description="Last stored session.")
    bars: int
    validation_rate: float | None = Field(description="Share of bars that passed validation.")
    missing_sessions: int = Field(description="XNYS sessions missing inside the stored range.")
    sessions_behind: int | None = Field(
        description="Sessions between the last stored one and the last completed one."
    )
    fresh: bool = Field(description="Stored up to the last completed session.")
    last_fetch: dt.datetime | None
    last_error: str | None

    @classmethod
    def of(cls, s: SymbolFreshness) -> SymbolState:
        """From the service's value."""
        return cls(
            symbol=s.symbol,
            watched=s.watched,
            first_date=s.first_date,
            last_date=s.last_date,
            bars=s.bars,
            validation_rate=round(s.validation_rate, 6) if s.validation_rate is not None else None,
            missing_sessions=s.missing_sessions,
            sessions_behind=s.sessions_behind,
            fresh=s.fresh,
            last_fetch=s.last_fetch,
            last_error=s.last_error,
        )


class BackfillState(BaseModel):
    """The backfill: last run, next run, the scheduler, upstream calls today."""

    last_run: BackfillSummary | None
    next_run: dt.datetime | None = Field(description="Next scheduled run (UTC).")
    scheduler_running: bool
    calls_today: int = Field(description="Upstream calls made by runs started today (UTC).")


class Status(BaseModel):
    """The whole service at a glance."""

    data_mode: str = Field(description="simulated, real or empty.")
    last_completed_session: dt.date = Field(
        description="The latest session closed at the vendor (close plus its delay)."
    )
    symbols: int
    bars: int
    validation_rate: float | None
    missing_sessions: int
    stale_symbols: list[str] = Field(description="Watched symbols not fresh.")
    backfill: BackfillState
    per_symbol: list[SymbolState]


#: A :class:`SymbolState` as the OpenAPI examples show it.
SYMBOL_EXAMPLE = {
    "symbol": "AAPL",
    "watched": True,
    "first_date": "2021-11-24",
    "last_date": "2026-11-23",
    "bars": 1255,
    "validation_rate": 0.999203,
    "missing_sessions": 0,
    "sessions_behind": 0,
    "fresh": True,
    "last_fetch": "2026-11-24T02:00:03Z",
    "last_error": None,
}

EXAMPLE = {
    "data_mode": "real",
    "last_completed_session": "2026-11-23",
    "symbols": 1,
    "bars": 1255,
    "validation_rate": 0.999203,
    "missing_sessions": 0,
    "stale_symbols": [],
    "backfill": {
        "last_run": RUN_EXAMPLE,
        "next_run": "2026-11-25T02:00:00Z",
        "scheduler_running": True,
        "calls_today": 5,
    },
    "per_symbol": [SYMBOL_EXAMPLE],
}


@router.get(
    "/status",
    response_model=Status,
    responses={
        200: {"content": {"application/json": {"example": EXAMPLE}}},
        **problem_responses(401, 403, 503),
    },
)
async def status(store: StoreDep, settings: SettingsDep, scheduler: SchedulerDep) -> Status:
    """Symbols, bars, validation rate, gaps, per-symbol freshness, last and next backfill run
    and upstream calls today; read from maintained summaries only (no scan of the bars)."""
    now = dt.datetime.now(dt.UTC)
    summary = await service_status(
        store,
        config=Watchlist(symbols=settings.symbols, years=settings.backfill_years),
        now=now,
        delay=dt.timedelta(minutes=settings.backfill_delay_minutes),
    )
    info = await scheduler.info()
    job = info.job(BACKFILL_JOB)
    last = summary.last_run
    return Status(
        data_mode=await data_mode(store),
        last_completed_session=summary.last_completed_session,
        symbols=len(summary.symbols),
        bars=summary.bars,
        validation_rate=round(summary.validated / summary.bars, 6) if summary.bars else None,
        missing_sessions=summary.missing_sessions,
        stale_symbols=list(summary.stale),
        backfill=BackfillState(
            last_run=BackfillSummary.model_validate(last, from_attributes=True) if last else None,
            next_run=job.next_run if job else None,
            scheduler_running=info.running,
            calls_today=summary.calls_today,
        ),
        per_symbol=[SymbolState.of(s) for s in summary.symbols],
    )
