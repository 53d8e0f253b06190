"""``/dashboard``: the overview page, one page per symbol, their static files and plotly.js.

The pages are HTML shells; their scripts (``static/``) read everything from the public REST API
in the browser, so the dashboard shows nothing the API does not, and an API key typed into a
page stays in that page's memory. The chart library is plotly.js exactly as the ``plotly``
Python package ships it (``plotly/package_data/plotly.min.js``): served from the installed
package, gzipped once per process, so the dashboard works offline and no third-party code is
copied into this repository. None of these routes is part of the OpenAPI document.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import html
import importlib.util
import json
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from string import Template
from typing import Annotated

from fastapi import APIRouter, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from marketdata import __version__
from marketdata.api.deps import SettingsDep
from marketdata.symbols import MAX_LENGTH, normalize_symbol
from marketdata.validation.rules import RULES

router = APIRouter(prefix="/dashboard", include_in_schema=False)

#: Where the pages' own scripts and styles are served from.
STATIC_PATH = "/dashboard/static"
#: Where plotly.js is served from.
PLOTLY_PATH = "/dashboard/vendor/plotly.min.js"

#: Pages may load scripts, styles and data from this server only (plotly sets inline styles).
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard's pages, static files and plotly.js on ``app``."""
    app.include_router(router)
    app.mount(
        STATIC_PATH,
        StaticFiles(packages=[("marketdata.api.dashboard", "static")]),
        name="dashboard-static",
    )


@functools.cache
def _template(name: str) -> Template:
    text = resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")
    return Template(text)


def render_page(name: str, **values: str) -> str:
    """The page template ``name`` with ``values`` (escaped) and the version filled in.

    ``$rules`` is the validation rule catalogue as JSON, for the symbol page's reasons.
    """
    fields = {key: html.escape(value, quote=True) for key, value in values.items()}
    return _template(name).substitute(
        version=html.escape(__version__),
        plotly=f"{PLOTLY_PATH}?v={html.escape(_plotly_version())}",
        rules=_rule_catalogue(),
        **fields,
    )


@functools.cache
def _rule_catalogue() -> str:
    """Each rule's severity and meaning, as JSON safe inside a ``<script>`` element."""
    catalogue = {
        rule.name: {"severity": rule.severity, "description": rule.description} for rule in RULES
    }
    return json.dumps(catalogue).replace("<", "\\u003c")


def _page(name: str, **values: str) -> HTMLResponse:
    return HTMLResponse(render_page(name, **values), headers=_PAGE_HEADERS)


@router.get("", response_class=HTMLResponse)
async def overview(settings: SettingsDep) -> HTMLResponse:
    """The overview: freshness, quality, backfills, backups and coverage of every symbol."""
    return _page("overview.html", refresh=str(settings.dashboard_refresh_seconds))


@router.get(PLOTLY_PATH.removeprefix("/dashboard"))
async def plotly_js(request: Request) -> Response:
    """plotly.js from the installed ``plotly`` package (gzipped when the client accepts it)."""
    bundle = await asyncio.to_thread(_plotly_bundle)
    headers = {
        "Cache-Control": "public, max-age=86400",
        "ETag": bundle.etag,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == bundle.etag:
        return Response(status_code=304, headers=headers)
    media = "text/javascript; charset=utf-8"
    if "gzip" in request.headers.get("accept-encoding", "").lower():
        headers["Content-Encoding"] = "gzip"
        return Response(bundle.gzipped, media_type=media, headers=headers)
    return Response(bundle.raw, media_type=media, headers=headers)


@router.get("/{symbol}", response_class=HTMLResponse)
async def symbol_page(
    symbol: Annotated[str, PathParam(min_length=1, max_length=MAX_LENGTH)],
) -> HTMLResponse:
    """One symbol: candlestick chart with flags, gaps, splits and dividends; downloads."""
    return _page("symbol.html", symbol=normalize_symbol(symbol))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Bundle:
    raw: bytes
    gzipped: bytes
    etag: str


def plotly_file() -> Path:
    """Where the installed ``plotly`` package keeps plotly.js (found without importing it)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        msg = "the plotly package is not installed (it is a dependency of marketdata)"
        raise RuntimeError(msg)
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"


@functools.cache
def _plotly_bundle() -> _Bundle:
    raw = plotly_file().read_bytes()
    etag = f'"{hashlib.blake2b(raw, digest_size=16).hexdigest()}"'
    return _Bundle(raw=raw, gzipped=gzip.compress(raw, compresslevel=6, mtime=0), etag=etag)


@functools.cache
def _plotly_version() -> str:
    return metadata.version("plotly")
