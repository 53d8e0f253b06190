"""Request metrics: a pure ASGI middleware that counts and times every HTTP request.

It records into the app's own registry (``app.state.metrics_registry``, set up by
:func:`marketdata.api.metrics.install_metrics`): each worker process counts its own requests,
so ``sum`` them across processes. The ``route`` label is the route template
(``/api/v1/historical/{symbol}``), never the raw path, so label values stay few.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

from prometheus_client import Counter, Histogram
from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Latency buckets (seconds): sub-millisecond reads up to large exports.
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

#: The ``route`` label of requests that matched no route (404s, middleware answers).
UNMATCHED: Final = "unmatched"

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope, routes: Sequence[BaseRoute], *, root_path: str = "") -> str:
    """The template of the route that handled ``scope`` (after the app ran), or ``unmatched``.

    FastAPI leaves its route in ``scope["route"]``; Starlette routes (``/docs``) and mounts are
    matched again. What a mount added to ``root_path`` (the scope's before) is a prefix.
    """
    prefix = str(scope.get("root_path", ""))
    prefix = prefix[len(root_path) :] if prefix.startswith(root_path) else ""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return prefix + path
    probe = {**scope, "root_path": root_path}
    for route in routes:
        path = getattr(route, "path", None)
        if isinstance(path, str) and route.matches(probe)[0] is not Match.NONE:
            return path
    return UNMATCHED


class RequestMetrics:
    """Pure ASGI middleware: counts and times every HTTP request by method, route and status.

    A request that raises before answering counts as a 500. Latency runs until the response
    body is sent.
    """

    def __init__(
        self, app: ASGIApp, *, router: Router, requests: Counter, latency: Histogram
    ) -> None:
        self.app = app
        self.router = router
        self.requests = requests
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        root_path = str(scope.get("root_path", ""))
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"] if scope["method"] in _METHODS else "other"
            route = route_template(scope, self.router.routes, root_path=root_path)
            self.requests.labels(method, route, str(status)).inc()
            self.latency.labels(method, route).observe(elapsed)
