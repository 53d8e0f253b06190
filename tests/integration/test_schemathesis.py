"""schemathesis against the app's own ``/openapi.json``: generated requests to every operation
(writes included) get no 5xx, and only statuses, content types and bodies the document declares.

One backend is enough here (SQLite; the API's backends are tested on both elsewhere). Each
operation gets positive and negative examples within a fixed budget, derandomized, so CI sends
the same requests every time. Writes send the key; with no Polygon key, the backfills they start
use the local synthetic provider (a second one while one runs is the documented 409).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from marketdata.api.app import create_app
from marketdata.providers.simulator import MarketSimulator
from marketdata.service.quality import write_bars
from marketdata.service.simulated import SYNTHETIC
from marketdata.settings import Settings
from marketdata.storage import open_store

KEY = "k-0123456789abcdef"
YEAR_END = dt.date(2024, 12, 31)
AT = dt.datetime(2025, 1, 2, 22, 0, tzinfo=dt.UTC)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


async def _seed(url: str) -> None:
    """AAPL and MSFT for 2024, as simulated bars (so the API's backfills may add more)."""
    store = await open_store(url)
    try:
        bars = MarketSimulator(seed=5).bars(["AAPL", "MSFT"], dt.date(2024, 1, 2), YEAR_END)
        await write_bars(store, bars, source=SYNTHETIC, at=AT)
    finally:
        await store.aclose()


def _settings(url: str) -> Settings:
    return Settings(
        database_url=url,
        simulate=False,
        scheduler=False,
        symbols=("AAPL", "MSFT"),
        backfill_years=1,
        api_keys=(KEY,),
    )


def _document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document ``app`` serves (reading it needs no lifespan, hence no database)."""
    document: dict[str, Any] = TestClient(app).get("/openapi.json").json()
    return document


#: Loaded at import so that each operation is a test of its own (schemathesis' fixture-based
#: loader does not run under pytest 9); ``app`` checks that its app serves this same document.
DOCUMENT = _document(create_app(_settings("sqlite:///unused.db")))
schema = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture
def app(tmp_path: Path, sqlite_template: Path) -> FastAPI:
    """The app on a seeded SQLite database. schemathesis runs its lifespan (which opens the
    store) on the first request and ends it when the test ends."""
    path = tmp_path / "marketdata.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    asyncio.run(_seed(url))
    served = create_app(_settings(url))
    assert _document(served) == DOCUMENT
    return served


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    # One app (and database) per operation, shared by its examples, as a real server would be.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_keeps_to_its_schema(app: FastAPI, case: schemathesis.Case[Any]) -> None:
    """Every operation answers generated requests without a 5xx, with a declared status, a
    declared content type and a body its schema allows."""
    case.call_and_validate(app=app, headers={"X-API-Key": KEY}, checks=CHECKS)
