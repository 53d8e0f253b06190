"""HTTP methods on the real app: HEAD answers as GET without a body, OPTIONS and 405 list every
method of the path, and request bodies that are not JSON get a clear 415 or 422.

One backend is enough here (SQLite): nothing tested depends on the database behind the routes.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from httpx2 import Response
from prometheus_client.parser import text_string_to_metric_families

from marketdata.api.app import create_app
from marketdata.api.errors import PROBLEM_MEDIA_TYPE, add_exception_handlers
from marketdata.api.methods import install_methods
from marketdata.settings import Settings
from marketdata.storage import open_store
from tests.support.factories import AT, make_bars

KEY = "k-methods-0123456789"
WRITE = {"X-API-Key": KEY}
AGGS = "/v2/aggs/ticker/AAPL/range/1/day/2024-01-01/2024-01-31"
READ_ALLOW = {"GET", "HEAD", "OPTIONS"}
BOTH_ALLOW = {"GET", "HEAD", "POST", "OPTIONS"}


@pytest.fixture
async def seeded(sqlite_template: Path, tmp_path: Path) -> str:
    """A SQLite database holding 5 bars of AAPL."""
    path = tmp_path / "marketdata.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    store = await open_store(url)
    try:
        await store.upsert_bars(make_bars("AAPL", days=5), source="test", at=AT)
    finally:
        await store.aclose()
    return url


@pytest.fixture
def client(seeded: str) -> Iterator[TestClient]:
    """The real app on the seeded database, lifespan running, with a write key."""
    settings = Settings(database_url=seeded, scheduler=False, simulate=False, api_keys=(KEY,))
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def allow(response: Response) -> set[str]:
    """The methods in ``response``'s ``Allow`` header."""
    return {m.strip() for m in response.headers["allow"].split(",")}


def problem(response: Response, status: int, error: str) -> dict[str, Any]:
    """``response`` is a problem+json of ``status`` and ``error``; its body."""
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["error"] == error
    return body


def headers_but_id(response: Response, *ignored: str) -> list[tuple[str, str]]:
    """Every response header but the per-request ``X-Request-ID`` (and ``ignored``)."""
    skip = {"x-request-id", *ignored}
    return [(k, v) for k, v in response.headers.multi_items() if k not in skip]


# -- 405 and OPTIONS --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/api/v1/symbols", BOTH_ALLOW),
        ("PUT", "/api/v1/symbols", BOTH_ALLOW),
        ("PUT", "/api/v1/backfill", BOTH_ALLOW),
        ("DELETE", "/api/v1/backfill", BOTH_ALLOW),
        ("POST", "/health", READ_ALLOW),
        ("PUT", "/api/v1/historical/AAPL", READ_ALLOW),
        ("GET", "/api/v1/symbols/AAPL", {"DELETE", "OPTIONS"}),
    ],
)
def test_405_lists_every_method_of_the_path(
    client: TestClient, method: str, path: str, allowed: set[str]
) -> None:
    """A wrong method is a 405 problem whose Allow and detail name every method of the path,
    from all the routes serving it."""
    response = client.request(method, path)
    body = problem(response, 405, "MethodNotAllowed")
    assert allow(response) == allowed
    assert body["detail"].startswith(f"{method} is not allowed on {path}; use ")
    named = body["detail"].rpartition("; use ")[2].replace(" or ", ", ").split(", ")
    assert set(named) == allowed


def test_405_on_polygon_routes_keeps_polygon_shape(client: TestClient) -> None:
    """A wrong method on /v2 answers in Polygon's error body, with the full Allow."""
    response = client.put(AGGS)
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/json"
    assert allow(response) == READ_ALLOW
    body = response.json()
    assert set(body) == {"status", "request_id", "error"}
    assert body["status"] == "ERROR"
    assert body["error"] == f"PUT is not allowed on {AGGS}; use GET, HEAD or OPTIONS"


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/v1/symbols", BOTH_ALLOW),
        ("/api/v1/backfill", BOTH_ALLOW),
        ("/health", READ_ALLOW),
        (AGGS, READ_ALLOW),
        ("/api/v1/symbols/AAPL", {"DELETE", "OPTIONS"}),
    ],
)
def test_options_answers_allow(client: TestClient, path: str, allowed: set[str]) -> None:
    """OPTIONS on a served path is 204 No Content with every method in Allow."""
    response = client.options(path)
    assert response.status_code == 204
    assert allow(response) == allowed
    assert response.content == b""


def test_options_on_an_unknown_path_is_404(client: TestClient) -> None:
    """OPTIONS does not invent paths: an unknown one is still the 404 problem."""
    problem(client.options("/api/v1/nowhere"), 404, "NotFound")


# -- HEAD -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/health",
        "/",
        "/api/v1/status",
        "/api/v1/historical/AAPL?format=csv",
        "/api/v1/historical/AAPL",
        "/api/v1/historical/NOPE",
        AGGS,
        "/dashboard",
        "/docs",
    ],
)
def test_head_answers_the_headers_of_get(client: TestClient, path: str) -> None:
    """HEAD has GET's status and every header (Content-Type, Content-Length, ETag...) and no
    body, errors included."""
    get = client.get(path)
    head = client.head(path)
    assert head.status_code == get.status_code
    assert head.content == b""
    ignored: tuple[str, ...] = ()
    if path == "/health":  # its timestamp is of each answer: the length may differ by 7 bytes
        ignored = ("content-length",)
        assert abs(int(head.headers["content-length"]) - len(get.content)) <= len(".123456")
    else:
        assert int(head.headers["content-length"]) == len(get.content) > 0
    assert headers_but_id(head, *ignored) == headers_but_id(get, *ignored)


def test_head_of_a_csv_read_keeps_etag_and_revalidates(client: TestClient) -> None:
    """HEAD of a CSV read carries its ETag and media type; with If-None-Match it is a 304."""
    get = client.get("/api/v1/historical/AAPL?format=csv")
    head = client.head("/api/v1/historical/AAPL?format=csv")
    assert head.headers["etag"] == get.headers["etag"]
    assert head.headers["content-type"].startswith("text/csv")
    cached = client.head(
        "/api/v1/historical/AAPL?format=csv", headers={"If-None-Match": get.headers["etag"]}
    )
    assert cached.status_code == 304
    assert cached.content == b""


def test_head_without_get_is_405(client: TestClient) -> None:
    """HEAD on a path without GET (DELETE only) stays a 405, with the path's Allow, no body."""
    response = client.head("/api/v1/symbols/AAPL")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert allow(response) == {"DELETE", "OPTIONS"}
    assert int(response.headers["content-length"]) > 0
    assert response.content == b""


def test_head_and_options_are_counted_as_themselves(client: TestClient) -> None:
    """Request metrics label HEAD and OPTIONS with their own method and the route template."""
    client.head("/api/v1/status")
    client.head("/api/v1/historical/AAPL")
    client.options("/api/v1/symbols")
    client.patch("/api/v1/symbols")
    text = client.get("/metrics").text
    samples = {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "marketdata_http_requests_total"
    }
    assert samples[("HEAD", "/api/v1/status", "200")] == 1
    assert samples[("HEAD", "/api/v1/historical/{symbol}", "200")] == 1
    assert samples[("OPTIONS", "/api/v1/symbols", "204")] == 1
    assert samples[("PATCH", "/api/v1/symbols", "405")] == 1
    assert not any(method == "GET" and route != "/metrics" for method, route, _ in samples)


def test_the_openapi_document_gains_no_methods(client: TestClient) -> None:
    """HEAD and OPTIONS are answered, not documented: no operation is added to /openapi.json."""
    spec = client.get("/openapi.json").json()
    operations = {
        path: set(item) - {"parameters", "summary", "description"}
        for path, item in spec["paths"].items()
    }
    assert not any({"head", "options"} & methods for methods in operations.values())
    assert operations["/api/v1/symbols"] == {"get", "post"}
    assert operations["/api/v1/backfill"] == {"get", "post"}
    assert operations["/health"] == {"get"}


# -- HEAD on a small app: streaming, POST-only ------------------------------------------------


@pytest.fixture
def small() -> tuple[TestClient, list[str]]:
    """An app with a streamed GET and a POST-only route; the list records what the stream made."""
    made: list[str] = []
    app = FastAPI()
    add_exception_handlers(app)
    install_methods(app)

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[str]:
            for n in range(3):
                made.append(f"chunk {n}")
                yield f"chunk {n}\n"

        return StreamingResponse(chunks(), media_type="text/plain", headers={"ETag": '"s1"'})

    @app.post("/orders")
    async def orders() -> dict[str, bool]:
        return {"ok": True}

    return TestClient(app), made


def test_head_of_a_streamed_answer(small: tuple[TestClient, list[str]]) -> None:
    """HEAD of a streamed GET has its headers, no body, and the stream still runs to its end."""
    client, made = small
    get = client.get("/stream")
    assert get.text == "chunk 0\nchunk 1\nchunk 2\n"
    made.clear()
    head = client.head("/stream")
    assert head.status_code == 200
    assert head.headers.multi_items() == get.headers.multi_items()
    assert head.headers["etag"] == '"s1"'
    assert head.content == b""
    assert made == ["chunk 0", "chunk 1", "chunk 2"]


def test_head_on_a_post_only_path_is_405(small: tuple[TestClient, list[str]]) -> None:
    """HEAD where only POST is served is a 405 naming POST and OPTIONS, without a body."""
    client, _ = small
    response = client.head("/orders")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, OPTIONS"
    assert response.content == b""
    detail = client.get("/orders").json()["detail"]
    assert detail == "GET is not allowed on /orders; use POST or OPTIONS"


# -- request bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "at"),
    [
        ("/api/v1/symbols", b'{"symbol":"IBM",', 16),
        ("/api/v1/backfill", b'{"symbols": ["IBM"', 18),
    ],
)
def test_invalid_json_says_where(client: TestClient, path: str, body: bytes, at: int) -> None:
    """Malformed JSON is a 422 saying the body is not valid JSON and where parsing stopped."""
    response = client.post(
        path, content=body, headers={**WRITE, "Content-Type": "application/json"}
    )
    problem_body = problem(response, 422, "InputError")
    assert problem_body["detail"].startswith(
        f"the request body is not valid JSON (at character {at}): "
    )
    assert "field" not in problem_body["detail"]
    assert [e["loc"] for e in problem_body["errors"]] == [["body"]]


@pytest.mark.parametrize("path", ["/api/v1/symbols", "/api/v1/backfill"])
@pytest.mark.parametrize(
    ("content_type", "body", "sent"),
    [
        ("text/plain", b'{"symbol": "IBM"}', "text/plain"),
        ("text/plain; charset=utf-8", b'{"symbol": "IBM"}', "text/plain"),
        ("application/x-www-form-urlencoded", b"symbol=IBM", "application/x-www-form-urlencoded"),
        (None, b'{"symbol": "IBM"}', None),
    ],
)
def test_a_body_that_is_not_json_is_415(
    client: TestClient, path: str, content_type: str | None, body: bytes, sent: str | None
) -> None:
    """A body sent as text, as a form or without a Content-Type is a 415 problem saying the
    body must be JSON sent as application/json."""
    headers = {**WRITE, **({"Content-Type": content_type} if content_type else {})}
    response = client.post(path, content=body, headers=headers)
    detail = problem(response, 415, "UnsupportedMediaType")["detail"]
    assert "must be JSON" in detail
    assert "Content-Type: application/json" in detail
    assert (f"(it was sent as {sent})" if sent else "(none was sent)") in detail
    assert response.headers["accept-post"] == "application/json"


def test_a_body_that_is_not_json_still_needs_a_key(client: TestClient) -> None:
    """Without a key the answer is the 401, not the 415: the body says nothing before auth."""
    response = client.post(
        "/api/v1/symbols", content=b"symbol=IBM", headers={"Content-Type": "text/plain"}
    )
    problem(response, 401, "Unauthorized")


def test_a_missing_body_says_one_is_required(client: TestClient) -> None:
    """POST /api/v1/symbols without a body is a 422 saying a JSON body is required."""
    body = problem(client.post("/api/v1/symbols", headers=WRITE), 422, "InputError")
    assert body["detail"] == "a request body is required: a JSON object, sent as application/json"


@pytest.mark.parametrize("payload", [b"[]", b'"IBM"', b"42"])
def test_a_json_body_that_is_not_an_object(client: TestClient, payload: bytes) -> None:
    """JSON that is not an object is a 422 saying the body must be a JSON object."""
    response = client.post(
        "/api/v1/symbols", content=payload, headers={**WRITE, "Content-Type": "application/json"}
    )
    detail = problem(response, 422, "InputError")["detail"]
    assert detail == "the request body must be a JSON object"
