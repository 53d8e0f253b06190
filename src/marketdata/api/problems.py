"""RFC 9457 problem details: the body every error answer has, and its OpenAPI documentation.

:func:`problem_response` builds an answer, :func:`problem_responses` documents one on a route
(``responses=problem_responses(404, 422)``), and :func:`document_problems` makes the whole
schema say ``application/problem+json`` where FastAPI would say its own 422 body. Which error
gets which status is :mod:`marketdata.api.errors`' business.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://marketdata.dev/problems/"

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


class Problem(BaseModel):
    """An error, as RFC 9457 problem details (``application/problem+json``)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": f"{PROBLEM_TYPE_BASE}not-found",
                    "title": "Not Found",
                    "status": 404,
                    "detail": "no bars stored for XYZ",
                    "instance": "/api/v1/historical/XYZ",
                    "error": "NotFound",
                }
            ]
        },
    )

    type: str = Field(description="A URI naming the kind of problem; compare it, don't fetch it.")
    title: str = Field(description="The status's reason phrase.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong this time, in plain words.")
    instance: str = Field(description="The request path.")
    error: str = Field(description="The error class name, e.g. NotFound.")


def problem_type(error: str) -> str:
    """The stable ``type`` URI of the error named ``error`` (``NotFound`` → ``.../not-found``)."""
    return PROBLEM_TYPE_BASE + re.sub(r"(?<!^)(?=[A-Z])", "-", error).lower()


def problem_response(
    request: Request,
    *,
    status: int,
    error: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """A problem+json response for ``request``; ``extensions`` become extra members."""
    body = {
        "type": problem_type(error),
        "title": phrase(status),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "error": error,
        **extensions,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


#: ``error`` and ``detail`` of each status in :func:`problem_responses`' examples.
_EXAMPLES: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "There was an error parsing the body"),
    401: ("Unauthorized", "an API key is required: send it as X-API-Key or Authorization: Bearer"),
    403: ("Forbidden", "write endpoints are disabled: set MARKETDATA_API_KEYS=<key> and restart"),
    404: ("NotFound", "no bars stored for XYZ"),
    409: ("Conflict", "another backfill is running"),
    413: ("ContentTooLarge", "the request body is larger than 65,536 bytes"),
    415: ("UnsupportedMediaType", "the request body must be JSON, sent as application/json"),
    422: ("InputError", "query parameter 'min_quality': Input should be less than or equal to 1"),
    500: ("InternalError", "internal error; see the server log (request id 3f2a9c1d04be)"),
    502: ("ProviderError", "The market-data provider failed."),
    503: ("DatabaseUnreachable", "cannot connect to the database"),
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for a route's ``responses=``: a :class:`Problem` with an example each.

    Use as ``@router.get(..., responses=problem_responses(404, 422))``.
    """
    entries: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        error, detail = _EXAMPLES.get(code, (error_name(code), phrase(code)))
        example = {
            "type": problem_type(error),
            "title": phrase(code),
            "status": code,
            "detail": detail,
            "instance": "/api/v1/historical/XYZ",
            "error": error,
        }
        entries[code] = {
            "model": Problem,
            "description": phrase(code),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_REF, "example": example}},
        }
    return entries


def document_problems(app: FastAPI) -> None:
    """Make the OpenAPI schema say what is sent: problem+json, not FastAPI's default 422 body.

    Responses from :func:`problem_responses` lose the twin FastAPI adds for their ``model`` in
    the route's media type (``application/json``, ``text/plain``), and the automatic 422
    (``HTTPValidationError``) becomes a :class:`Problem`.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:  # first call: build once, then FastAPI's cache serves it
            schema = build()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    if isinstance(operation, dict):
                        _problem_content(operation.get("responses", {}))
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas.setdefault("Problem", Problem.model_json_schema())
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point


def _problem_content(responses: dict[str, dict[str, Any]]) -> None:
    """Rewrite one operation's documented responses in place (see :func:`document_problems`)."""
    for code, response in responses.items():
        content = response.get("content", {})
        schema = content.get("application/json", {}).get("schema", {})
        if schema.get("$ref") == "#/components/schemas/HTTPValidationError":
            entry = problem_responses(422)[422]
            responses[code] = {"description": "Validation Error", "content": entry["content"]}
        elif PROBLEM_MEDIA_TYPE in content:  # drop the route's own media type (JSON, text)
            response["content"] = {PROBLEM_MEDIA_TYPE: content[PROBLEM_MEDIA_TYPE]}


#: RFC 9110's reason phrases where Python 3.11's ``HTTPStatus`` still has the older ones.
_RFC9110_PHRASES = {413: "Content Too Large", 422: "Unprocessable Content"}


def phrase(status: int, *, rfc9110: bool = True) -> str:
    if rfc9110 and status in _RFC9110_PHRASES:
        return _RFC9110_PHRASES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_name(status: int) -> str:
    """``405`` → ``MethodNotAllowed``: the ``error`` member of Starlette's HTTP errors."""
    words = re.split(r"[\s-]+", re.sub(r"[^\w\s-]", "", phrase(status)))
    return "".join(word.capitalize() for word in words)
