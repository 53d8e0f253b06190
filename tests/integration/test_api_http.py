"""HTTP details of the read API: forged cursors, content negotiation with weights, conditional
requests, caching with keys, CORS-exposed headers, Polygon's ``apiKey``, and ``/`` with the
database down."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketdata.api.app import create_app
from marketdata.api.routes.bars import etag_matches, negotiate
from marketdata.settings import Settings
from marketdata.storage import open_store
from tests.support.factories import AT, make_bars

KEY = "read-key-0123456789"


@pytest.fixture
async def seeded(database_url: str) -> str:
    """AAPL and MSFT, five bars each."""
    store = await open_store(database_url)
    try:
        for symbol in ("AAPL", "MSFT"):
            await store.upsert_bars(make_bars(symbol, days=5), source="test", at=AT)
    finally:
        await store.aclose()
    return database_url


@pytest.fixture
def client(seeded: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=seeded, scheduler=False))) as test_client:
        yield test_client


@pytest.fixture
def keyed(seeded: str) -> Iterator[TestClient]:
    """Reads need a key; CORS on for one origin."""
    config = Settings(
        database_url=seeded,
        scheduler=False,
        api_keys=[KEY],
        require_key_for_reads=True,
        cors_origins=["https://app.example"],
    )
    with TestClient(create_app(config)) as test_client:
        yield test_client


def _cursor(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=_JSON | st.fixed_dictionaries({"after": _JSON}))
def test_forged_cursors_are_422_never_500(client: TestClient, payload: object) -> None:
    """Any JSON at all inside a cursor: a clear 422 (or a page, if it names a real place)."""
    cursor = _cursor(payload)
    for path in ("/api/v1/status", "/api/v1/historical/AAPL"):
        answer = client.get(path, params={"cursor": cursor})
        assert answer.status_code in (200, 422), (path, payload, answer.text)
        if answer.status_code == 422:
            assert answer.headers["content-type"] == "application/problem+json"
            assert "cursor" in answer.json()["detail"]


def test_status_cursor_with_a_number_inside_is_422(client: TestClient) -> None:
    answer = client.get("/api/v1/status", params={"cursor": _cursor({"after": 5})})
    assert answer.status_code == 422
    assert "invalid cursor" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "json"),
        ("text/csv", "csv"),
        ("text/csv;q=0.1, application/json", "json"),
        ("application/json;q=0, text/csv", "csv"),
        ("application/vnd.apache.parquet;q=0.5, text/csv;q=0.9", "csv"),
        ("text/csv, application/vnd.apache.parquet", "csv"),  # equal weights: the first
        ("application/vnd.apache.parquet;q=1, text/csv;q=1.0", "parquet"),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "json"),
        ("text/*", "csv"),
        ("text/csv;q=0", "json"),  # nothing acceptable we serve: the documented default
        ("text/csv;q=bogus, application/x-parquet", "parquet"),
        ("image/png", "json"),
    ],
)
def test_accept_weights_decide_the_format(accept: str | None, expected: str) -> None:
    assert negotiate(None, accept) == expected


def test_format_parameter_beats_accept() -> None:
    assert negotiate("parquet", "text/csv") == "parquet"


def test_accept_header_on_the_wire(client: TestClient) -> None:
    answer = client.get("/api/v1/historical/AAPL", headers={"Accept": "text/csv;q=0.1, */*"})
    assert answer.headers["content-type"].startswith("application/json")
    answer = client.get(
        "/api/v1/historical/AAPL", headers={"Accept": "application/json;q=0.2, text/csv"}
    )
    assert answer.headers["content-type"].startswith("text/csv")


def test_if_none_match_lists_and_star() -> None:
    tag = '"abc"'
    assert etag_matches(tag, tag)
    assert etag_matches('W/"abc"', tag)
    assert etag_matches('"x", "abc"', tag)
    assert etag_matches('"x",W/"abc"', tag)
    assert etag_matches("*", tag)
    assert not etag_matches('"x", "y"', tag)
    assert not etag_matches(None, tag)
    assert not etag_matches("", tag)


def test_conditional_read_with_several_tags_is_304(client: TestClient) -> None:
    first = client.get("/api/v1/historical/AAPL")
    etag = first.headers["etag"]
    again = client.get("/api/v1/historical/AAPL", headers={"If-None-Match": f'"other", {etag}'})
    assert again.status_code == 304
    assert again.headers["etag"] == etag
    star = client.get("/api/v1/historical/AAPL", headers={"If-None-Match": "*"})
    assert star.status_code == 304
    miss = client.get("/api/v1/historical/AAPL", headers={"If-None-Match": '"other"'})
    assert miss.status_code == 200


def test_open_reads_are_publicly_cacheable(client: TestClient) -> None:
    answer = client.get("/api/v1/historical/AAPL")
    assert answer.headers["cache-control"] == "max-age=60, must-revalidate"


def test_keyed_reads_are_private_and_expose_paging_headers(keyed: TestClient) -> None:
    answer = keyed.get(
        "/api/v1/historical/AAPL",
        headers={"X-API-Key": KEY, "Origin": "https://app.example"},
    )
    assert answer.status_code == 200
    assert answer.headers["cache-control"].split(", ")[0] == "private"
    exposed = {
        h.strip().lower() for h in answer.headers["access-control-expose-headers"].split(",")
    }
    assert {"etag", "x-next-cursor", "x-request-id"} <= exposed


def test_polygon_route_takes_polygons_apikey_parameter(keyed: TestClient) -> None:
    path = "/v2/aggs/ticker/AAPL/range/1/day/2024-01-01/2024-12-31"
    refused = keyed.get(path)
    assert refused.status_code == 401
    assert refused.json()["status"] == "ERROR"
    wrong = keyed.get(path, params={"apiKey": "not-a-key"})
    assert wrong.status_code == 401
    answer = keyed.get(path, params={"apiKey": KEY})
    assert answer.status_code == 200
    assert answer.json()["resultsCount"] == 5
    # only Polygon's routes take it: ours want a header
    assert keyed.get("/api/v1/historical/AAPL", params={"apiKey": KEY}).status_code == 401


def test_root_answers_while_the_database_is_down(seeded: str) -> None:
    """``/`` still names the service and its links when the database stops answering."""
    with TestClient(create_app(Settings(database_url=seeded, scheduler=False))) as test_client:
        assert test_client.get("/").json()["data_mode"] == "real"
        store = test_client.app_state["store"]
        test_client.portal.call(store.aclose)  # type: ignore[union-attr]
        answer = test_client.get("/")
        assert answer.status_code == 200
        body = answer.json()
        assert (body["name"], body["docs"], body["data_mode"]) == ("marketdata", "/docs", "unknown")
        assert "/health" in body["notice"]
        assert test_client.get("/health").status_code == 503
