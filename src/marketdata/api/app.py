"""The app factory: ``create_app(settings)`` builds the app; its lifespan owns the store."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from fastapi import FastAPI

from marketdata import __version__
from marketdata.api.errors import add_exception_handlers
from marketdata.api.metrics import install_metrics
from marketdata.api.routes import backfill, bars, polygon, quality, status, symbols, system
from marketdata.api.security import install_security
from marketdata.calendar import last_completed_session
from marketdata.service.periodic import scheduled_jobs
from marketdata.service.runs import Backfiller, backfiller
from marketdata.service.scheduler import Scheduler
from marketdata.service.simulated import SIMULATED_NOTICE, data_mode, seed_if_empty
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
    with ``announce``, say loudly that the data is simulated)."""
    await store.ping()
    if settings.polygon_api_key is None and settings.simulate:
        now = dt.datetime.now(dt.UTC)
        await seed_if_empty(
            store,
            symbols=settings.symbols,
            years=5,
            today=last_completed_session(now),
            at=now,
        )
    if announce and await data_mode(store) == "simulated":
        log.warning(SIMULATED_NOTICE, extra={"event": "serving_simulated_data"})


def app_from_environment() -> FastAPI:
    """The app with settings read from the environment (each ``serve --workers`` process)."""
    return create_app(Settings())


#: Routers of the resources, in the order the docs list them.
ROUTES = (status, bars, symbols, backfill, quality, polygon)


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
    install_security(app, settings)
    install_metrics(app)
    app.include_router(system.router)
    for module in ROUTES:
        app.include_router(module.router)
    return app
