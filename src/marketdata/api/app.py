"""The app factory: ``create_app(settings)`` builds the app; its lifespan owns the store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from fastapi import FastAPI

from marketdata import __version__
from marketdata.api.errors import add_exception_handlers
from marketdata.api.routes import bars, system
from marketdata.settings import Settings
from marketdata.storage import open_store
from marketdata.storage.base import Store


class State(TypedDict):
    """What the lifespan hands to every request (``request.state``)."""

    store: Store


def create_app(settings: Settings) -> FastAPI:
    """A FastAPI app serving the database named in ``settings``."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[State]:
        store = await open_store(settings.database_url)
        try:
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
