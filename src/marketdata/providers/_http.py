"""What the vendor clients share: one GET turned into JSON or one of our typed errors.

Each client keeps its own retry policy and pacing; this module only does a single request:
transport failures become :class:`ProviderUnavailable`, a non-200 answer becomes whatever the
vendor's ``error_for`` says (a retryable one is logged as such), and a 200 body must be a JSON
object.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from marketdata.errors import MalformedResponse, ProviderError, ProviderUnavailable, RateLimited

log = logging.getLogger("marketdata.providers")

#: ``error_for(status, body, *, path, retry_after)``: the vendor's reading of a failed answer.
ErrorFor = Callable[..., ProviderError]


def decode(body: bytes, *, path: str) -> dict[str, Any]:
    """The JSON object of a response body; anything else is :class:`MalformedResponse`."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        snippet = body[:60].decode("utf-8", "replace").strip()
        raise MalformedResponse(f"response is not valid JSON: {snippet!r}", path=path) from None
    if not isinstance(data, dict):
        raise MalformedResponse("response is not a JSON object", path=path)
    return data


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form only), capped at 10 minutes."""
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), 600.0)
    except ValueError:
        return None


async def get_json(
    http: httpx.AsyncClient,
    path: str,
    params: dict[str, str] | None,
    *,
    error_for: ErrorFor,
    vendor: str,
) -> dict[str, Any]:
    """GET ``path`` once; the decoded JSON object of a 200 answer, else a typed error."""
    started = time.perf_counter()
    try:
        response = await http.get(path, params=params)
    except httpx.TimeoutException:
        raise ProviderUnavailable(f"{vendor} did not answer in time", path=path) from None
    except httpx.TransportError as exc:
        raise ProviderUnavailable(
            f"cannot reach {vendor}: {type(exc).__name__}", path=path
        ) from None
    log.debug(
        "GET %s -> %s in %.0f ms",
        path,
        response.status_code,
        (time.perf_counter() - started) * 1000,
        extra={"event": "provider_request", "path": path, "status": response.status_code},
    )
    if response.status_code != 200:
        error = error_for(
            response.status_code,
            response.content,
            path=path,
            retry_after=retry_after(response.headers.get("Retry-After")),
        )
        if isinstance(error, RateLimited | ProviderUnavailable):
            log.warning(
                "%s, will retry",
                error,
                extra={"event": "provider_retry", "path": path, "status": response.status_code},
            )
        raise error
    return decode(response.content, path=path)
