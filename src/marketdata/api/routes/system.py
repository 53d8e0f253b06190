"""Service-level endpoints: health."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from marketdata import __version__
from marketdata.api.deps import SchedulerDep, StoreDep
from marketdata.api.schemas import RUN_EXAMPLE, BackfillSummary, BackupSummary, Health, Root
from marketdata.errors import StorageError
from marketdata.service.backup_run import BACKUP_JOB, last_backup
from marketdata.service.scheduler import BACKFILL_JOB
from marketdata.service.simulated import SIMULATED_NOTICE, data_mode

DataModeName = Literal["simulated", "real", "empty", "unknown"]

router = APIRouter(tags=["system"])

HEALTHY = {
    "status": "ok",
    "timestamp": "2026-11-24T14:30:00Z",
    "version": __version__,
    "database": "ok",
    "database_detail": None,
    "scheduler_running": True,
    "last_backfill": RUN_EXAMPLE,
    "next_backfill": "2026-11-25T02:00:00Z",
    "data_mode": "real",
    "notice": None,
    "last_backup": {
        "at": "2026-11-22T03:00:41Z",
        "ok": True,
        "name": "marketdata-20261122T030000Z.pgdump",
        "verified": True,
        "size": 52_428_800,
        "error": None,
        "last_success": "2026-11-22T03:00:41Z",
        "last_success_name": "marketdata-20261122T030000Z.pgdump",
    },
    "next_backup": "2026-11-29T03:00:00Z",
}
DEGRADED = {
    **HEALTHY,
    "status": "degraded",
    "database": "unreachable",
    "database_detail": "cannot connect to the database",
    "last_backfill": None,
    "next_backfill": None,
    "data_mode": "unknown",
    "last_backup": None,
    "next_backup": None,
}
ROOT = {
    "name": "marketdata",
    "version": __version__,
    "docs": "/docs",
    "redoc": "/redoc",
    "openapi": "/openapi.json",
    "health": "/health",
    "dashboard": "/dashboard",
    "data_mode": "real",
    "notice": None,
}


@router.get(
    "/health",
    response_model=Health,
    responses={
        200: {"content": {"application/json": {"example": HEALTHY}}},
        503: {
            "model": Health,
            "description": "The database does not answer.",
            "content": {"application/json": {"example": DEGRADED}},
        },
    },
)
async def health(store: StoreDep, scheduler: SchedulerDep) -> JSONResponse:
    """Liveness and readiness: 200 when the database answers, 503 naming what failed."""
    detail: str | None = None
    mode: DataModeName = "unknown"
    last: BackfillSummary | None = None
    next_run: dt.datetime | None = None
    backup: BackupSummary | None = None
    next_backup: dt.datetime | None = None
    try:
        await store.ping()
        database = "ok"
        mode = await data_mode(store)
        runs = await store.list_runs(limit=1)
        if runs:
            last = BackfillSummary.model_validate(runs[0], from_attributes=True)
        info = await scheduler.info()
        job, backup_job = info.job(BACKFILL_JOB), info.job(BACKUP_JOB)
        next_run = job.next_run if job else None
        next_backup = backup_job.next_run if backup_job else None
        state = await last_backup(store)
        if state is not None:
            backup = BackupSummary.model_validate(state, from_attributes=True)
    except StorageError as exc:
        database, detail = "unreachable", str(exc)
    body = Health(
        status="ok" if database == "ok" else "degraded",
        timestamp=dt.datetime.now(dt.UTC),
        version=__version__,
        database=database,
        database_detail=detail,
        scheduler_running=scheduler.running,
        last_backfill=last,
        next_backfill=next_run,
        data_mode=mode,
        notice=SIMULATED_NOTICE if mode == "simulated" else None,
        last_backup=backup,
        next_backup=next_backup,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if database == "ok" else 503)


_DOWN = "The database does not answer: /health names the problem."


@router.get(
    "/", response_model=Root, responses={200: {"content": {"application/json": {"example": ROOT}}}}
)
async def root(store: StoreDep) -> Root:
    """What this service is, where its docs are, and whether its data is simulated (``unknown``
    while the database does not answer: see ``/health``)."""
    try:
        mode: DataModeName = await data_mode(store)
    except StorageError:
        mode = "unknown"
    return Root(
        name="marketdata",
        version=__version__,
        docs="/docs",
        redoc="/redoc",
        openapi="/openapi.json",
        health="/health",
        dashboard="/dashboard",
        data_mode=mode,
        notice=SIMULATED_NOTICE if mode == "simulated" else _DOWN if mode == "unknown" else None,
    )
