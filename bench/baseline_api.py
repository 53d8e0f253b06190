"""The original plan's read API, kept as the baseline of ``bench/api.py``.

The plan's style: FastAPI, a SQLAlchemy 2 ORM class mapped over the ``bars`` table, a sync
session per request, one pydantic ``BarOut`` per bar and ``response_model`` doing the
serialization. JSON only (the plan had no CSV or Parquet). It reads the same database as the
real app; serve it with::

    BENCH_BASELINE_DATABASE_URL=sqlite:///path.db \
        uv run python -m uvicorn --app-dir bench --factory baseline_api:create_app --port 8001

(``postgresql+psycopg://host:port/db`` for PostgreSQL). Not part of marketdata: nothing in
``src`` imports it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import BigInteger, DateTime, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

#: The environment variable holding the SQLAlchemy URL of the database to serve.
URL_VARIABLE = "BENCH_BASELINE_DATABASE_URL"


class Base(DeclarativeBase):
    """The plan's declarative base."""


class Bar(Base):
    """One stored daily bar: every column of ``bars``, as the plan's model declared them."""

    __tablename__ = "bars"

    symbol: Mapped[str] = mapped_column(primary_key=True)
    date: Mapped[dt.date] = mapped_column(primary_key=True)
    open: Mapped[float]
    high: Mapped[float]
    low: Mapped[float]
    close: Mapped[float]
    volume: Mapped[float]
    vwap: Mapped[float | None]
    transactions: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str]
    quality: Mapped[float | None]
    flags: Mapped[int] = mapped_column(BigInteger)
    validated: Mapped[bool]
    ingested_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class BarOut(BaseModel):
    """One bar in an answer (the fields our API returns; flags as the stored bit mask)."""

    model_config = ConfigDict(from_attributes=True)

    date: dt.date
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float | None
    transactions: int | None
    quality: float | None
    validated: bool
    flags: int


class BarsOut(BaseModel):
    """A symbol's bars, oldest first."""

    symbol: str
    count: int
    bars: list[BarOut]


def get_session(request: Request) -> Iterator[Session]:
    """A session of the app's engine, closed after the request."""
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
router = APIRouter()


@router.get("/health")
def health() -> dict[str, str]:
    """200 once the app is up."""
    return {"status": "ok"}


@router.get("/api/v1/historical/{symbol}", response_model=BarsOut)
def historical(symbol: str, session: SessionDep) -> BarsOut:
    """All stored bars of ``symbol``, oldest first (raw, as stored)."""
    rows = session.scalars(select(Bar).where(Bar.symbol == symbol).order_by(Bar.date)).all()
    if not rows:
        raise HTTPException(status_code=404, detail=f"no bars stored for {symbol}")
    bars = [BarOut.model_validate(row) for row in rows]
    return BarsOut(symbol=symbol, count=len(bars), bars=bars)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The engine lives as long as the app (the plan's ``SessionLocal``)."""
    engine = create_engine(os.environ[URL_VARIABLE])
    app.state.sessions = sessionmaker(engine)
    try:
        yield
    finally:
        engine.dispose()


def create_app() -> FastAPI:
    """The baseline app over the database named in ``BENCH_BASELINE_DATABASE_URL``."""
    app = FastAPI(title="marketdata baseline (original plan)", lifespan=lifespan)
    app.include_router(router)
    return app
