"""HEAD and OPTIONS on every route, and a 405 whose ``Allow`` names every method of the path.

FastAPI routes answer only the methods they declare, and when a path matches but the method
does not, the router answers 405 with the ``Allow`` of the first route it tried (so
``PATCH /api/v1/symbols`` said ``GET`` although POST is served there too). This pure ASGI
middleware, just outside the routes, fills the gaps and leaves everything else to the router:

- ``HEAD`` where a route has ``GET`` (and none has HEAD) runs as ``GET`` and the body is
  dropped, so the answer has exactly GET's status and headers (``Content-Type``,
  ``Content-Length``, ``ETag``…). The GET runs in full: a streamed body is made and thrown away;
- when the router refuses the method (405), the methods the path serves are found by asking
  the routes whether they match each standard method. ``OPTIONS`` then answers 204, any other
  method 405 (problem+json, or Polygon's error body on the Polygon-compatible routes), both with
  an ``Allow`` listing all of them, ``HEAD`` with ``GET`` and ``OPTIONS`` included.

No answer to HEAD has a body, errors included. A 405 the router did not make (a mount's) goes
out as it was. Nothing here is in the OpenAPI document: HEAD and OPTIONS are not operations
there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from http import HTTPStatus
from typing import Final

from fastapi import FastAPI, Request, Response
from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketdata.api.errors import method_not_allowed, not_allowed_detail
from marketdata.api.routes.polygon import PolygonRoute
from marketdata.api.routes.polygon import error_response as polygon_error

#: The methods looked for on a path, in the order ``Allow`` lists them (others follow).
METHOD_ORDER: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

#: Messages that carry (part of) a response body; the last one has no ``more_body``.
_BODY: Final = frozenset(
    {"http.response.body", "http.response.zerocopysend", "http.response.pathsend"}
)


def matched(routes: Iterable[BaseRoute], scope: Scope, method: str) -> Match:
    """How the best of ``routes`` matches ``scope``'s path with ``method`` (as the router picks:
    a full match, else a partial one, i.e. the path but not the method)."""
    probe = {**scope, "method": method}
    best = Match.NONE
    for route in routes:
        match, _ = route.matches(probe)
        if match is Match.FULL:
            return match
        if match is Match.PARTIAL:
            best = match
    return best


def served_methods(routes: Sequence[BaseRoute], scope: Scope) -> set[str] | None:
    """The standard methods ``routes`` serve at ``scope``'s path, when the path is served but
    not with ``scope``'s method; ``None`` otherwise (then a 405 was not the router's)."""
    if matched(routes, scope, scope["method"]) is not Match.PARTIAL:
        return None
    return {m for m in METHOD_ORDER if matched(routes, scope, m) is Match.FULL} or None


def allowed_methods(served: Iterable[str]) -> list[str]:
    """``Allow`` for a path whose routes serve ``served``: HEAD comes with GET, OPTIONS always;
    in :data:`METHOD_ORDER`, other methods last (alphabetically)."""
    methods = {*served, "OPTIONS"}
    if "GET" in methods:
        methods.add("HEAD")
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return sorted(methods, key=lambda m: (rank.get(m, len(rank)), m))


class Methods:
    """Answer HEAD as GET without the body, OPTIONS with ``Allow``, a wrong method with a 405
    listing every method of the path."""

    def __init__(self, app: ASGIApp, *, router: Router) -> None:
        self.app = app
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, routes = scope["method"], self.router.routes
        if method == "HEAD":
            send = _without_body(send)
            served_as_get = matched(routes, scope, "GET") is Match.FULL
            if served_as_get and matched(routes, scope, "HEAD") is Match.PARTIAL:
                await _as_get(self.app, scope, receive, send)
                return
        before = dict(scope)  # as the router got it: probes must not see what routing added
        refusal = _HeldRefusal(send)
        await self.app(scope, receive, refusal.send)
        if not refusal.messages:
            return
        served = served_methods(routes, before)
        if served is None:
            await refusal.release()
            return
        allowed = allowed_methods(served)
        if method == "OPTIONS":
            response = Response(
                status_code=HTTPStatus.NO_CONTENT, headers={"Allow": ", ".join(allowed)}
            )
        else:
            response = _refuse(Request(scope), allowed)
        await response(scope, receive, send)


async def _as_get(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run the request as GET. What routing adds to the scope (the route the request metrics
    label by) is copied back; the method stays HEAD for the middleware outside."""
    as_get = {**scope, "method": "GET"}
    try:
        await app(as_get, receive, send)
    finally:
        scope.update((key, value) for key, value in as_get.items() if key != "method")


def _without_body(send: Send) -> Send:
    """``send`` passing the response start (headers as they are) and one empty, last body."""

    async def headers_only(message: Message) -> None:
        if message["type"] in _BODY:
            if message.get("more_body", False):
                return
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        await send(message)

    return headers_only


class _HeldRefusal:
    """A ``send`` that holds back a 405 answer (start and body) and passes any other through."""

    def __init__(self, send: Send) -> None:
        self.downstream = send
        self.messages: list[Message] = []

    async def send(self, message: Message) -> None:
        if self.messages or (
            message["type"] == "http.response.start"
            and message["status"] == HTTPStatus.METHOD_NOT_ALLOWED
        ):
            self.messages.append(message)
            return
        await self.downstream(message)

    async def release(self) -> None:
        """Send the held answer as it was."""
        for message in self.messages:
            await self.downstream(message)


def _refuse(request: Request, allowed: list[str]) -> Response:
    """The 405: in Polygon's error shape on the Polygon-compatible routes, else problem+json."""
    if isinstance(request.scope.get("route"), PolygonRoute):
        detail = not_allowed_detail(request.method, request.url.path, allowed)
        return polygon_error(HTTPStatus.METHOD_NOT_ALLOWED, detail, {"Allow": ", ".join(allowed)})
    return method_not_allowed(request, allowed)


def install_methods(app: FastAPI) -> None:
    """Add :class:`Methods` to ``app``; middleware added after it sits outside and sees HEAD
    and OPTIONS requests as they came (request metrics label them so)."""
    app.add_middleware(Methods, router=app.router)
