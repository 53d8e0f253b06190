"""Request dependencies as ``Annotated`` aliases.

Each is ``async``: FastAPI runs a plain ``def`` dependency in a worker thread, a hop that
cost every request a few hundred microseconds for what is an attribute lookup.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from marketdata.service.runs import Backfiller
from marketdata.service.scheduler import Scheduler
from marketdata.settings import Settings
from marketdata.storage.base import Store


async def get_store(request: Request) -> Store:
    """The store opened by the app's lifespan."""
    return cast("Store", request.state.store)


async def get_scheduler(request: Request) -> Scheduler:
    """The scheduler of this process (running or not)."""
    return cast("Scheduler", request.state.scheduler)


async def get_backfiller(request: Request) -> Backfiller:
    """Starts and tracks backfill runs for this process."""
    return cast("Backfiller", request.state.backfiller)


async def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return cast("Settings", request.app.state.settings)


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SchedulerDep = Annotated[Scheduler, Depends(get_scheduler)]
BackfillerDep = Annotated[Backfiller, Depends(get_backfiller)]
