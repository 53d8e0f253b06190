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
from marketdata.api.routes import bars, system
from marketdata.calendar import last_completed_session
from marketdata.providers.simulator import DEFAULT_SYMBOLS
from marketdata.service.simulated import SIMULATED_NOTICE, data_mode, seed_if_empty
from marketdata.settings import Settings
from marketdata.storage import open_store
from marketdata.storage.base import Store

log = logging.getLogger(__name__)


class State(TypedDict):
    """What the lifespan hands to every request (``request.state``)."""

    store: Store


def create_app(settings: Settings) -> FastAPI:
    """A FastAPI app serving the database named in ``settings``."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[State]:
        store = await open_store(settings.database_url)
        try:
            if settings.polygon_api_key is None and settings.simulate:
                now = dt.datetime.now(dt.UTC)
                await seed_if_empty(
                    store,
                    symbols=DEFAULT_SYMBOLS,
                    years=5,
                    today=last_completed_session(now),
                    at=now,
                )
            if await data_mode(store) == "simulated":
                log.warning(SIMULATED_NOTICE, extra={"event": "serving_simulated_data"})
            yield {"store": store}
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
    app.include_router(system.router)
    app.include_router(bars.router)
    return app
