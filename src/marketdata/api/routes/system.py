"""Service-level endpoints: health."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from marketdata import __version__
from marketdata.api.deps import StoreDep
from marketdata.api.schemas import Health
from marketdata.errors import StorageError

router = APIRouter(tags=["system"])


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database does not answer."}},
)
async def health(store: StoreDep) -> JSONResponse:
    """Liveness and readiness: 200 when the database answers, 503 naming what failed."""
    detail: str | None = None
    try:
        await store.ping()
        database = "ok"
    except StorageError as exc:
        database, detail = "unreachable", str(exc)
    body = Health(
        status="ok" if database == "ok" else "degraded",
        timestamp=dt.datetime.now(dt.UTC),
        version=__version__,
        database=database,
        database_detail=detail,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if database == "ok" else 503)
