"""One id per HTTP request, in the ``X-Request-ID`` response header and in every log line.

A sane incoming ``X-Request-ID`` (from a proxy or the caller: at most 64 characters of
``A-Z a-z 0-9 . _ -``) is kept, so one id follows a request across services; anything else is
replaced by a fresh uuid4 hex. The id is bound with :func:`marketdata.logs.log_context` while
the request runs, so the app's records and uvicorn's access line carry ``request_id``.

A pure ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``: it streams responses
untouched and keeps the request's context variables visible to the code it wraps.
"""

from __future__ import annotations

import re
import uuid
from typing import Final

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketdata.logs import log_context

HEADER: Final = "X-Request-ID"
_RAW_HEADER: Final = HEADER.lower().encode("latin-1")
_SANE: Final = re.compile(rb"[A-Za-z0-9._-]{1,64}")


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's ``X-Request-ID`` if it is sane, else a new random id (32 hex digits)."""
    for name, value in headers:
        if name.lower() == _RAW_HEADER:
            given = value.strip()
            if _SANE.fullmatch(given):
                return given.decode("ascii")
            break
    return uuid.uuid4().hex


class RequestId:
    """Give each HTTP request an id: logged with everything it causes, echoed in the answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope.get("headers", []))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = rid
            await send(message)

        with log_context(request_id=rid):
            await self.app(scope, receive, send_with_id)


def install_request_id(app: FastAPI) -> None:
    """Add :class:`RequestId` as the outermost of ``app``'s own middleware."""
    app.add_middleware(RequestId)
