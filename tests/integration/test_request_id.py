"""Context ids in real log lines: X-Request-ID per HTTP request, run_id per backfill run."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from marketdata.api.app import create_app
from marketdata.logs import configure
from marketdata.service.backfill import Target
from marketdata.service.runs import backfiller
from marketdata.settings import Settings
from marketdata.storage import Store
from tests.support.logs import loggers_restored

KEY = "write-key-0123456789"
NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """JSON logs of the marketdata and uvicorn loggers, captured; restored afterwards."""
    with loggers_restored():
        stream = io.StringIO()
        configure("INFO", secrets=[KEY], fmt="json", stream=stream)
        yield stream


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    """The JSON log lines written so far."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture
def client(sqlite_template: Path, tmp_path: Path) -> Iterator[TestClient]:
    """The real app on an empty SQLite database, with one write key configured."""
    path = tmp_path / "marketdata.db"
    shutil.copyfile(sqlite_template, path)
    settings = Settings(
        database_url=f"sqlite:///{path}", scheduler=False, simulate=False, api_keys=KEY
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_a_sane_incoming_id_is_echoed_and_logged(client: TestClient, logged: io.StringIO) -> None:
    """The caller's X-Request-ID comes back and is on the log line the request caused."""
    response = client.post(
        "/api/v1/symbols",
        json={"symbol": "AAPL"},
        headers={"X-Request-ID": "edge-42.retry_1", "X-API-Key": "wrong-key-000"},
    )
    assert response.status_code == 401
    assert response.headers["X-Request-ID"] == "edge-42.retry_1"
    refused = [r for r in records(logged) if r["event"] == "api_key_refused"]
    assert [r["request_id"] for r in refused] == ["edge-42.retry_1"]
    assert KEY not in logged.getvalue()


def test_an_id_is_made_when_none_is_sent(client: TestClient) -> None:
    """Without the header each response gets a fresh 32-hex-digit id."""
    first = client.get("/health").headers["X-Request-ID"]
    second = client.get("/health").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert re.fullmatch(r"[0-9a-f]{32}", second)
    assert first != second


@pytest.mark.parametrize(
    "given",
    ["x" * 65, "has space", "semi;colon", "new\\nline", "ünïcode", "<script>", ""],
)
def test_an_insane_id_is_replaced(client: TestClient, logged: io.StringIO, given: str) -> None:
    """Too long, odd characters or empty: the id is replaced, in the header and in the log."""
    response = client.post(
        "/api/v1/symbols",
        json={"symbol": "AAPL"},
        headers={b"X-Request-ID": given.encode(), b"X-API-Key": b"wrong-key-000"},
    )
    echoed = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", echoed)
    refused = [r for r in records(logged) if r["event"] == "api_key_refused"]
    assert [r["request_id"] for r in refused] == [echoed]


def test_errors_carry_the_id_too(client: TestClient) -> None:
    """A 404 problem answer still has the header (the id wraps every answer)."""
    response = client.get("/api/v1/historical/ZZZZ", headers={"X-Request-ID": "trace-404"})
    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "trace-404"


async def test_every_line_of_a_backfill_run_carries_its_run_id(
    store: Store, logged: io.StringIO
) -> None:
    """Lines logged while a run executes carry run_id; lines after it do not."""
    runner = backfiller(store, Settings(symbols=("AAPL",)), provider="synthetic", clock=lambda: NOW)
    outcome = await runner.run(Target(symbols=("AAPL",), years=1))
    logging.getLogger("marketdata.tests").info("after the run", extra={"event": "after"})
    lines = records(logged)
    events = {r["event"]: r for r in lines}
    assert events["backfill_started"]["run_id"] == outcome.run_id
    assert events["backfill_finished"]["run_id"] == outcome.run_id  # from the context
    assert "run_id" not in events["after"]
    started = lines.index(events["backfill_started"])
    finished = lines.index(events["backfill_finished"])
    assert all(r.get("run_id") == outcome.run_id for r in lines[started : finished + 1])


def test_a_500_names_the_same_id_in_header_body_and_log(
    sqlite_template: Path, tmp_path: Path, logged: io.StringIO
) -> None:
    """An unhandled error answers with the request's own id, which its log line carries."""
    path = tmp_path / "marketdata.db"
    shutil.copyfile(sqlite_template, path)
    app = create_app(Settings(database_url=f"sqlite:///{path}", scheduler=False, simulate=False))

    async def boom() -> None:
        raise RuntimeError("internal state")

    app.add_api_route("/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        response = test_client.get("/boom", headers={"X-Request-ID": "trace-500"})
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "trace-500"
    assert "trace-500" in response.json()["detail"]
    (error,) = [r for r in records(logged) if r["event"] == "api_unhandled_error"]
    assert error["request_id"] == "trace-500"
    assert "RuntimeError: internal state" in error["exception"]
