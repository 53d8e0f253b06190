"""The one place that maps errors to HTTP: every error response is RFC 9457 problem+json.

A body looks like::

    {"type": "https://marketdata.dev/problems/not-found", "title": "Not found.",
     "status": 404, "detail": "no bars stored for XYZ", "instance": "/api/v1/historical/XYZ",
     "error": "NotFound"}

``type`` is ``https://marketdata.dev/problems/<kebab-case error name>``: one stable URI per error
name, an identifier for clients to compare, not a page to fetch. ``title`` is the status's
reason phrase (RFC 9110 wording). ``error`` (the error class name) and ``detail`` are what clients
read before RFC 9457, so both stay. Extensions: ``errors`` (request validation: ``loc``, ``msg``
and ``type`` of each problem) and ``request_id`` (500s, also sent as ``X-Request-ID``).

    error                              status
    NotFound                           404
    InputError, DataRejected           422  (also FastAPI's request validation, as InputError)
    Conflict                           409
    StorageError and its subclasses    503  the database is down or failing: retry later
    ProviderError and its subclasses   502  the market-data vendor failed
    ConfigError, MarketDataError       500  the server is misconfigured or failed
    Unauthorized / Forbidden           401 / 403  (API keys, raised by ``api.security``)
    Starlette HTTPException            its own status (404 unknown route, 405, 413, ...)
    any other exception                500 with a generic detail; the traceback goes to the log
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketdata.errors import (
    ConfigError,
    Conflict,
    InputError,
    MarketDataError,
    NotFound,
    ProviderError,
    StorageError,
)
from marketdata.logs import current_context

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://marketdata.dev/problems/"


class Unauthorized(MarketDataError):
    """An API key is required."""

    def __init__(self, message: str | None = None, *, challenge: str = "Bearer") -> None:
        super().__init__(message)
        #: The ``WWW-Authenticate`` value sent with the 401.
        self.challenge = challenge


class Forbidden(MarketDataError):
    """This operation is not allowed."""


class RequestTooLarge(HTTPException):
    """The request body is larger than the server accepts (raised while it is read)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit:,} bytes")


#: Most specific class first.
STATUS_FOR: list[tuple[type[MarketDataError], int]] = [
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (InputError, 422),
    (StorageError, 503),
    (ProviderError, 502),
    (ConfigError, 500),
    (MarketDataError, 500),
]


def status_for(exc: MarketDataError) -> int:
    """The HTTP status for a domain error."""
    return next(code for cls, code in STATUS_FOR if isinstance(exc, cls))


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
        "title": _phrase(status),
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
        error, detail = _EXAMPLES.get(code, (_name(code), _phrase(code)))
        example = {
            "type": problem_type(error),
            "title": _phrase(code),
            "status": code,
            "detail": detail,
            "instance": "/api/v1/historical/XYZ",
            "error": error,
        }
        entries[code] = {
            "model": Problem,
            "description": _phrase(code),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_REF, "example": example}},
        }
    return entries


_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def add_exception_handlers(app: FastAPI) -> None:
    """Install the handlers that turn every error into problem+json.

    Unhandled exceptions are caught by a middleware just outside the routes (so the app answers
    500 without re-raising, and outer middleware sees an ordinary response); the same handler is
    Starlette's last resort for errors raised in middleware.
    """
    app.add_exception_handler(MarketDataError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, internal_error)
    app.add_middleware(_CatchUnhandled)
    _document_problems(app)


def _document_problems(app: FastAPI) -> None:
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
    """Rewrite one operation's documented responses in place (see :func:`_document_problems`)."""
    for code, response in responses.items():
        content = response.get("content", {})
        schema = content.get("application/json", {}).get("schema", {})
        if schema.get("$ref") == "#/components/schemas/HTTPValidationError":
            entry = problem_responses(422)[422]
            responses[code] = {"description": "Validation Error", "content": entry["content"]}
        elif PROBLEM_MEDIA_TYPE in content:  # drop the route's own media type (JSON, text)
            response["content"] = {PROBLEM_MEDIA_TYPE: content[PROBLEM_MEDIA_TYPE]}


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MarketDataError)  # registered for this class only
    status = status_for(exc)
    error = type(exc).__name__
    if status >= 500:
        log.warning(
            "request failed: %s",
            exc,
            extra={
                "event": "api_error",
                "error": error,
                "status": status,
                "path": request.url.path,
            },
        )
    headers = {"WWW-Authenticate": exc.challenge} if isinstance(exc, Unauthorized) else None
    return problem_response(
        request,
        status=status,
        error=error,
        detail=str(exc),
        headers=headers,
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # registered for this class only
    problems = [
        {
            "loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]
    detail = "; ".join(f"{_where(p['loc'])}: {p['msg']}" for p in problems) or "invalid request"
    return problem_response(
        request,
        status=422,
        error="InputError",
        detail=detail,
        errors=problems,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # registered for this class only
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code < 400:  # 304 Not Modified and friends carry no body
        return Response(status_code=exc.status_code, headers=headers)
    detail = str(exc.detail)
    if detail == _phrase(exc.status_code, rfc9110=False):  # Starlette's default: say more
        detail = _http_detail(request, exc.status_code, headers or {})
    return problem_response(
        request,
        status=exc.status_code,
        error=_name(exc.status_code),
        detail=detail,
        headers=headers,
    )


async def internal_error(request: Request, exc: Exception) -> Response:
    """500 with a generic detail and a request id; the exception and traceback go to the log."""
    request_id = str(current_context().get("request_id") or uuid.uuid4().hex[:12])
    log.error(
        "unhandled error in %s %s (request id %s)",
        request.method,
        request.url.path,
        request_id,
        exc_info=exc,
        extra={"event": "api_unhandled_error", "request_id": request_id},
    )
    return problem_response(
        request,
        status=500,
        error="InternalError",
        detail=f"internal error; see the server log (request id {request_id})",
        headers={"X-Request-ID": request_id},
        request_id=request_id,
    )


class _CatchUnhandled:
    """Answer an exception no handler took with :func:`internal_error`, unless already answering."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if started:
                raise
            response = await internal_error(Request(scope), exc)
            await response(scope, receive, send)


_LOCATIONS = {
    "query": "query parameter",
    "path": "path parameter",
    "header": "header",
    "cookie": "cookie",
}


def _where(loc: Sequence[int | str]) -> str:
    """``("query", "min_quality")`` → ``query parameter 'min_quality'``."""
    if not loc:
        return "request"
    head, rest = str(loc[0]), ".".join(str(p) for p in loc[1:])
    if head == "body":
        return f"body field {rest!r}" if rest else "request body"
    if head in _LOCATIONS:
        return f"{_LOCATIONS[head]} {rest!r}"
    return repr(".".join(str(p) for p in loc))


def _http_detail(request: Request, status: int, headers: dict[str, str]) -> str:
    method, path = request.method, request.url.path
    if status == 404:
        return f"no endpoint at {path}; the API is described at /docs"
    if status == 405:
        allowed = headers.get("Allow") or headers.get("allow")
        return f"{method} is not allowed on {path}" + (f"; use {allowed}" if allowed else "")
    return _phrase(status)


#: RFC 9110's reason phrases where Python 3.11's ``HTTPStatus`` still has the older ones.
_RFC9110_PHRASES = {413: "Content Too Large", 422: "Unprocessable Content"}


def _phrase(status: int, *, rfc9110: bool = True) -> str:
    if rfc9110 and status in _RFC9110_PHRASES:
        return _RFC9110_PHRASES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _name(status: int) -> str:
    """``405`` → ``MethodNotAllowed``: the ``error`` member of Starlette's HTTP errors."""
    words = re.split(r"[\s-]+", re.sub(r"[^\w\s-]", "", _phrase(status)))
    return "".join(word.capitalize() for word in words)
