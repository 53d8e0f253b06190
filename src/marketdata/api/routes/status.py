"""``GET /api/v1/status``: the original plan's status page, from the maintained summaries."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from marketdata.api.deps import SchedulerDep, SettingsDep, StoreDep
from marketdata.api.errors import problem_responses
from marketdata.api.schemas import RUN_EXAMPLE, BackfillSummary
from marketdata.api.security import require_read
from marketdata.errors import InputError
from marketdata.service.scheduler import BACKFILL_JOB
from marketdata.service.status import STALE_NAMED, SymbolFreshness, status_overview
from marketdata.symbols import normalize_symbol

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
    stale_count: int = Field(description="Watched symbols not fresh (all of them).")
    stale_symbols: list[str] = Field(
        description=(
            f"Up to {STALE_NAMED} watched symbols not fresh, the most behind first; "
            "`stale_count` counts them all and `?stale=true` pages through every one."
        )
    )
    backfill: BackfillState
    per_symbol: list[SymbolState] = Field(
        description="One page of symbols (stored or watched), by symbol."
    )
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page of `per_symbol`; null on the last page."
    )


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
    "stale_count": 0,
    "stale_symbols": [],
    "backfill": {
        "last_run": RUN_EXAMPLE,
        "next_run": "2026-11-25T02:00:00Z",
        "scheduler_running": True,
        "calls_today": 5,
    },
    "per_symbol": [SYMBOL_EXAMPLE],
    "next_cursor": None,
}


def _symbol_json(s: SymbolFreshness) -> dict[str, Any]:
    """:class:`SymbolState`'s JSON without building a model per symbol (pages run to 10,000)."""
    rate = s.validation_rate
    return {
        "symbol": s.symbol,
        "watched": s.watched,
        "first_date": s.first_date,
        "last_date": s.last_date,
        "bars": s.bars,
        "validation_rate": round(rate, 6) if rate is not None else None,
        "missing_sessions": s.missing_sessions,
        "sessions_behind": s.sessions_behind,
        "fresh": s.fresh,
        "last_fetch": s.last_fetch,
        "last_error": s.last_error,
    }


def encode_cursor(after: str) -> str:
    """An opaque cursor continuing after the symbol ``after``."""
    return base64.urlsafe_b64encode(orjson.dumps({"after": after})).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The symbol a cursor continues after; :class:`InputError` if it is not one of ours."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)))
        given = data["after"] if isinstance(data, dict) else None
        after = normalize_symbol(given) if isinstance(given, str) else None
    except (ValueError, KeyError, TypeError, binascii.Error, InputError):
        after = None
    if after is None:
        raise InputError("invalid cursor: pass the next_cursor of a previous answer")
    return after


@router.get(
    "/status",
    response_model=Status,
    responses={
        200: {"content": {"application/json": {"example": EXAMPLE}}},
        **problem_responses(400, 401, 403, 422, 503),
    },
)
async def status(
    store: StoreDep,
    settings: SettingsDep,
    scheduler: SchedulerDep,
    limit: Annotated[
        int,
        Query(ge=1, le=10_000, description="Symbols in `per_symbol` (one page), by symbol."),
    ] = 100,
    cursor: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Continue `per_symbol`: the `next_cursor` of the previous answer.",
        ),
    ] = None,
    stale: Annotated[
        bool, Query(description="Only watched symbols that are not fresh in `per_symbol`.")
    ] = False,
) -> Response:
    """Symbols, bars, validation rate, gaps, stale symbols, per-symbol freshness (one page),
    last and next backfill run and upstream calls today.

    Read from maintained summaries only (the status table through its indexes, the latest
    run): a few milliseconds with 10,000 symbols, never a scan of the bars.
    """
    now = dt.datetime.now(dt.UTC)
    view = await status_overview(
        store,
        now=now,
        delay=dt.timedelta(minutes=settings.backfill_delay_minutes),
        after=decode_cursor(cursor) if cursor is not None else None,
        limit=limit,
        stale_only=stale,
    )
    totals, last = view.totals, view.last_run
    body = {
        "data_mode": view.data_mode,
        "last_completed_session": view.last_completed_session,
        "symbols": totals.symbols,
        "bars": totals.bars,
        "validation_rate": round(totals.validated / totals.bars, 6) if totals.bars else None,
        "missing_sessions": totals.missing_sessions,
        "stale_count": totals.stale,
        "stale_symbols": view.stale,
        "backfill": {
            "last_run": (
                BackfillSummary.model_validate(last, from_attributes=True).model_dump()
                if last
                else None
            ),
            "next_run": scheduler.next_run(BACKFILL_JOB),
            "scheduler_running": scheduler.running,
            "calls_today": view.calls_today,
        },
        "per_symbol": [_symbol_json(s) for s in view.page],
        "next_cursor": encode_cursor(view.next_after) if view.next_after else None,
    }
    return Response(orjson.dumps(body, option=orjson.OPT_UTC_Z), media_type="application/json")
