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

Bodies are JSON: one the route could not read as JSON (any other ``Content-Type``) is a 415,
malformed JSON a 422 naming the character where parsing stopped, a missing one a 422 saying so.

    error                              status
    NotFound                           404
    InputError, DataRejected           422  (also FastAPI's request validation, as InputError)
    Conflict                           409
    StorageError and its subclasses    503  the database is down or failing: retry later
    ProviderError and its subclasses   502  the market-data vendor failed
    ConfigError, MarketDataError       500  the server is misconfigured or failed
    Unauthorized / Forbidden           401 / 403  (API keys, raised by ``api.security``)
    a request body that is not JSON    415  (sent as text/plain, a form, or with no Content-Type)
    Starlette HTTPException            its own status (404 unknown route, 405, 413, ...)
    any other exception                500 with a generic detail; the traceback goes to the log
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketdata.api.problems import (
    PROBLEM_MEDIA_TYPE,
    PROBLEM_TYPE_BASE,
    Problem,
    document_problems,
    error_name,
    phrase,
    problem_response,
    problem_responses,
    problem_type,
)
from marketdata.api.request_errors import validation_error
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

#: Re-exported: routes and tests import the problem vocabulary from here.
__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_TYPE_BASE",
    "STATUS_FOR",
    "Forbidden",
    "Problem",
    "RequestTooLarge",
    "Unauthorized",
    "add_exception_handlers",
    "internal_error",
    "method_not_allowed",
    "not_allowed_detail",
    "problem_response",
    "problem_responses",
    "problem_type",
    "status_for",
]

log = logging.getLogger(__name__)


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


def add_exception_handlers(app: FastAPI) -> None:
    """Install the handlers that turn every error into problem+json.

    Unhandled exceptions are caught by a middleware just outside the routes (so the app answers
    500 without re-raising, and outer middleware sees an ordinary response); the same handler is
    Starlette's last resort for errors raised in middleware.
    """
    app.add_exception_handler(MarketDataError, _domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, internal_error)
    app.add_middleware(_CatchUnhandled)
    document_problems(app)


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


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # registered for this class only
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code < 400:  # 304 Not Modified and friends carry no body
        return Response(status_code=exc.status_code, headers=headers)
    detail = str(exc.detail)
    if detail == phrase(exc.status_code, rfc9110=False):  # Starlette's default: say more
        detail = _http_detail(request, exc.status_code, headers or {})
    return problem_response(
        request,
        status=exc.status_code,
        error=error_name(exc.status_code),
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


def _http_detail(request: Request, status: int, headers: dict[str, str]) -> str:
    method, path = request.method, request.url.path
    if status == 404:
        return f"no endpoint at {path}; the API is described at /docs"
    if status == 405:
        allowed = headers.get("Allow") or headers.get("allow") or ""
        methods = [m.strip() for m in allowed.split(",") if m.strip()]
        return not_allowed_detail(method, path, methods)
    return phrase(status)


def method_not_allowed(request: Request, allowed: Sequence[str]) -> JSONResponse:
    """405 for ``request``: ``Allow`` and the detail name every method in ``allowed``."""
    return problem_response(
        request,
        status=405,
        error="MethodNotAllowed",
        detail=not_allowed_detail(request.method, request.url.path, allowed),
        headers={"Allow": ", ".join(allowed)},
    )


def not_allowed_detail(method: str, path: str, allowed: Sequence[str]) -> str:
    """``PATCH is not allowed on /x; use GET, HEAD or POST``."""
    text = f"{method} is not allowed on {path}"
    if not allowed:
        return text
    listed = allowed[0] if len(allowed) == 1 else f"{', '.join(allowed[:-1])} or {allowed[-1]}"
    return f"{text}; use {listed}"
