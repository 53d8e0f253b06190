"""The error → HTTP table and the problem+json vocabulary (RFC 9457)."""

from __future__ import annotations

import pytest

from marketdata.api.errors import (
    PROBLEM_MEDIA_TYPE,
    Forbidden,
    Problem,
    Unauthorized,
    problem_responses,
    problem_type,
    status_for,
)
from marketdata.errors import (
    ConfigError,
    Conflict,
    DatabaseUnreachable,
    DataRejected,
    InputError,
    MarketDataError,
    NotFound,
    PlanNotEntitled,
    ProviderError,
    RateLimited,
    SchemaOutOfDate,
    StorageError,
)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (Unauthorized("x"), 401),
        (Forbidden("x"), 403),
        (NotFound("x"), 404),
        (Conflict("x"), 409),
        (InputError("x"), 422),
        (DataRejected("x"), 422),
        (DatabaseUnreachable("x"), 503),
        (SchemaOutOfDate("x"), 503),
        (StorageError("x"), 503),
        (ProviderError("x"), 502),
        (RateLimited("x"), 502),
        (PlanNotEntitled("x"), 502),
        (ConfigError("x"), 500),
        (MarketDataError("x"), 500),
    ],
)
def test_status_for(error: MarketDataError, status: int) -> None:
    """Each error class maps to the status a client can act on."""
    assert status_for(error) == status


def test_default_message_is_the_docstring() -> None:
    """An error raised without a message says what its class means."""
    assert str(NotFound()) == "Not found."


@pytest.mark.parametrize(
    ("error", "uri"),
    [
        ("NotFound", "https://marketdata.dev/problems/not-found"),
        ("DatabaseUnreachable", "https://marketdata.dev/problems/database-unreachable"),
        ("InputError", "https://marketdata.dev/problems/input-error"),
        ("ContentTooLarge", "https://marketdata.dev/problems/content-too-large"),
    ],
)
def test_problem_type_is_a_stable_uri_per_error(error: str, uri: str) -> None:
    """The ``type`` member is the error name in kebab case under one base URI."""
    assert problem_type(error) == uri


def test_problem_responses_document_problem_json() -> None:
    """Each requested status gets the Problem model, the problem+json media type and an example."""
    entries = problem_responses(401, 404, 418)
    assert list(entries) == [401, 404, 418]
    for code, entry in entries.items():
        assert entry["model"] is Problem
        example = entry["content"][PROBLEM_MEDIA_TYPE]["example"]
        assert Problem.model_validate(example).status == code
        assert example["type"] == problem_type(example["error"])
    assert entries[404]["content"][PROBLEM_MEDIA_TYPE]["example"]["error"] == "NotFound"
    assert entries[418]["content"][PROBLEM_MEDIA_TYPE]["example"]["error"] == "ImATeapot"


def test_problem_model_example_is_valid() -> None:
    """The example in the Problem schema is itself a valid Problem."""
    [example] = Problem.model_json_schema()["examples"]
    assert Problem.model_validate(example).error == "NotFound"
