"""``/api/v1/backfill``: start a run, follow its progress, read the history of runs."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from marketdata import calendar
from marketdata.api.deps import BackfillerDep, StoreDep
from marketdata.api.errors import problem_responses
from marketdata.api.routes.bars import EARLIEST, LATEST
from marketdata.api.schemas import RUN_EXAMPLE, BackfillSummary
from marketdata.api.security import require_read, require_write
from marketdata.service.backfill import Target, check_fetchable
from marketdata.service.runs import run_history, run_progress
from marketdata.storage.jobs import RunRecord
from marketdata.symbols import normalize_symbols

router = APIRouter(prefix="/api/v1", tags=["backfill"])


class BackfillRequest(BaseModel):
    """What to backfill; every field is optional (default: the whole watchlist)."""

    symbols: list[str] = Field(default_factory=list, max_length=1000, examples=[["AAPL", "MSFT"]])
    start: dt.date | None = Field(
        default=None, ge=EARLIEST, le=LATEST, description="First date (asks again)."
    )
    end: dt.date | None = Field(
        default=None, ge=EARLIEST, le=LATEST, description="Last date (default: last session)."
    )
    years: int | None = Field(default=None, ge=1, le=60)

    @model_validator(mode="after")
    def _consistent(self) -> BackfillRequest:
        if self.start is not None and self.years is not None:
            msg = "give start or years, not both"
            raise ValueError(msg)
        if self.start and self.end and self.start > self.end:
            msg = f"start {self.start} is after end {self.end}"
            raise ValueError(msg)
        return self


class Started(BaseModel):
    """A run that was started."""

    run_id: int
    status_url: str


class SymbolProgress(BaseModel):
    """One symbol of a run."""

    symbol: str
    status: str = Field(description="pending, running, done, failed or interrupted.")
    start_date: dt.date | None
    end_date: dt.date | None
    checkpoint: dt.date | None = Field(description="Last session written.")
    calls: int
    inserted: int
    updated: int
    unchanged: int
    error: str | None


class RunDetail(BackfillSummary):
    """A run with its per-symbol progress."""

    provider: str
    unchanged: int
    message: str | None
    symbols_total: int
    symbols_done: int
    symbols: list[SymbolProgress]

    @classmethod
    def of(cls, run: RunRecord) -> RunDetail:
        """From the stored run."""
        return cls(
            **BackfillSummary.model_validate(run, from_attributes=True).model_dump(),
            provider=run.provider,
            unchanged=run.unchanged,
            message=run.message,
            symbols_total=len(run.symbols),
            symbols_done=sum(s.status == "done" for s in run.symbols),
            symbols=[SymbolProgress.model_validate(s, from_attributes=True) for s in run.symbols],
        )


STARTED = {"run_id": 8, "status_url": "/api/v1/backfill/8"}
DETAIL = {
    **RUN_EXAMPLE,
    "provider": "polygon",
    "unchanged": 0,
    "message": None,
    "symbols_total": 1,
    "symbols_done": 1,
    "symbols": [
        {
            "symbol": "AAPL",
            "status": "done",
            "start_date": "2026-11-19",
            "end_date": "2026-11-23",
            "checkpoint": "2026-11-23",
            "calls": 5,
            "inserted": 15,
            "updated": 0,
            "unchanged": 0,
            "error": None,
        }
    ],
}


@router.post(
    "/backfill",
    status_code=202,
    response_model=Started,
    dependencies=[Depends(require_write)],
    responses={
        202: {"content": {"application/json": {"example": STARTED}}},
        **problem_responses(400, 401, 403, 409, 413, 415, 422),
    },
)
async def start_backfill(
    runner: BackfillerDep, body: BackfillRequest | None = None
) -> JSONResponse:
    """Start a backfill in the background (409 while another one runs).

    A `start` after the last completed session, or a range without any XNYS session, is a 422.
    """
    request = body or BackfillRequest()
    target = Target(
        symbols=tuple(normalize_symbols(request.symbols)),
        start=request.start,
        end=request.end,
        years=request.years,
    )
    check_fetchable(
        target, calendar.last_completed_session(runner.clock(), delay=runner.options.delay)
    )
    run_id = await runner.trigger(target, trigger="api")
    url = f"/api/v1/backfill/{run_id}"
    return JSONResponse(
        Started(run_id=run_id, status_url=url).model_dump(),
        status_code=202,
        headers={"Location": url},
    )


@router.get(
    "/backfill",
    response_model=list[BackfillSummary],
    dependencies=[Depends(require_read)],
    responses={
        200: {"content": {"application/json": {"example": [RUN_EXAMPLE]}}},
        **problem_responses(401, 403, 422),
    },
)
async def list_backfills(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Runs to return.")] = 20,
) -> list[BackfillSummary]:
    """Recent backfill runs, newest first."""
    return [
        BackfillSummary.model_validate(r, from_attributes=True)
        for r in await run_history(store, limit=limit)
    ]


@router.get(
    "/backfill/{run_id}",
    response_model=RunDetail,
    dependencies=[Depends(require_read)],
    responses={
        200: {"content": {"application/json": {"example": DETAIL}}},
        **problem_responses(401, 403, 404, 422),
    },
)
async def backfill_progress(
    store: StoreDep, run_id: Annotated[int, Path(ge=1, le=2**62)]
) -> RunDetail:
    """One run's progress: status, counts and each symbol's checkpoint and error."""
    return RunDetail.of(await run_progress(store, run_id))
