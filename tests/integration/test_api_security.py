"""API keys, problem+json errors, CORS and the body limit, on small apps built here."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from unittest.mock import ANY

import pytest
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.testclient import TestClient
from httpx2 import Response
from pydantic import BaseModel

from marketdata.api.app import create_app
from marketdata.api.errors import PROBLEM_MEDIA_TYPE, add_exception_handlers
from marketdata.api.security import MAX_BODY_BYTES, install_security, require_read, require_write
from marketdata.errors import NotFound
from marketdata.settings import Settings

KEY = "mdk-live-7f3a9b2c5e1d"
OTHER_KEY = "mdk-live-0c4e8a6b2f9d"
WRONG_KEY = "mdk-wrong-93b1d7e5a2c4"
ORIGIN = "https://charts.example"
PROBLEM_MEMBERS = {"type", "title", "status", "detail", "instance", "error"}


class Order(BaseModel):
    """A body for the write route."""

    symbol: str
    years: int = 1


def make_app(**settings: Any) -> FastAPI:
    """An app with one read route, one write route and routes that fail on purpose."""
    config = Settings(simulate=False, scheduler=False, **settings)
    app = FastAPI()
    app.state.settings = config
    add_exception_handlers(app)
    install_security(app, config)

    @app.get("/read", dependencies=[Depends(require_read)])
    async def read(n: Annotated[int, Query(ge=0, le=10)] = 0) -> dict[str, int]:
        return {"n": n}

    @app.post("/write", dependencies=[Depends(require_write)])
    async def write(order: Order) -> dict[str, str]:
        return {"symbol": order.symbol}

    @app.delete("/write", dependencies=[Depends(require_write)])
    async def delete() -> dict[str, bool]:
        return {"deleted": True}

    @app.get("/missing")
    async def missing() -> None:
        raise NotFound("no bars stored for XYZ (not on the watchlist)")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("internal state: password=hunter2")

    @app.get("/not-modified")
    async def not_modified() -> None:
        raise HTTPException(304, headers={"ETag": '"abc"'})

    @app.get("/gone")
    async def gone() -> None:
        raise HTTPException(410, detail="this symbol was delisted")

    return app


@pytest.fixture(autouse=True)
def _logs_reach_caplog(monkeypatch: pytest.MonkeyPatch) -> None:
    """Records of the ``marketdata`` logger propagate, even after the CLI configured logging."""
    monkeypatch.setattr(logging.getLogger("marketdata"), "propagate", True)


@pytest.fixture
def client() -> Iterator[TestClient]:
    """A client of an app with two keys configured."""
    with TestClient(make_app(api_keys=f"{KEY},{OTHER_KEY}")) as test_client:
        yield test_client


def assert_problem(response: Response, status: int, error: str) -> dict[str, Any]:
    """``response`` is problem+json with every member, ``status`` and ``error``."""
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_MEMBERS
    assert body["status"] == status
    assert body["error"] == error
    assert body["type"].startswith("https://marketdata.dev/problems/")
    assert body["instance"] == response.request.url.path
    assert body["detail"]
    return body


# -- keys -------------------------------------------------------------------------------------


def test_writes_without_configured_keys_say_how_to_set_one() -> None:
    """With no MARKETDATA_API_KEYS, a write is 403 and the detail says how to enable writes."""
    with TestClient(make_app()) as client:
        response = client.post("/write", json={"symbol": "AAPL"}, headers={"X-API-Key": KEY})
    body = assert_problem(response, 403, "Forbidden")
    assert "MARKETDATA_API_KEYS=<key>" in body["detail"]
    assert "restart" in body["detail"]


def test_missing_key_is_401_with_a_challenge(client: TestClient) -> None:
    """A write without a key is 401 with WWW-Authenticate: Bearer and says how to send one."""
    response = client.post("/write", json={"symbol": "AAPL"})
    body = assert_problem(response, 401, "Unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "X-API-Key" in body["detail"]


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": WRONG_KEY},
        {"Authorization": f"Bearer {WRONG_KEY}"},
        {"Authorization": f"Basic {KEY}"},
        {"X-API-Key": KEY[:-1]},
    ],
)
def test_wrong_key_is_401(client: TestClient, headers: dict[str, str]) -> None:
    """An unknown key, or a key in the wrong scheme, is 401."""
    response = client.delete("/write", headers=headers)
    assert_problem(response, 401, "Unauthorized")
    assert "www-authenticate" in response.headers


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": KEY},
        {"X-API-Key": OTHER_KEY},
        {"Authorization": f"Bearer {KEY}"},
        {"Authorization": f"bearer {OTHER_KEY}"},
    ],
)
def test_right_key_is_accepted(client: TestClient, headers: dict[str, str]) -> None:
    """Any configured key, as X-API-Key or Bearer, opens the write routes."""
    response = client.post("/write", json={"symbol": "AAPL"}, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"symbol": "AAPL"}


def test_reads_are_open_by_default(client: TestClient) -> None:
    """Without MARKETDATA_REQUIRE_KEY_FOR_READS, reads need no key (and ignore a wrong one)."""
    assert client.get("/read").status_code == 200
    assert client.get("/read", headers={"X-API-Key": WRONG_KEY}).status_code == 200


def test_reads_can_require_a_key() -> None:
    """With require_key_for_reads, a read needs a valid key like a write does."""
    app = make_app(api_keys=KEY, require_key_for_reads=True)
    with TestClient(app) as client:
        assert_problem(client.get("/read"), 401, "Unauthorized")
        assert_problem(client.get("/read", headers={"X-API-Key": WRONG_KEY}), 401, "Unauthorized")
        assert client.get("/read", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_reads_required_without_keys_is_403() -> None:
    """Requiring keys for reads with none configured refuses reads and says how to fix it."""
    with TestClient(make_app(require_key_for_reads=True)) as client:
        body = assert_problem(client.get("/read"), 403, "Forbidden")
    assert "MARKETDATA_API_KEYS" in body["detail"]


def test_keys_are_kept_only_as_digests() -> None:
    """app.state holds SHA-256 digests, not the keys."""
    app = make_app(api_keys=KEY)
    assert KEY not in repr(vars(app.state))
    assert KEY.encode() not in app.state.api_keys.digests


def test_keys_never_reach_logs_or_bodies(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """No log record and no response contains a presented key, right or wrong."""
    caplog.set_level(logging.DEBUG)
    responses = [
        client.post("/write", json={"symbol": "AAPL"}, headers={"X-API-Key": KEY}),
        client.post("/write", json={"symbol": "AAPL"}, headers={"X-API-Key": WRONG_KEY}),
        client.delete("/write", headers={"Authorization": f"Bearer {WRONG_KEY}"}),
        client.post("/write", json={"years": "x"}, headers={"X-API-Key": KEY}),
        client.get("/boom", headers={"X-API-Key": WRONG_KEY}),
    ]
    assert any(r.__dict__.get("event") == "api_key_refused" for r in caplog.records)
    logged = caplog.text + "".join(repr(vars(r)) for r in caplog.records)
    for secret in (KEY, WRONG_KEY):
        assert secret not in logged
        assert all(secret not in r.text and secret not in str(r.headers) for r in responses)


def test_openapi_offers_both_key_schemes(client: TestClient) -> None:
    """/docs gets an Authorize button: X-API-Key and Bearer are security schemes."""
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert {"type": "apiKey", "in": "header", "name": "X-API-Key"}.items() <= schemes[
        "APIKeyHeader"
    ].items()
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    assert {"APIKeyHeader": []} in spec["paths"]["/write"]["post"]["security"]


def test_openapi_documents_validation_errors_as_problems(client: TestClient) -> None:
    """FastAPI's automatic 422 is documented as the problem+json it really is."""
    spec = client.get("/openapi.json").json()
    [(media_type, entry)] = spec["paths"]["/read"]["get"]["responses"]["422"]["content"].items()
    assert media_type == PROBLEM_MEDIA_TYPE
    assert entry["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert "Problem" in spec["components"]["schemas"]


# -- problem+json -----------------------------------------------------------------------------


def test_unknown_route_is_404_problem(client: TestClient) -> None:
    """An unknown path is a 404 problem pointing at /docs."""
    body = assert_problem(client.get("/nowhere"), 404, "NotFound")
    assert "/docs" in body["detail"]


def test_wrong_method_is_405_problem(client: TestClient) -> None:
    """A known path with the wrong method is a 405 problem naming the allowed methods."""
    response = client.put("/read")
    body = assert_problem(response, 405, "MethodNotAllowed")
    assert "GET" in body["detail"]
    assert response.headers["allow"] == "GET"


def test_bad_query_parameter_is_422_problem(client: TestClient) -> None:
    """Request validation names the parameter and the problem, and lists each error."""
    body = assert_problem(client.get("/read?n=11"), 422, "InputError")
    assert body["detail"] == "query parameter 'n': Input should be less than or equal to 10"
    assert body["errors"] == [
        {"loc": ["query", "n"], "msg": "Input should be less than or equal to 10", "type": ANY}
    ]


def test_bad_body_is_422_problem_without_echoing_input(client: TestClient) -> None:
    """A body that fails validation names each field and does not echo the values back."""
    response = client.post(
        "/write", json={"years": "hunter2"}, headers={"Authorization": f"Bearer {KEY}"}
    )
    body = assert_problem(response, 422, "InputError")
    assert "body field 'symbol': Field required" in body["detail"]
    assert "body field 'years'" in body["detail"]
    assert "hunter2" not in response.text


def test_domain_error_is_problem_with_its_message(client: TestClient) -> None:
    """A MarketDataError keeps its message as the detail and its class as ``error``."""
    body = assert_problem(client.get("/missing"), 404, "NotFound")
    assert body["detail"] == "no bars stored for XYZ (not on the watchlist)"
    assert body["type"] == "https://marketdata.dev/problems/not-found"
    assert body["title"] == "Not Found"


def test_http_exceptions_keep_status_and_detail(client: TestClient) -> None:
    """Routes' own HTTPExceptions keep their status and detail; a 304 has no body."""
    body = assert_problem(client.get("/gone"), 410, "Gone")
    assert body["detail"] == "this symbol was delisted"
    not_modified = client.get("/not-modified")
    assert (not_modified.status_code, not_modified.content) == (304, b"")
    assert not_modified.headers["etag"] == '"abc"'


def test_unhandled_error_is_generic_500(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected exception is a 500 problem with a request id; the traceback is logged only."""
    response = client.get("/boom")
    body = assert_problem(response, 500, "InternalError")
    request_id = response.headers["x-request-id"]
    assert body["request_id"] == request_id
    assert request_id in body["detail"]
    assert "Traceback" not in response.text
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    [record] = [r for r in caplog.records if r.__dict__.get("event") == "api_unhandled_error"]
    assert request_id in record.getMessage()
    assert record.exc_info is not None


def test_big_body_is_413_problem(client: TestClient) -> None:
    """A body over the limit is refused with 413 before the key is even checked."""
    big = b"x" * (MAX_BODY_BYTES + 1)
    response = client.post("/write", content=big, headers={"Content-Type": "application/json"})
    body = assert_problem(response, 413, "ContentTooLarge")
    assert f"{MAX_BODY_BYTES:,}" in body["detail"]


def test_big_streamed_body_is_413_problem(client: TestClient) -> None:
    """A chunked body without Content-Length is counted as it is read."""

    def chunks() -> Iterator[bytes]:
        yield b'{"symbol": "'
        for _ in range(MAX_BODY_BYTES // 1024 + 1):
            yield b"A" * 1024
        yield b'"}'

    response = client.post(
        "/write",
        content=chunks(),
        headers={"Content-Type": "application/json", "X-API-Key": KEY},
    )
    assert_problem(response, 413, "ContentTooLarge")


def test_body_at_the_limit_is_read(client: TestClient) -> None:
    """A body of exactly the limit is accepted."""
    padding = MAX_BODY_BYTES - len(b'{"symbol": ""}')
    content = b'{"symbol": "' + b"A" * padding + b'"}'
    assert len(content) == MAX_BODY_BYTES
    response = client.post(
        "/write", content=content, headers={"Content-Type": "application/json", "X-API-Key": KEY}
    )
    assert response.status_code == 200


# -- CORS -------------------------------------------------------------------------------------


def test_cors_is_off_unless_configured(client: TestClient) -> None:
    """Without MARKETDATA_CORS_ORIGINS no CORS header is sent."""
    response = client.get("/read", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_cors_allows_configured_origins() -> None:
    """Configured origins get CORS headers, preflights for writes included; ETag is exposed."""
    with TestClient(make_app(api_keys=KEY, cors_origins=ORIGIN)) as client:
        simple = client.get("/read", headers={"Origin": ORIGIN})
        assert simple.headers["access-control-allow-origin"] == ORIGIN
        assert "etag" in simple.headers["access-control-expose-headers"].lower()
        preflight = client.options(
            "/write",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "X-API-Key, Content-Type",
            },
        )
        assert preflight.status_code == 200
        assert "POST" in preflight.headers["access-control-allow-methods"]
        other = client.get("/read", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        refused = client.post("/write", json={"symbol": "A"}, headers={"Origin": ORIGIN})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == ORIGIN


# -- the real app -----------------------------------------------------------------------------


def test_create_app_wires_errors_and_security(sqlite_template: Path, tmp_path: Path) -> None:
    """The app from create_app answers problem+json for unknown routes, methods and bodies."""
    path = tmp_path / "marketdata.db"
    shutil.copy(sqlite_template, path)
    settings = Settings(database_url=f"sqlite:///{path}", simulate=False, scheduler=False)
    with TestClient(create_app(settings)) as client:
        assert_problem(client.get("/api/v1/nowhere"), 404, "NotFound")
        assert_problem(client.post("/health"), 405, "MethodNotAllowed")
        big = client.post("/health", content=b"x" * (MAX_BODY_BYTES + 1))
        assert_problem(big, 413, "ContentTooLarge")
        spec = client.get("/openapi.json").json()
    assert spec["openapi"]
