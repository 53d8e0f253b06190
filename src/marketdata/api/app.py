"""The app factory: ``create_app(settings)`` builds the app; its lifespan owns the store."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypedDict

from fastapi import APIRouter, FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute

from marketdata import __version__, logs
from marketdata.api import metrics
from marketdata.api.dashboard import install_dashboard
from marketdata.api.errors import add_exception_handlers
from marketdata.api.methods import install_methods
from marketdata.api.metrics import install_metrics
from marketdata.api.requestid import install_request_id
from marketdata.api.routes import (
    actions,
    backfill,
    bars,
    coverage,
    polygon,
    quality,
    status,
    symbols,
    system,
)
from marketdata.api.security import install_security
from marketdata.calendar import last_completed_session
from marketdata.service.periodic import scheduled_jobs
from marketdata.service.runs import Backfiller, backfiller
from marketdata.service.scheduler import Scheduler
from marketdata.service.simulated import SIMULATED_NOTICE, data_mode, seed_if_empty
from marketdata.service.watchlist import Watchlist, watched
from marketdata.settings import Settings
from marketdata.storage import open_store
from marketdata.storage.base import Store

log = logging.getLogger(__name__)


class State(TypedDict):
    """What the lifespan hands to every request (``request.state``)."""

    store: Store
    backfiller: Backfiller
    scheduler: Scheduler


async def prepare_database(store: Store, settings: Settings, *, announce: bool = True) -> None:
    """Check the database answers; with no key, seed an empty one with simulated data (and,
    with ``announce``, say loudly that the data is simulated); bring the watchlist's flags in
    the status table in step with ``MARKETDATA_SYMBOLS``."""
    await store.ping()
    now = dt.datetime.now(dt.UTC)
    if settings.polygon_api_key is None and settings.simulate:
        await seed_if_empty(
            store,
            symbols=settings.symbols,
            years=5,
            today=last_completed_session(now),
            at=now,
        )
    await watched(store, Watchlist(symbols=settings.symbols, years=settings.backfill_years), at=now)
    if announce and await data_mode(store) == "simulated":
        log.warning(SIMULATED_NOTICE, extra={"event": "serving_simulated_data"})


def app_from_environment() -> FastAPI:
    """The app with settings read from the environment (each ``serve --workers`` process)."""
    settings = Settings()
    logs.configure(settings.log_level, secrets=settings.secret_values(), fmt=settings.log_format)
    return create_app(settings)


#: Routers of the resources, in the order the docs list them.
ROUTES = (status, bars, symbols, backfill, quality, coverage, actions, polygon)


def create_app(settings: Settings) -> FastAPI:
    """A FastAPI app serving the database named in ``settings``."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[State]:
        store = await open_store(settings.database_url)
        try:
            await prepare_database(store, settings)
            runner = backfiller(store, settings)
            scheduler = Scheduler(store)
            for job in scheduled_jobs(store, settings):
                scheduler.add(job)
            if settings.scheduler and scheduler.jobs:
                await scheduler.start()
            try:
                yield {"store": store, "backfiller": runner, "scheduler": scheduler}
            finally:
                await scheduler.shutdown()
                await runner.aclose()
        finally:
            await store.aclose()

    app = FastAPI(
        title="marketdata",
        version=__version__,
        summary="Verified US daily stock bars from your own database.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    add_exception_handlers(app)
    install_methods(app)  # inside the metrics and request ids: they see HEAD as HEAD
    install_security(app, settings)
    install_metrics(app)
    install_request_id(app)  # outermost: every log line of a request carries its id
    app.include_router(system.router)
    for module in ROUTES:
        app.include_router(module.router)
    install_dashboard(app)
    _keep_example_nulls(app, [system.router, metrics.router, *(m.router for m in ROUTES)])
    return app


def _keep_example_nulls(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Serve the response examples of ``routers``' routes whole: FastAPI drops every ``null``
    from the document it builds (``exclude_none``), so required members such as ``last_error``
    would be missing from the examples."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        first = app.openapi_schema is None
        schema = build()
        if first:
            for router in routers:
                for route in router.routes:
                    if isinstance(route, APIRoute) and route.include_in_schema:
                        _put_examples(schema["paths"][route.path_format], route)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point


def _put_examples(path_item: dict[str, Any], route: APIRoute) -> None:
    """Write ``route``'s declared response examples, as JSON, over the documented ones."""
    for method in route.methods or ():
        documented = path_item[method.lower()]["responses"]
        for code, response in route.responses.items():
            served = documented[str(code)].get("content", {})
            for media, entry in response.get("content", {}).items():
                if "example" in entry and media in served:
                    served[media]["example"] = jsonable_encoder(entry["example"])
