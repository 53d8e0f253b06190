"""The API on both backends: /health and /api/v1/historical/{symbol} shapes and errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from marketdata.api.app import create_app
from marketdata.settings import Settings
from marketdata.storage import open_store
from tests.support.factories import AT, AWKWARD_FLOATS, make_bars


@pytest.fixture
async def seeded(database_url: str) -> str:
    """A database with AAPL (5 bars, mixed validation) and BRK.B (awkward floats)."""
    store = await open_store(database_url)
    try:
        await store.upsert_bars(
            make_bars(
                "AAPL",
                days=5,
                validated=[True, True, False, True, True],
                quality=[1.0, 0.9, 0.1, None, 0.5],
                vwap=[1.5, None, 1.5, 1.5, 1.5],
            ),
            source="test",
            at=AT,
        )
        await store.upsert_bars(
            make_bars("BRK.B", days=len(AWKWARD_FLOATS), close=AWKWARD_FLOATS), source="t", at=AT
        )
    finally:
        await store.aclose()
    return database_url


@pytest.fixture
def client(seeded: str) -> Iterator[TestClient]:
    """An app on the seeded database, lifespan running."""
    with TestClient(create_app(Settings(database_url=seeded, scheduler=False))) as test_client:
        yield test_client


def test_health_reports_database_ok(client: TestClient) -> None:
    """/health is 200 with status, timestamp, version and database state."""
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert dt.datetime.fromisoformat(body["timestamp"]).tzinfo is not None
    assert body["version"]


def test_historical_shape(client: TestClient) -> None:
    """The documented shape: symbol, count, bars with every field."""
    body = client.get("/api/v1/historical/AAPL").json()
    assert body["symbol"] == "AAPL"
    assert body["count"] == 5
    first = body["bars"][0]
    assert set(first) == {
        "date",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "vwap",
        "transactions",
        "quality",
        "validated",
        "flags",
    }
    assert first["date"] == "2024-01-02"
    assert first["validated"] is True
    assert body["bars"][1]["vwap"] is None
    assert body["bars"][3]["quality"] is None


def test_floats_are_exact_over_json(client: TestClient) -> None:
    """JSON carries the shortest exact representation: floats parse back bit-exact."""
    body = client.get("/api/v1/historical/BRK.B").json()
    assert [b["close"] for b in body["bars"]] == AWKWARD_FLOATS


@pytest.mark.parametrize(
    ("query", "dates"),
    [
        ("start=2024-01-03&end=2024-01-05", ["2024-01-03", "2024-01-04", "2024-01-05"]),
        ("validated_only=true", ["2024-01-02", "2024-01-03", "2024-01-05", "2024-01-08"]),
        ("min_quality=0.5", ["2024-01-02", "2024-01-03", "2024-01-08"]),
        ("start=2030-01-01", []),
    ],
)
def test_historical_filters(client: TestClient, query: str, dates: list[str]) -> None:
    """start/end/validated_only/min_quality filter the bars."""
    body = client.get(f"/api/v1/historical/AAPL?{query}").json()
    assert [b["date"] for b in body["bars"]] == dates
    assert body["count"] == len(dates)


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/api/v1/historical/NOPE", 404, "NotFound"),
        ("/api/v1/historical/AAPL?start=2024-02-01&end=2024-01-01", 422, "InputError"),
    ],
)
def test_historical_errors(client: TestClient, path: str, status: int, error: str) -> None:
    """Unknown symbols and swapped ranges are clear errors."""
    response = client.get(path)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["detail"]


@pytest.mark.parametrize(
    "query", ["start=yesterday", "min_quality=2", "validated_only=maybe", "end=2024-13-01"]
)
def test_bad_parameters_are_422(client: TestClient, query: str) -> None:
    """Malformed parameters are rejected with 422 and a detail."""
    response = client.get(f"/api/v1/historical/AAPL?{query}")
    assert response.status_code == 422
    assert response.json()["detail"]


def test_openapi_documents_the_endpoints(client: TestClient) -> None:
    """The OpenAPI schema lists the endpoints with summaries."""
    spec = client.get("/openapi.json").json()
    assert "/health" in spec["paths"]
    assert "/api/v1/historical/{symbol}" in spec["paths"]
    assert spec["paths"]["/api/v1/historical/{symbol}"]["get"]["summary"]


def test_health_is_503_when_the_store_is_gone(database_url: str) -> None:
    """A store that no longer answers turns /health into 503 naming the database."""
    settings = Settings(database_url=database_url, simulate=False, scheduler=False)
    with TestClient(create_app(settings)) as test_client:
        store = test_client.app_state["store"]
        test_client.portal.call(store.aclose)  # type: ignore[union-attr]
        response = test_client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["database"]) == ("degraded", "unreachable")
    assert body["database_detail"]


@pytest.mark.postgres
def test_health_recovers_after_postgres_drops_connections(postgres_session_url: str) -> None:
    """Killed server connections give one 503, then the pool reconnects and /health is 200."""
    import psycopg

    with TestClient(
        create_app(Settings(database_url=postgres_session_url, scheduler=False))
    ) as test_client:
        assert test_client.get("/health").status_code == 200
        with psycopg.connect(postgres_session_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        first = test_client.get("/health")
        assert first.status_code == 503
        assert "PostgreSQL" in first.json()["database_detail"]
        assert test_client.get("/health").status_code == 200
