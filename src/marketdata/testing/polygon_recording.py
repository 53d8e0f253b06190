"""What the fake Polygon server records: every request, with the status it was answered.

:class:`RequestRecorder` is the ASGI middleware that builds a :class:`RecordedRequest` on
arrival and fills in its status when the answer starts; the server keeps them in
:attr:`~marketdata.testing.polygon_server.FakePolygon.requests` so tests can assert on what
was sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class RecordedRequest:
    """One request as the server saw it (recorded on arrival; status set before answering)."""

    at: float  # time.monotonic() on arrival
    method: str
    path: str
    query: str
    url: str
    authorization: str | None
    status: int = 0


class RequestRecorder:
    """ASGI middleware that hands every request to ``on_arrival`` as it arrives, and fills in its
    status when the answer starts."""

    def __init__(self, app: Any, on_arrival: Callable[[RecordedRequest], None]) -> None:
        self.app = app
        self.on_arrival = on_arrival

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        query = scope.get("query_string", b"").decode()
        path = scope.get("path", "")
        record = RecordedRequest(
            at=time.monotonic(),
            method=scope.get("method", "GET"),
            path=path,
            query=query,
            url=f"{path}?{query}" if query else path,
            authorization=headers.get(b"authorization", b"").decode() or None,
        )
        self.on_arrival(record)

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                record.status = int(message["status"])
            await send(message)

        await self.app(scope, receive, capture)
