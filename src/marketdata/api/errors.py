"""The one place that maps domain errors to HTTP status codes.

Bodies look like ``{"error": "NotFound", "detail": "no bars stored for XYZ"}``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from marketdata.errors import (
    ConfigError,
    DatabaseUnreachable,
    InputError,
    MarketDataError,
    NotFound,
    SchemaOutOfDate,
    StorageError,
)

#: Most specific class first.
STATUS_FOR: list[tuple[type[MarketDataError], int]] = [
    (NotFound, 404),
    (InputError, 422),
    (DatabaseUnreachable, 503),
    (SchemaOutOfDate, 503),
    (StorageError, 500),
    (ConfigError, 500),
    (MarketDataError, 500),
]


def status_for(exc: MarketDataError) -> int:
    """The HTTP status for a domain error."""
    return next(code for cls, code in STATUS_FOR if isinstance(exc, cls))


async def _handle(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MarketDataError)  # registered for this class only
    return JSONResponse(
        {"error": type(exc).__name__, "detail": str(exc)}, status_code=status_for(exc)
    )


def add_exception_handlers(app: FastAPI) -> None:
    """Install the domain-error handler."""
    app.add_exception_handler(MarketDataError, _handle)
