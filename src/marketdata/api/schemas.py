"""Response models: the public API contract (documented in OpenAPI)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Bar(BaseModel):
    """One daily bar; ``fields=`` may leave out any member but ``date``."""

    # Documentation only (bars are written by polars): only ``date`` is always present.
    model_config = ConfigDict(json_schema_extra={"required": ["date"]})

    date: dt.date = Field(description="Exchange session date (America/New_York).")
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float | None = Field(
        description="Volume-weighted average price, when the source gave one."
    )
    transactions: int | None = Field(description="Number of trades, when the source gave one.")
    quality: float | None = Field(description="Quality score 0–1; null until validated.")
    validated: bool = Field(description="True when the bar passed every hard check.")
    flags: list[str] = Field(
        default_factory=list, description="Names of the validation rules the bar tripped."
    )


class BarsResponse(BaseModel):
    """Bars of one symbol, oldest first."""

    symbol: str
    adjusted: Literal["none", "splits", "all"] = "splits"
    count: int
    bars: list[Bar]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to continue; null when this is the end."
    )


class BackfillSummary(BaseModel):
    """A backfill run in brief."""

    id: int
    status: str = Field(description="running, succeeded, partial, failed or interrupted.")
    trigger: str = Field(description="manual, scheduled or api.")
    started_at: dt.datetime
    finished_at: dt.datetime | None
    calls: int = Field(description="Upstream calls made.")
    inserted: int
    updated: int
    errors: int


class BackupSummary(BaseModel):
    """The newest backup attempt (``marketdata backup`` or the weekly job) and the last good one."""

    at: dt.datetime = Field(description="When the attempt ended.")
    ok: bool = Field(description="Written and, when verification ran, verified.")
    name: str | None = Field(default=None, description="The backup file's name.")
    verified: bool | None = Field(
        default=None, description="Restored into a scratch database and compared (null: not run)."
    )
    size: int | None = Field(default=None, description="Bytes.")
    error: str | None = Field(default=None, description="Why the attempt failed.")
    last_success: dt.datetime | None = Field(default=None, description="The last good backup.")
    last_success_name: str | None = None


class Health(BaseModel):
    """Liveness and readiness."""

    status: Literal["ok", "degraded"]
    timestamp: dt.datetime
    version: str
    database: Literal["ok", "unreachable"]
    database_detail: str | None = None
    scheduler_running: bool = Field(
        default=False, description="Whether this process runs the scheduler (daily backfill)."
    )
    last_backfill: BackfillSummary | None = Field(
        default=None, description="The latest backfill run (by any process)."
    )
    next_backfill: dt.datetime | None = Field(
        default=None, description="When the daily backfill runs next (UTC)."
    )
    data_mode: Literal["simulated", "real", "empty", "unknown"] = Field(
        default="unknown",
        description="'simulated' while synthetic bars are served (no API key), 'real' otherwise.",
    )
    notice: str | None = Field(default=None, description="What the user should know, if anything.")
    last_backup: BackupSummary | None = Field(
        default=None, description="The newest backup attempt (by any process); null: none yet."
    )
    next_backup: dt.datetime | None = Field(
        default=None, description="When the weekly backup runs next (UTC); null: not scheduled."
    )


class Root(BaseModel):
    """What this service is and where to go next."""

    name: str
    version: str
    docs: str
    redoc: str
    openapi: str
    health: str
    dashboard: str = Field(default="/dashboard", description="The web dashboard.")
    data_mode: Literal["simulated", "real", "empty", "unknown"]
    notice: str | None = None


#: A :class:`BackfillSummary` as the OpenAPI examples show it.
RUN_EXAMPLE = {
    "id": 7,
    "status": "succeeded",
    "trigger": "scheduled",
    "started_at": "2026-11-24T02:00:00Z",
    "finished_at": "2026-11-24T02:00:04Z",
    "calls": 5,
    "inserted": 15,
    "updated": 0,
    "errors": 0,
}
