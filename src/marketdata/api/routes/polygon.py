"""Polygon's aggregates endpoint served from our store, so a Polygon client works unchanged.

``GET /v2/aggs/ticker/{ticker}/range/1/day/{from}/{to}`` answers in the vendor's dialect
(``shared/polygon/API_NOTES.md`` §1): its field names, ``t`` as New York midnight in Unix ms,
no ``results`` key when nothing matches, ``next_url`` pagination with an opaque cursor, and
every failure as ``{"status": "ERROR", "request_id": …, "error": …}`` instead of our own error
body. The bars are ``/api/v1/historical``'s: ``adjusted=true`` is our ``splits`` adjustment,
``adjusted=false`` the raw bars.

Pages are keyed by date, not by offset: ``next_url`` narrows the path's range to the bars not
yet sent (its ``from`` for ``sort=asc``, its ``to`` for ``desc``), so no bar is sent twice.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
import secrets
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal
from urllib.parse import parse_qsl, quote, urlencode
from zoneinfo import ZoneInfo

import polars as pl
from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from marketdata.adjust import Adjustment
from marketdata.api.deps import StoreDep
from marketdata.api.errors import Unauthorized, status_for
from marketdata.api.security import require_read_polygon
from marketdata.errors import InputError, MarketDataError
from marketdata.service.history import read_history
from marketdata.symbols import normalize_symbol

log = logging.getLogger(__name__)

Sort = Literal["asc", "desc"]

#: Polygon's default and maximum ``limit`` (larger values are served as the maximum).
DEFAULT_LIMIT: Final = 5_000
MAX_LIMIT: Final = 50_000

_NEW_YORK: Final = ZoneInfo("America/New_York")
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ISO_DAY: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_SORTS: Final[dict[str, Sort]] = {"asc": "asc", "desc": "desc"}
_BOOLS: Final[dict[str, bool]] = {"true": True, "false": False}

#: ``t`` of a daily bar: 00:00 New York time of its session date, in Unix ms (as Polygon).
_T: Final = pl.col("date").cast(pl.Datetime("ms")).dt.replace_time_zone(str(_NEW_YORK))


def error_response(code: int, text: str, headers: Mapping[str, str] | None = None) -> Response:
    """An error in Polygon's body, ``{"status": "ERROR", "request_id": …, "error": …}``."""
    body = {"status": "ERROR", "request_id": secrets.token_hex(16), "error": text}
    return Response(
        json.dumps(body, separators=(",", ":")), code, headers, media_type="application/json"
    )


class PolygonRoute(APIRoute):
    """A route answering every failure in Polygon's error shape (bad input is a 400)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The usual handler, with failures turned into Polygon error bodies."""
        handler = super().get_route_handler()

        async def polygon_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                problems = (
                    f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()
                )
                return error_response(status.HTTP_400_BAD_REQUEST, "; ".join(problems))
            except InputError as exc:
                return error_response(status.HTTP_400_BAD_REQUEST, str(exc))
            except HTTPException as exc:
                return error_response(exc.status_code, str(exc.detail), exc.headers)
            except MarketDataError as exc:
                code = status_for(exc)
                if code >= status.HTTP_500_INTERNAL_SERVER_ERROR:
                    log.warning(
                        "request failed: %s",
                        exc,
                        extra={"event": "api_error", "error": type(exc).__name__, "status": code},
                    )
                challenge = (
                    {"WWW-Authenticate": exc.challenge} if isinstance(exc, Unauthorized) else None
                )
                return error_response(code, str(exc), challenge)

        return polygon_handler


router = APIRouter(tags=["polygon-compatible"], route_class=PolygonRoute)


@dataclass(frozen=True, slots=True, kw_only=True)
class PageQuery:
    """What every page of one aggregates query shares (what the cursor carries)."""

    adjusted: bool = True
    sort: Sort = "asc"
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        if self.limit < 1:
            msg = f"limit must be at least 1, not {self.limit}"
            raise InputError(msg)

    def cursor(self) -> str:
        """This query as a Polygon-style cursor: base64url of a query string."""
        text = urlencode(
            {"adjusted": str(self.adjusted).lower(), "limit": self.limit, "sort": self.sort}
        )
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def resolve(
        cls, cursor: str | None, *, adjusted: bool | None, sort: Sort | None, limit: int | None
    ) -> PageQuery:
        """Parameters given in the request, else carried by ``cursor``, else the defaults."""
        carried = cls()
        if cursor:
            try:
                padded = cursor + "=" * (-len(cursor) % 4)
                text = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
                values = dict(parse_qsl(text, strict_parsing=True))
                carried = cls(
                    adjusted=_BOOLS[values.pop("adjusted")],
                    sort=_SORTS[values.pop("sort")],
                    limit=int(values.pop("limit")),
                )
            except (ValueError, KeyError, InputError) as exc:
                raise InputError("invalid cursor: use next_url as it was sent") from exc
            if values:
                raise InputError("invalid cursor: use next_url as it was sent")
        return cls(
            adjusted=carried.adjusted if adjusted is None else adjusted,
            sort=sort or carried.sort,
            limit=min(carried.limit if limit is None else limit, MAX_LIMIT),
        )


def parse_day(value: str, *, name: str) -> dt.date:
    """A path date: ``YYYY-MM-DD``, or Unix milliseconds read as the New York date."""
    try:
        if value.isascii() and value.isdigit():
            instant = _EPOCH + dt.timedelta(milliseconds=int(value))
            return instant.astimezone(_NEW_YORK).date()
        if _ISO_DAY.fullmatch(value):
            return dt.date.fromisoformat(value)
    except (ValueError, OverflowError) as exc:
        raise InputError(f"{name} is not a date: {value[:40]!r}") from exc
    msg = f"{name} must be YYYY-MM-DD or Unix milliseconds, not {value[:40]!r}"
    raise InputError(msg)


def midnight_ms(day: dt.date) -> int:
    """00:00 New York time of ``day`` in Unix ms: Polygon's ``t`` of a daily bar."""
    return int(dt.datetime.combine(day, dt.time(), tzinfo=_NEW_YORK).timestamp()) * 1000


def results_json(bars: pl.DataFrame) -> str:
    """The ``results`` array of ``bars`` (``READ_SCHEMA``); ``vw`` and ``n`` left out if null."""
    rows = pl.struct(
        pl.col("volume").alias("v"),
        pl.col("vwap").alias("vw"),
        pl.col("open").alias("o"),
        pl.col("close").alias("c"),
        pl.col("high").alias("h"),
        pl.col("low").alias("l"),
        _T.dt.epoch("ms").alias("t"),
        pl.col("transactions").alias("n"),
    ).struct.json_encode()  # a NaN is written as null, so it is left out too
    rows = rows.str.replace('"vw":null,', "", literal=True).str.replace(
        ',"n":null', "", literal=True
    )
    return f"[{bars.select(rows.str.join(',')).item()}]"


def response_body(ticker: str, page: pl.DataFrame, *, adjusted: bool, next_url: str | None) -> str:
    """The JSON answer for one page, fields in Polygon's order."""
    count = str(page.height)
    fields = [
        ("ticker", json.dumps(ticker)),
        ("queryCount", count),
        ("resultsCount", count),
        ("adjusted", json.dumps(adjusted)),
    ]
    if page.height:
        fields.append(("results", results_json(page)))
    fields += [("status", '"OK"'), ("request_id", json.dumps(secrets.token_hex(16)))]
    if page.height:
        fields.append(("count", count))
    if next_url is not None:
        fields.append(("next_url", json.dumps(next_url)))
    return "{" + ",".join(f'"{key}":{value}' for key, value in fields) + "}"


class PolygonAgg(BaseModel):
    """One daily bar in Polygon's names (documentation only; never built per bar)."""

    v: float = Field(description="Volume.")
    vw: float | None = Field(default=None, description="VWAP; left out when unknown.")
    o: float
    c: float
    h: float
    low: float = Field(alias="l")
    t: int = Field(description="00:00 New York time of the session date, Unix ms.")
    n: int | None = Field(default=None, description="Trades; left out when unknown.")


class PolygonAggs(BaseModel):
    """A page of Polygon aggregates (documentation only)."""

    ticker: str
    query_count: int = Field(alias="queryCount")
    results_count: int = Field(alias="resultsCount")
    adjusted: bool
    results: list[PolygonAgg] | None = Field(
        default=None, description="Absent when no bar matches."
    )
    status: str
    request_id: str
    count: int | None = None
    next_url: str | None = Field(default=None, description="The next page, when there is one.")


class PolygonError(BaseModel):
    """Polygon's error body (documentation only)."""

    status: str = Field(examples=["ERROR"])
    request_id: str
    error: str


_EXAMPLE_BARS = [
    {"v": 70790813.0, "vw": 131.6292, "o": 130.465, "c": 130.15, "h": 133.41, "l": 129.89,
     "t": 1673240400000, "n": 645365},
    {"v": 63896155.0, "vw": 129.8755, "o": 130.26, "c": 130.73, "h": 131.2636, "l": 128.12,
     "t": 1673326800000, "n": 554940},
]  # fmt: skip
_EXAMPLE = {
    "ticker": "AAPL",
    "queryCount": 2,
    "resultsCount": 2,
    "adjusted": True,
    "results": _EXAMPLE_BARS,
    "status": "OK",
    "request_id": "6a7e466379af0a71039d60cc78e72282",
    "count": 2,
    "next_url": "https://marketdata.example.com/v2/aggs/ticker/AAPL/range/1/day/1673413200000/"
    "2023-01-31?cursor=YWRqdXN0ZWQ9dHJ1ZSZsaW1pdD0yJnNvcnQ9YXNj",
}


def _error_example(text: str) -> dict[str, Any]:
    body = {"status": "ERROR", "request_id": "0fa3bc5e8c6d3e5b9e4a1c0d2b7f6a81", "error": text}
    return {"content": {"application/json": {"example": body}}}


@router.get(
    "/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}",
    response_model=PolygonAggs,
    summary="Daily bars of a ticker, Polygon-compatible",
    description=(
        "Polygon's (Massive's) aggregates endpoint, answered from this server's database, so a "
        "Polygon client pointed at this base URL works unchanged. Only daily bars are stored: "
        "`multiplier` must be 1 and `timespan` `day`. `t` is 00:00 New York time of the session "
        "date in Unix ms; `vw` and `n` are left out when unknown; with no bars the answer has "
        "no `results`. When more than `limit` bars match, follow `next_url` (it carries no key; "
        "send the key again). When reads need a key, it may come as Polygon's `apiKey` query "
        "parameter as well as in a header (headers stay out of proxy logs; this server "
        "redacts `apiKey` from its own). Errors use Polygon's body: "
        '`{"status": "ERROR", "request_id": …, "error": …}`.'
    ),
    responses={
        200: {"content": {"application/json": {"example": _EXAMPLE}}},
        400: {
            "model": PolygonError,
            "description": "A parameter cannot be used (Polygon's error body).",
            **_error_example("only 1/day aggregates are served here (daily bars), not 1/minute"),
        },
        "default": {
            "model": PolygonError,
            "description": "Any other failure, e.g. 401 or 503 (Polygon's error body).",
            **_error_example("the database does not answer"),
        },
    },
    dependencies=[Depends(require_read_polygon)],
)
async def aggregates(
    request: Request,
    store: StoreDep,
    ticker: Annotated[
        str, Path(description="Our symbol (case-insensitive), e.g. BRK.B.", examples=["AAPL"])
    ],
    multiplier: Annotated[int, Path(description="Bar size in timespans: only 1.", examples=[1])],
    timespan: Annotated[str, Path(description="Only `day` is served.", examples=["day"])],
    start: Annotated[
        str,
        Path(
            alias="from",
            description="First session (inclusive): YYYY-MM-DD, or Unix ms (New York date).",
            examples=["2023-01-09"],
        ),
    ],
    end: Annotated[
        str,
        Path(
            alias="to",
            description="Last session (inclusive): YYYY-MM-DD, or Unix ms (New York date).",
            examples=["2023-01-31"],
        ),
    ],
    adjusted: Annotated[
        bool | None, Query(description="Split-adjusted (default true); false: raw bars.")
    ] = None,
    sort: Annotated[Sort | None, Query(description="By date: asc (default) or desc.")] = None,
    limit: Annotated[
        int | None,
        Query(ge=1, description=f"Bars per page: default {DEFAULT_LIMIT}, at most {MAX_LIMIT}."),
    ] = None,
    cursor: Annotated[str | None, Query(description="Set by `next_url`; opaque.")] = None,
) -> Response:
    """Polygon's ``/v2/aggs`` range answer for daily bars from our store."""
    if multiplier != 1 or timespan != "day":
        served = f"{multiplier}/{timespan[:20]}"
        raise InputError(f"only 1/day aggregates are served here (daily bars), not {served}")
    symbol = normalize_symbol(ticker)
    first, last = parse_day(start, name="from"), parse_day(end, name="to")
    query = PageQuery.resolve(cursor, adjusted=adjusted, sort=sort, limit=limit)
    bars = pl.DataFrame()
    if first <= last:
        adjustment: Adjustment = "splits" if query.adjusted else "none"
        bars = await read_history(store, symbol, start=first, end=last, adjusted=adjustment)
        if query.sort == "desc":
            bars = bars.reverse()
    next_url = None
    if bars.height > query.limit:
        mark = str(midnight_ms(bars["date"][query.limit]))
        start, end = (mark, end) if query.sort == "asc" else (start, mark)
        path = f"/v2/aggs/ticker/{quote(symbol, safe='')}/range/1/day/{start}/{end}"
        next_url = f"{str(request.base_url).rstrip('/')}{path}?cursor={query.cursor()}"
    page = bars.head(query.limit)
    body = response_body(symbol, page, adjusted=query.adjusted, next_url=next_url)
    return Response(content=body, media_type="application/json")
