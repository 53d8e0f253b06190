"""Who may call what: API keys for writes (and optionally reads), CORS, bounded request bodies.

Rules:

- Write routes (POST/DELETE) depend on :func:`require_write`, read routes on
  :func:`require_read`. A key comes as ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``
  (``X-API-Key`` wins when both are sent); the Polygon-compatible routes also take Polygon's
  ``?apiKey=<key>`` (:func:`require_read_polygon`), which the logs redact.
- No key sent → 401 with ``WWW-Authenticate: Bearer``. A key that matches none → 401 too (RFC
  6750's ``invalid_token``): the client must send other credentials, and 403 is kept for "no key
  could help".
- No keys configured → writes are refused with 403 saying how to set ``MARKETDATA_API_KEYS``.
- Reads are open unless ``MARKETDATA_REQUIRE_KEY_FOR_READS=true``; then they follow the same
  rules (403 when no keys are configured).
- Request bodies over 64 KiB are refused with 413 (:class:`BodyLimit`). CORS is off unless
  ``MARKETDATA_CORS_ORIGINS`` names origins. Query ranges are bounded by each route.

Keys are kept only as SHA-256 digests in ``app.state``; a presented key is hashed and compared
with every digest in constant time. No key is ever logged or echoed in a response.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import FastAPI, Request, Security
from fastapi.security import APIKeyHeader, APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketdata.api.errors import Forbidden, RequestTooLarge, Unauthorized, problem_response
from marketdata.settings import Settings

log = logging.getLogger(__name__)

#: Largest request body accepted, in bytes; larger ones get 413.
MAX_BODY_BYTES = 64 * 1024

_HOW_TO_SET = "set MARKETDATA_API_KEYS=<key>[,<key>…] and restart"
_SEND_KEY = "send it as X-API-Key: <key> or Authorization: Bearer <key>"

_api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="A key from MARKETDATA_API_KEYS (writes; reads too when "
    "MARKETDATA_REQUIRE_KEY_FOR_READS=true).",
)
_bearer = HTTPBearer(
    auto_error=False, description="The same key, as `Authorization: Bearer <key>`."
)
_api_key_query = APIKeyQuery(
    name="apiKey",
    auto_error=False,
    description="Polygon's way of sending the key, accepted on the Polygon-compatible routes "
    "only (a header keeps it out of proxy logs; this server redacts it from its own).",
)
_KeyHeader = Annotated[str | None, Security(_api_key_header)]
_KeyQuery = Annotated[str | None, Security(_api_key_query)]
_BearerHeader = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Keys:
    """What the dependencies check against: digests only, never the keys."""

    digests: tuple[bytes, ...]
    reads_need_key: bool


def install_security(app: FastAPI, settings: Settings) -> None:
    """Configure keys, CORS and request limits on ``app``."""
    app.state.api_keys = _Keys(
        digests=tuple(_digest(k.get_secret_value()) for k in settings.api_keys),
        reads_need_key=settings.require_key_for_reads,
    )
    if settings.api_keys:
        log.info(
            "API keys loaded",
            extra={"event": "api_keys_loaded", "count": len(settings.api_keys)},
        )
    else:
        log.info(
            "write endpoints disabled: no MARKETDATA_API_KEYS",
            extra={"event": "api_writes_disabled"},
        )
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    if settings.cors_origins:  # added last, so outermost: even errors carry CORS headers
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["X-API-Key", "Authorization", "Content-Type", "If-None-Match"],
            expose_headers=["ETag", "X-Next-Cursor", "X-Request-ID"],
        )


async def require_read(request: Request, api_key: _KeyHeader, bearer: _BearerHeader) -> None:
    """Dependency of every read route: a key when MARKETDATA_REQUIRE_KEY_FOR_READS is set."""
    keys = _keys(request)
    if not keys.reads_need_key:
        return
    if not keys.digests:
        msg = (
            "reads require an API key (MARKETDATA_REQUIRE_KEY_FOR_READS=true) but none is "
            f"configured: {_HOW_TO_SET}"
        )
        raise Forbidden(msg)
    _check(request, keys, _presented(api_key, bearer))


async def require_read_polygon(
    request: Request, api_key: _KeyHeader, bearer: _BearerHeader, query_key: _KeyQuery
) -> None:
    """:func:`require_read` for the Polygon-compatible routes, which also take the key as
    Polygon's ``apiKey`` query parameter (after ``X-API-Key`` and ``Authorization``)."""
    if _presented(api_key, bearer) is None and query_key:
        api_key = query_key
    await require_read(request, api_key, bearer)


async def require_write(request: Request, api_key: _KeyHeader, bearer: _BearerHeader) -> None:
    """Dependency of every write route (POST/DELETE): a valid key from MARKETDATA_API_KEYS."""
    keys = _keys(request)
    if not keys.digests:
        raise Forbidden(f"write endpoints are disabled: {_HOW_TO_SET}")
    _check(request, keys, _presented(api_key, bearer))


def _keys(request: Request) -> _Keys:
    """The app's key digests; none (writes refused, reads open) if security was not installed."""
    keys = getattr(request.app.state, "api_keys", None)
    return keys if isinstance(keys, _Keys) else _Keys(digests=(), reads_need_key=False)


def _presented(api_key: str | None, bearer: HTTPAuthorizationCredentials | None) -> str | None:
    if api_key:
        return api_key
    return bearer.credentials if bearer else None


def _check(request: Request, keys: _Keys, presented: str | None) -> None:
    """Return if ``presented`` is one of the keys, else raise :class:`Unauthorized`."""
    if presented is None:
        _refused(request, "missing")
        raise Unauthorized(f"an API key is required: {_SEND_KEY}")
    digest = _digest(presented)
    matched = False
    for stored in keys.digests:  # no early exit: the time does not depend on which key matched
        matched |= hmac.compare_digest(stored, digest)
    if not matched:
        _refused(request, "unknown")
        raise Unauthorized("the API key is not valid", challenge='Bearer error="invalid_token"')


def _refused(request: Request, reason: str) -> None:
    log.info(
        "API key refused (%s) for %s %s",
        reason,
        request.method,
        request.url.path,
        extra={
            "event": "api_key_refused",
            "reason": reason,
            "client": request.client.host if request.client else None,
        },
    )


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).hexdigest().encode()


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413 problem+json.

    A ``Content-Length`` over the limit is refused before the app runs; a streamed (chunked)
    body is counted as the app reads it, and the read raises :class:`RequestTooLarge`.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            exc = RequestTooLarge(self.max_bytes)
            response = problem_response(
                Request(scope),
                status=413,
                error="ContentTooLarge",
                detail=str(exc.detail),
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise RequestTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted, send)
