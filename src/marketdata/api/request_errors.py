"""What was wrong with a request FastAPI could not validate, in words a caller can act on.

FastAPI raises :class:`RequestValidationError` for bad parameters and bodies; this turns it into
one problem+json answer: a 422 whose ``detail`` names each problem (``query parameter
'min_quality': …``) and whose ``errors`` lists them, a 422 naming the character where malformed
JSON stops, or a 415 for a body that was not sent as JSON at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from marketdata.api.problems import problem_response


async def validation_error(request: Request, exc: Exception) -> Response:
    """The handler of :class:`RequestValidationError`: a 415 or 422 problem+json."""
    assert isinstance(exc, RequestValidationError)  # registered for this class only
    found = exc.errors()
    if any(_unread_body(e) for e in found):
        return _not_json(request)
    problems = [_problem(e) for e in found]
    detail = "; ".join(_say(p) for p in problems) or "invalid request"
    return problem_response(
        request,
        status=422,
        error="InputError",
        detail=detail,
        errors=problems,
    )


def _unread_body(error: Mapping[str, Any]) -> bool:
    """FastAPI left the body as bytes: it was not sent as JSON, so the model could not read it."""
    return tuple(error.get("loc", ())) == ("body",) and isinstance(error.get("input"), bytes)


def _not_json(request: Request) -> Response:
    sent = request.headers.get("content-type", "").partition(";")[0].strip()[:60]
    detail = "the request body must be JSON: send it with Content-Type: application/json" + (
        f" (it was sent as {sent})" if sent else " (none was sent)"
    )
    return problem_response(
        request,
        status=415,
        error="UnsupportedMediaType",
        detail=detail,
        headers={"Accept-Post": "application/json"} if request.method == "POST" else None,
    )


def _problem(error: Mapping[str, Any]) -> dict[str, Any]:
    """One entry of ``errors``: where, what and which kind; a JSON syntax error is the body's."""
    if error.get("type") == "json_invalid":  # its loc is ("body", <character position>)
        position = error.get("loc", ("body", "?"))[-1]
        reason = error.get("ctx", {}).get("error", "JSON decode error")
        message = f"not valid JSON (at character {position}): {reason}"
        return {"loc": ["body"], "msg": message, "type": "json_invalid"}
    return {
        "loc": [p if isinstance(p, int) else str(p) for p in error.get("loc", ())],
        "msg": str(error.get("msg", "")),
        "type": str(error.get("type", "")),
    }


def _say(problem: dict[str, Any]) -> str:
    """One problem for ``detail``; the body as a whole gets a sentence of its own."""
    if problem["loc"] == ["body"]:
        if problem["type"] == "json_invalid":
            return f"the request body is {problem['msg']}"
        if problem["type"] == "missing":
            return "a request body is required: a JSON object, sent as application/json"
        if problem["type"] == "model_attributes_type":
            return "the request body must be a JSON object"
    return f"{_where(problem['loc'])}: {problem['msg']}"


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
