"""``/api/v1/symbols``: the watchlist, and adding or removing a symbol (which starts or stops
its backfill)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from marketdata.api.deps import BackfillerDep, SettingsDep, StoreDep
from marketdata.api.errors import problem_responses
from marketdata.api.routes.status import SYMBOL_EXAMPLE, SymbolState
from marketdata.api.security import require_read, require_write
from marketdata.errors import Conflict
from marketdata.service import watchlist
from marketdata.service.backfill import Target
from marketdata.service.status import service_status
from marketdata.settings import Settings
from marketdata.symbols import MAX_LENGTH, normalize_symbol

router = APIRouter(prefix="/api/v1", tags=["symbols"])


class WatchedSymbol(SymbolState):
    """A watched symbol with its stored history."""

    origin: str = Field(description="config (MARKETDATA_SYMBOLS) or user (added).")
    years: int = Field(description="Years of history the backfill keeps.")


class AddSymbol(BaseModel):
    """A symbol to watch."""

    symbol: str = Field(
        min_length=1, max_length=MAX_LENGTH, examples=["NVDA"], description="e.g. NVDA, BRK.B"
    )
    years: int | None = Field(
        default=None, ge=1, le=60, examples=[5], description="History to keep (default 5)."
    )


class Added(BaseModel):
    """What adding did."""

    symbol: str
    years: int
    watching: bool = True
    run_id: int | None = Field(description="The backfill started for it (None: one is running).")
    detail: str


class Removed(BaseModel):
    """What removing did."""

    symbol: str
    removed: bool
    purged_bars: int


WATCHED = [{**SYMBOL_EXAMPLE, "origin": "config", "years": 5}]
ADDED = {
    "symbol": "NVDA",
    "years": 5,
    "watching": True,
    "run_id": 8,
    "detail": "watching NVDA; backfill run 8 started",
}
REMOVED = {"symbol": "NVDA", "removed": True, "purged_bars": 0}


def _config(settings: Settings) -> watchlist.Watchlist:
    return watchlist.Watchlist(symbols=settings.symbols, years=settings.backfill_years)


@router.get(
    "/symbols",
    response_model=list[WatchedSymbol],
    dependencies=[Depends(require_read)],
    responses={
        200: {"content": {"application/json": {"example": WATCHED}}},
        **problem_responses(401, 403),
    },
)
async def list_symbols(store: StoreDep, settings: SettingsDep) -> list[WatchedSymbol]:
    """The watchlist, each symbol with its stored range, bars, quality and freshness."""
    now = dt.datetime.now(dt.UTC)
    config = _config(settings)
    entries = {w.symbol: w for w in await watchlist.watched(store, config, at=now)}
    summary = await service_status(
        store,
        config=config,
        now=now,
        delay=dt.timedelta(minutes=settings.backfill_delay_minutes),
        symbols=sorted(entries),
    )
    return [
        WatchedSymbol(
            **SymbolState.of(s).model_dump(),
            origin=entries[s.symbol].origin,
            years=entries[s.symbol].years,
        )
        for s in summary.symbols
        if s.symbol in entries
    ]


@router.post(
    "/symbols",
    status_code=202,
    response_model=Added,
    dependencies=[Depends(require_write)],
    responses={
        202: {"content": {"application/json": {"example": ADDED}}},
        **problem_responses(400, 401, 403, 413, 415, 422),
    },
)
async def add_symbol(
    body: AddSymbol, store: StoreDep, settings: SettingsDep, runner: BackfillerDep
) -> JSONResponse:
    """Watch a symbol and start fetching its history (202: the backfill runs in the
    background; follow it at `/api/v1/backfill/{run_id}`)."""
    symbol = normalize_symbol(body.symbol)
    years = body.years or settings.backfill_years
    await watchlist.add(
        store, [symbol], years=body.years, config=_config(settings), at=dt.datetime.now(dt.UTC)
    )
    try:
        run_id: int | None = await runner.trigger(
            Target(symbols=(symbol,), years=years), trigger="api"
        )
        detail = f"watching {symbol}; backfill run {run_id} started"
    except Conflict:
        run_id = None
        detail = f"watching {symbol}; a backfill is running, the next one fetches it"
    added = Added(symbol=symbol, years=years, run_id=run_id, detail=detail)
    headers = {"Location": f"/api/v1/backfill/{run_id}"} if run_id is not None else {}
    return JSONResponse(added.model_dump(), status_code=202, headers=headers)


@router.delete(
    "/symbols/{symbol}",
    response_model=Removed,
    dependencies=[Depends(require_write)],
    responses={
        200: {"content": {"application/json": {"example": REMOVED}}},
        **problem_responses(401, 403, 404, 422),
    },
)
async def remove_symbol(
    store: StoreDep,
    settings: SettingsDep,
    symbol: Annotated[str, Path(min_length=1, max_length=MAX_LENGTH, examples=["NVDA"])],
    purge: Annotated[
        bool, Query(description="Also delete its stored bars, revisions and actions.")
    ] = False,
) -> Removed:
    """Stop watching a symbol; its stored bars stay unless `purge=true`."""
    change = (
        await watchlist.remove(
            store,
            [normalize_symbol(symbol)],
            purge=purge,
            config=_config(settings),
            at=dt.datetime.now(dt.UTC),
        )
    )[0]
    return Removed(symbol=change.symbol, removed=change.changed, purged_bars=change.purged_bars)
