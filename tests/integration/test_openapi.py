"""``/openapi.json``: every response has an example, every operation says what it does, and the
two ways to send a key are declared."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient

from marketdata.api.app import create_app
from marketdata.settings import Settings

KEY = "k-0123456789abcdef"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
#: Statuses whose responses carry no body: a description is all they need.
BODILESS = ("204", "304")

Operation = tuple[str, str, dict[str, Any]]


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The app's OpenAPI document, as served (the document needs no database)."""
    path: Path = tmp_path_factory.mktemp("openapi") / "unused.db"
    settings = Settings(
        database_url=f"sqlite:///{path}", simulate=False, scheduler=False, api_keys=(KEY,)
    )
    response = TestClient(create_app(settings)).get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(spec: dict[str, Any]) -> Iterator[Operation]:
    """Each (METHOD, path, operation) of the document."""
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def test_the_document_lists_the_api(spec: dict[str, Any]) -> None:
    """Every resource is documented (a route missing from OpenAPI would escape these checks)."""
    listed = {f"{method} {path}" for method, path, _ in operations(spec)}
    assert {
        "GET /",
        "GET /health",
        "GET /metrics",
        "GET /api/v1/status",
        "GET /api/v1/historical/{symbol}",
        "GET /api/v1/symbols",
        "POST /api/v1/symbols",
        "DELETE /api/v1/symbols/{symbol}",
        "GET /api/v1/backfill",
        "POST /api/v1/backfill",
        "GET /api/v1/backfill/{run_id}",
        "GET /api/v1/quality/{symbol}",
        "GET /api/v1/coverage",
        "GET /api/v1/actions/{symbol}",
    } <= listed


def test_every_response_has_an_example(spec: dict[str, Any]) -> None:
    """Each documented status of each operation shows an example body per media type; only a
    body-less status (304) goes without, and it still says what it means."""
    missing = []
    for method, path, operation in operations(spec):
        for status, response in operation["responses"].items():
            where = f"{method} {path} {status}"
            if not response.get("description"):
                missing.append(f"{where}: no description")
            content = response.get("content")
            if not content:
                if status not in BODILESS:
                    missing.append(f"{where}: no content")
                continue
            missing.extend(
                f"{where} {media}: no example"
                for media, entry in content.items()
                if "example" not in entry and not entry.get("examples")
            )
    assert missing == []


def _examples(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(where, schema, example) of every JSON response example."""
    for method, path, operation in operations(spec):
        for status, response in operation["responses"].items():
            for media, entry in response.get("content", {}).items():
                if not media.endswith("json") or "schema" not in entry:
                    continue
                bodies = [entry["example"]] if "example" in entry else []
                bodies += [e["value"] for e in entry.get("examples", {}).values()]
                for body in bodies:
                    yield f"{method} {path} {status} {media}", entry["schema"], body


def test_examples_match_their_schemas(spec: dict[str, Any]) -> None:
    """An example is a body the schema allows: the docs never show what the API cannot send."""
    wrong: list[str] = []
    for where, schema, example in _examples(spec):
        validator = jsonschema_rs.Draft202012Validator({**schema, "components": spec["components"]})
        wrong.extend(f"{where}: {e.message}" for e in validator.iter_errors(example))
    assert wrong == []


def test_every_operation_is_described(spec: dict[str, Any]) -> None:
    """Each operation has a summary (the docs' list) and a description (its page)."""
    bare = [
        f"{method} {path}"
        for method, path, operation in operations(spec)
        if not operation.get("summary") or not operation.get("description")
    ]
    assert bare == []


def test_both_key_schemes_are_declared(spec: dict[str, Any]) -> None:
    """A key goes as ``X-API-Key`` or as a bearer token, and every write operation says so;
    Polygon's route also takes Polygon's ``apiKey`` query parameter, and only it does."""
    schemes = spec["components"]["securitySchemes"]
    kinds = {
        (s["type"], s.get("in"), s.get("name"), s.get("scheme")): name
        for name, s in schemes.items()
    }
    assert set(kinds) == {
        ("apiKey", "header", "X-API-Key", None),
        ("http", None, None, "bearer"),
        ("apiKey", "query", "apiKey", None),
    }
    query = kinds[("apiKey", "query", "apiKey", None)]
    headers = set(schemes) - {query}
    writes = [
        (method, path, operation)
        for method, path, operation in operations(spec)
        if method in ("POST", "DELETE")
    ]
    assert writes
    for method, path, operation in writes:
        offered = {name for requirement in operation["security"] for name in requirement}
        assert offered == headers, f"{method} {path}"
    for method, path, operation in operations(spec):
        offered = {name for requirement in operation.get("security", []) for name in requirement}
        assert (query in offered) == path.startswith("/v2/aggs/"), f"{method} {path}"
